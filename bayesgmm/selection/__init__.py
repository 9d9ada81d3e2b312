"""Choosing the number of components: BIC/AIC over EM fits."""

from .criteria import SelectionResult, select_n_components

__all__ = ["SelectionResult", "select_n_components"]
