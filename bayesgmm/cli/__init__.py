"""The ``bayesgmm`` command: ``em``, ``select``, ``fit``, ``report``, ``demo``."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
