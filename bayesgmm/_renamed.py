"""Renamed keyword arguments: the old name keeps working for a while, with a warning.

Public functions take the data as ``X`` and its errors as ``X_err`` everywhere, as
``fit`` and the estimator do; a few once took ``x``/``x_err`` (or ``grid``). Decorating
them with :func:`renamed_keywords` keeps old calls working: the old keyword is passed on
under its new name, with a :class:`FutureWarning` (shown to users by default, as
scikit-learn does for its renames). Positional calls are unaffected.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keywords"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**new_names: str) -> Callable[[F], F]:
    """Decorator: accept each old keyword (the key) for its new name (the value).

    Parameters
    ----------
    **new_names : str
        Old keyword name -> new parameter name, e.g. ``x="X", x_err="X_err"``.

    Returns
    -------
    callable
        A decorator. The decorated function's signature (``inspect.signature``) shows
        only the new names. An old keyword gives a ``FutureWarning`` that names the new
        one, pointing at the caller's line; giving both names raises ``TypeError``, as a
        repeated argument does.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in new_names.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(
                        f"{func.__name__}() got both {new!r} and its old name {old!r}; "
                        f"pass {new!r} only."
                    )
                warnings.warn(
                    f"{func.__name__}(): the keyword {old!r} is renamed {new!r}; "
                    f"{old!r} will stop working in a future release.",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
