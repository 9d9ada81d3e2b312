"""Every method that needs a fitted GaussianMixtureEM says so with NotFittedError."""

import inspect

import numpy as np
import pytest

from bayesgmm import DataError, GaussianMixtureEM
from bayesgmm.errors import NotFittedError

X = np.linspace(-2.0, 2.0, 20)
E = np.full(20, 0.1)

#: how each method is called; a public method missing here fails the completeness test
CALLS = {
    "score_samples": lambda gm: gm.score_samples(X),
    "score": lambda gm: gm.score(X),
    "predict_proba": lambda gm: gm.predict_proba(X),
    "predict": lambda gm: gm.predict(X),
    "deconvolve": lambda gm: gm.deconvolve(X, X_err=E),
    "bic": lambda gm: gm.bic(X),
    "aic": lambda gm: gm.aic(X),
    "sample": lambda gm: gm.sample(3),
}
#: public methods that need no fitted model
UNFITTED = {"fit", "fit_predict", "set_params", "get_params", "from_params"}


def test_every_public_method_is_covered():
    own = {name for name, v in vars(GaussianMixtureEM).items()
           if not name.startswith("_") and (inspect.isfunction(v) or isinstance(v, classmethod))}
    assert own - UNFITTED == set(CALLS)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_methods_before_fit_raise_not_fitted_error(method):
    with pytest.raises(NotFittedError, match="not fitted yet; call fit") as info:
        CALLS[method](GaussianMixtureEM(2))
    # also an AttributeError (hasattr() is False, as with scikit-learn's) and a DataError
    assert isinstance(info.value, AttributeError)
    assert isinstance(info.value, DataError)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_methods_after_fit_do_not(method):
    gm = GaussianMixtureEM(2, random_seed=0).fit(X, X_err=E)
    assert CALLS[method](gm) is not None


def test_set_params_raises_data_error():
    with pytest.raises(DataError, match="no parameter 'tolerance'"):
        GaussianMixtureEM(2).set_params(tolerance=1e-3)
