"""``python -m bayesgmm``: the same command line as ``bayesgmm``."""

from .cli import main

raise SystemExit(main())
