import warnings

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def seed001():
    from bayesgmm.datasets import seed001_data

    return seed001_data()


def _sample(X, n_components, **kwargs):
    """``bayesgmm.fit`` for real, without a progress bar: the result and what it warned.

    Returns the DataTree and the messages of the ``SamplingWarning``s (which include the
    ``FailedCheckWarning``s) raised during the fit, so a test can assert on them or ignore
    them; every other warning is passed on as it came.
    """
    import bayesgmm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bayesgmm.SamplingWarning)
        dt = bayesgmm.fit(X, n_components, progressbar=False, **kwargs)
    warned = []
    for w in caught:
        if issubclass(w.category, bayesgmm.SamplingWarning):
            warned.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return dt, warned


@pytest.fixture(scope="session")
def sample():
    """The one helper for a real fit in the tests: ``sample(X, K, **fit_kwargs)``."""
    return _sample
