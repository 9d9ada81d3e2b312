"""``python -m bayesgmm.cli``: the same command line as ``bayesgmm`` (kept from 0.1's layout)."""

from .main import main

if __name__ == "__main__":
    raise SystemExit(main())
