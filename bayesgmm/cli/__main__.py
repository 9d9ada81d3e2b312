"""``python -m bayesgmm.cli``: the same command line as ``bayesgmm``."""

from .main import main

if __name__ == "__main__":
    raise SystemExit(main())
