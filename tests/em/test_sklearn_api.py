"""GaussianMixtureEM as a scikit-learn estimator: the check suite, pipelines, search, routing.

scikit-learn is a dependency of bayesgmm; its own estimator checks run here on the
default estimator (K = 1, as scikit-learn runs them on its ``GaussianMixture``).
"""

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import ConvergenceWarning, DataError, GaussianMixtureEM

# Checks that fail on purpose, with the reason (xfail strict: a pass would be reported).
EXPECTED_FAILED = {
    "check_fit1d": "a 1-D X is one feature, a column of measurements (bayesgmm's main "
                   "use: fit(df.x, X_err=df.x_err)); other methods reject 1-D input after "
                   "a fit on several features, as scikit-learn asks",
}


@parametrize_with_checks(
    [GaussianMixtureEM(random_seed=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    with warnings.catch_warnings():
        if name == "check_sample_weight_equivalence_on_dense_data":
            # its data: 15 points (11 distinct) in 30 dimensions, so one full covariance
            # is singular and EM rightly warns that the fit is degenerate; the check is
            # still that weights equal repeats, which must hold
            warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _three_groups(seed=0, n=200):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return np.vstack([c + rng.normal(size=(n, 2)) for c in centres])


def test_signatures_take_y_and_keyword_only_metadata():
    # scikit-learn passes y positionally (pipelines, cross-validation): it must land in
    # y, never in X_err; X_err and sample_weight are keyword-only everywhere.
    for method in ("fit", "fit_predict", "score"):
        params = inspect.signature(getattr(GaussianMixtureEM, method)).parameters
        assert list(params)[:3] == ["self", "X", "y"]
        assert params["y"].default is None
        assert params["X_err"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["sample_weight"].kind is inspect.Parameter.KEYWORD_ONLY
    for method in ("predict", "predict_proba", "score_samples", "bic", "aic", "deconvolve"):
        params = inspect.signature(getattr(GaussianMixtureEM, method)).parameters
        assert params["X_err"].kind is inspect.Parameter.KEYWORD_ONLY


def test_y_is_ignored():
    # Old code read fit(X, y)'s labels as measurement errors and changed the answer.
    X = _three_groups()
    y = np.repeat([0, 1, 2], 200)
    a = GaussianMixtureEM(3, random_seed=0).fit(X)
    b = GaussianMixtureEM(3, random_seed=0).fit(X, y)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.score(X) == b.score(X, y)
    labels = GaussianMixtureEM(3, random_seed=0).fit_predict(X, y)
    np.testing.assert_array_equal(labels, a.predict(X))


def test_pipeline_with_scaler():
    # The estimator standardizes inside, so a scaler in front changes only the units:
    # same labels, and scores differ by the log-Jacobian of the scaling (1e-8 relative:
    # EM's tol).
    X = _three_groups() * [1.0, 100.0] + [0.0, 1e4]
    pipe = make_pipeline(StandardScaler(), GaussianMixtureEM(3, random_seed=0)).fit(X)
    gm = GaussianMixtureEM(3, random_seed=0).fit(X)
    assert pipe.predict(X).shape == (X.shape[0],)
    # labels agree up to the components' order
    a, b = pipe.predict(X), gm.predict(X)
    assert np.all([len(set(b[a == j])) == 1 for j in range(3)])
    log_jac = np.log(pipe[0].scale_).sum()
    np.testing.assert_allclose(pipe.score(X), gm.score(X) + log_jac, rtol=1e-8)


def test_grid_search_over_n_components():
    # Three well-separated groups (6 sds apart, 200 points each): held-out
    # log-likelihood per point prefers K = 3 over K = 2 by ~0.33 nats and K = 2 over
    # K = 1 by ~0.67, against fold-to-fold sds of ~0.02; 0.2 is 10 of those sds.
    X = np.random.default_rng(2).permutation(_three_groups(seed=1))  # folds see all groups
    search = GridSearchCV(GaussianMixtureEM(random_seed=0), {"n_components": [1, 2, 3]},
                          cv=3).fit(X)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] > scores[1] + 0.2 > scores[0] + 0.4


def test_clone_gives_an_unfitted_copy():
    gm = GaussianMixtureEM(2, covariance_type="diag", n_init=3, random_seed=4).fit(
        _three_groups())
    copy = clone(gm)
    assert copy.get_params() == gm.get_params()
    assert not hasattr(copy, "means_")
    with pytest.raises(SkNotFittedError, match="not fitted"):
        copy.predict(_three_groups())
    np.testing.assert_array_equal(copy.fit(_three_groups()).means_, gm.means_)


def test_not_fitted_error_is_both_kinds():
    with pytest.raises(SkNotFittedError) as info:
        GaussianMixtureEM(2).score_samples([1.0, 2.0])
    assert isinstance(info.value, DataError)
    # an AttributeError too, like scikit-learn's: hasattr() on a fitted-only property
    # says False instead of raising
    assert isinstance(info.value, AttributeError)
    from bayesgmm.errors import NotFittedError

    assert issubclass(NotFittedError, AttributeError)
    assert issubclass(NotFittedError, ValueError)


def test_set_params_with_an_unknown_name_raises_data_error():
    gm = GaussianMixtureEM(2)
    with pytest.raises(DataError, match="no parameter 'n_component'") as info:
        gm.set_params(n_component=3)
    message = str(info.value)
    assert "valid parameters are: covariance_type, fixed, init," in message
    assert "Did you mean 'n_components'?" in message
    assert isinstance(info.value, ValueError)  # what scikit-learn's callers catch
    assert gm.n_components == 2  # nothing set
    # nothing is set when one name of several is wrong, and "a__b" is no nested name
    with pytest.raises(DataError, match="no parameter 'init__means'"):
        gm.set_params(n_components=4, init__means=[[0.0]])
    assert gm.n_components == 2
    # valid names still set (values are checked by fit, as scikit-learn does)
    assert gm.set_params(n_components=3, tol=1e-6) is gm
    assert (gm.n_components, gm.tol) == (3, 1e-6)
    with pytest.raises(DataError, match="n_components"):
        GaussianMixtureEM().set_params(n_components=0).fit(_three_groups())
    # through a pipeline, as grid searches call it
    pipe = make_pipeline(StandardScaler(), GaussianMixtureEM(2))
    pipe.set_params(gaussianmixtureem__n_components=3)
    assert pipe[-1].n_components == 3
    with pytest.raises(DataError, match="no parameter 'n_component'"):
        pipe.set_params(gaussianmixtureem__n_component=3)


def test_metadata_routing_through_a_pipeline():
    # X_err and sample_weight reach the estimator through Pipeline.fit with
    # scikit-learn's metadata routing; the result equals a direct fit bit for bit.
    # (An identity step: X_err must be in the units the estimator sees.)
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.5, 300), rng.normal(3, 0.5, 200)])
    err = rng.uniform(0.2, 0.8, x.size)
    x = x + err * rng.normal(size=x.size)
    w = rng.integers(1, 4, x.size).astype(float)
    X = x[:, None]
    direct = GaussianMixtureEM(2, random_seed=0).fit(X, X_err=err, sample_weight=w)
    with sklearn.config_context(enable_metadata_routing=True):
        est = GaussianMixtureEM(2, random_seed=0).set_fit_request(X_err=True,
                                                                  sample_weight=True)
        est.set_score_request(X_err=True)
        pipe = make_pipeline(FunctionTransformer(), est)
        pipe.fit(X, X_err=err, sample_weight=w)
        np.testing.assert_array_equal(pipe[-1].means_, direct.means_)
        np.testing.assert_array_equal(pipe[-1].covariances_, direct.covariances_)
        assert pipe.score(X, X_err=err) == direct.score(X, X_err=err)
        # without a request, scikit-learn refuses to drop the errors silently
        bare = make_pipeline(FunctionTransformer(), GaussianMixtureEM(2, random_seed=0))
        with pytest.raises(ValueError, match="X_err"):
            bare.fit(X, X_err=err)


def test_feature_names_checked_at_predict():
    # Two features with different roles: swapping the columns at predict time must raise
    # (on the old code it silently gave other labels).
    rng = np.random.default_rng(5)
    a = np.column_stack([rng.normal(0, 1, 300), rng.normal(0, 0.2, 300)])
    b = np.column_stack([rng.normal(8, 1, 300), rng.normal(4, 0.2, 300)])
    df = pd.DataFrame(np.vstack([a, b]), columns=["mass", "colour"])
    gm = GaussianMixtureEM(2, random_seed=0).fit(df)
    assert list(gm.feature_names_in_) == ["mass", "colour"]
    assert gm.n_features_in_ == 2
    assert len(set(gm.predict(df))) == 2
    with pytest.raises(DataError, match="Feature names must be in the same order"):
        gm.predict(df[["colour", "mass"]])
    with pytest.raises(DataError, match="Feature names unseen at fit time"):
        gm.predict_proba(df.rename(columns={"mass": "weight"}))
    with pytest.raises(DataError, match="Feature names"):
        gm.score(df[["colour", "mass"]])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        gm.predict(df.to_numpy())
    # a plain array at fit time keeps no names
    assert not hasattr(GaussianMixtureEM(2, random_seed=0).fit(df.to_numpy()),
                       "feature_names_in_")


def test_one_d_input():
    # A 1-D array is one feature at fit (the README's fit(df.x, X_err=df.x_err)), and for
    # the other methods after a one-feature fit; after a fit on several features it is
    # ambiguous and raises scikit-learn's "Reshape your data".
    x = np.r_[np.linspace(-1, 1, 50), np.linspace(4, 6, 50)]
    gm = GaussianMixtureEM(2, random_seed=0).fit(pd.Series(x, name="x"))
    assert gm.n_features_in_ == 1
    assert gm.predict([0.0, 5.0]).tolist() != [0, 0]
    gm2 = GaussianMixtureEM(1, random_seed=0).fit(np.column_stack([x, x**2]))
    with pytest.raises(DataError, match="Reshape your data"):
        gm2.predict(np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    "X,match",
    [
        (np.ones((12, 0)), r"0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of 1 is"),
        (np.ones((10, 1)) + 1j, "Complex data not supported"),
        (pytest.importorskip("scipy.sparse").csr_array(np.eye(5)), "sparse"),
    ],
)
def test_error_messages_scikit_learn_expects(X, match):
    with pytest.raises(DataError, match=match):
        GaussianMixtureEM(1).fit(X)


def test_object_element_is_a_type_error():
    X = np.ones((5, 2), dtype=object)
    X[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="argument must be a string or a real number"):
        GaussianMixtureEM(1).fit(X)


def test_import_bayesgmm_does_not_load_scikit_learn():
    # scikit-learn is a dependency, but its import pulls in SciPy's stats and pandas:
    # it loads with the EM estimator, not with `import bayesgmm` (the CLI's --help, the
    # Bayesian half's result readers stay light).
    import subprocess
    import sys

    code = ("import sys, bayesgmm; print([m for m in ('sklearn', 'pandas') "
            "if m in sys.modules]); bayesgmm.GaussianMixtureEM; print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stderr
