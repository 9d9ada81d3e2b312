"""numba's on-disk cache, invalidated by a change to any of bayesgmm's numba modules.

numba stamps a cached function with the content of the file that defines it, not with
the functions it calls, although their machine code is linked into it: after an edit
of ``bayes/likelihood.py`` (or an upgrade that changes it) the cached
``bayes.density.log_density`` or the C callbacks of ``bayes.samplers.nutpie_native``
would keep the old kernel. The locators below, put first in numba's list and used for
bayesgmm's own files only, stamp every cached function of the package with one hash of
all its modules that use numba, so any change there recompiles them all once.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # bayesgmm/, subpackages included


@functools.cache
def package_stamp() -> str:
    """The stamp of this package's numba sources (computed once per process)."""
    return sources_stamp(_PACKAGE)


def sources_stamp(directory: Path) -> str:
    """SHA-256 over the sources of the modules under ``directory`` that import numba.

    Subpackages included (each file named by its path relative to ``directory``), so a
    kernel moved into or edited in a subpackage still invalidates every cached caller.
    """
    directory = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        text = path.read_bytes()
        if b"from numba" in text or b"import numba" in text:
            name = path.relative_to(directory).as_posix()
            digest.update(name.encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


def _ours(py_file: str) -> bool:
    """Whether ``py_file`` is one of this package's files (subpackages included)."""
    try:
        return Path(py_file).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def install() -> None:
    """Put the package-stamped locators first in numba's list (once)."""
    from numba.core import caching

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # numba < 0.62: private
    classes = impl._locator_classes
    if any(getattr(c, "_bayesgmm", False) for c in classes):
        return

    def stamped(base):
        class Locator(base):
            _bayesgmm = True

            @classmethod
            def from_function(cls, py_func, py_file):
                return super().from_function(py_func, py_file) if _ours(py_file) else None

            def get_source_stamp(self):
                return package_stamp()

        Locator.__name__ = f"BayesgmmPackage{base.__name__}"
        return Locator

    # numba's own order: the user's NUMBA_CACHE_DIR first (it answers only when set:
    # read-only installs and the benchmark's clean cache rely on it), then __pycache__
    # next to the source, then the user-wide cache
    provided = getattr(caching, "UserProvidedCacheLocator", None) or \
        caching._UserProvidedCacheLocator  # numba < 0.62: private
    classes[:0] = [stamped(provided), stamped(caching.InTreeCacheLocator),
                   stamped(caching.UserWideCacheLocator)]


try:
    install()
except (ImportError, AttributeError):  # another numba: its own per-file stamps apply
    pass
