"""``python -m bayesgmm``: the same command line as ``bayesgmm``."""

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
