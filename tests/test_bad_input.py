"""Bad and awkward input, table-driven: the Python API and the command line.

Every bad input gets a ``DataError`` (the API) or exit status 2 with exactly one line on
stderr (the CLI), with a message that says what is wrong. Awkward but valid inputs give
the correct result, and no result holds a NaN without an error. Rows marked ``xfail``
are known bugs: the test states the right behaviour, the reason the wrong one.
"""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesgmm
from bayesgmm import ConvergenceWarning, DataError, GaussianMixtureEM, select_n_components
from bayesgmm.cli import main

_rng = np.random.default_rng(20261122)
X1 = np.concatenate([_rng.normal(0.0, 1.0, 60), _rng.normal(6.0, 1.0, 40)])  # n = 100, 1-D
X2 = np.column_stack([X1, _rng.normal(0.0, 1.0, 100)])  # n = 100, 2-D
N = X1.size

FIT_KW = dict(draws=20, tune=20, chains=1, progressbar=False, random_seed=0)


def em(K=2, **kw):
    """A fitter for GaussianMixtureEM(K).fit(X, **kw)."""
    return lambda X, **more: GaussianMixtureEM(K, random_seed=0).fit(X, **kw, **more)


def sel(ks=(1, 2), **kw):
    return lambda X: select_n_components(X, ks, random_seed=0, **kw)


def bm(K=2, **kw):
    return lambda X: bayesgmm.build_model(X, K, **kw)


def bfit(K=2, **kw):
    return lambda X: bayesgmm.fit(X, K, **{**FIT_KW, **kw})


def bug(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


_not_psd = np.tile([[1.0, 2.0], [2.0, 1.0]], (N, 1, 1))  # eigenvalues 3 and -1
_asym = np.tile([[1.0, 0.5], [0.0, 1.0]], (N, 1, 1))

# (call, X, error message fragment); every row must raise bayesgmm.DataError
API_ERRORS = [
    pytest.param(em(), np.r_[np.nan, X1[1:]], r"X contains 1 NaN or infinite value\(s\) "
                 r"\(first at row 0\); drop or impute", id="em-nan"),
    pytest.param(em(), np.r_[X1[:-1], np.inf], r"1 NaN or infinite value\(s\) \(first at "
                 r"row 99\)", id="em-inf"),
    pytest.param(em(), np.where(np.arange(N)[:, None] == 3, -np.inf, X2),
                 r"2 NaN or infinite value\(s\) \(first at row 3\)", id="em-neginf-2d"),
    pytest.param(em(), [], r"X has 0 sample\(s\); at least 2 are needed", id="em-empty"),
    pytest.param(em(), np.empty((0, 2)), r"X has 0 sample\(s\)", id="em-empty-2d"),
    pytest.param(em(1), [3.0], r"X has 1 sample\(s\); at least 2", id="em-one-point"),
    pytest.param(em(0), X1, r"n_components must be an integer >= 1; got 0\.", id="em-K0"),
    pytest.param(em(-1), X1, r"n_components must be an integer >= 1; got -1", id="em-Kneg"),
    pytest.param(em(1.5), X1, r"n_components must be an integer >= 1; got 1\.5", id="em-Kfloat"),
    pytest.param(em(True), X1, r"n_components must be an integer >= 1; got True", id="em-Kbool"),
    pytest.param(em(101), X1, r"n_components=101 exceeds the number of samples \(100\)",
                 id="em-K-gt-n"),
    pytest.param(em(X_err=-np.ones(N)), X1, r"X_err contains negative standard deviations "
                 r"\(first at flat index 0\)", id="em-err-negative"),
    pytest.param(em(X_err=np.r_[np.ones(N - 1), np.nan]), X1, r"X_err contains NaN or "
                 r"infinite values", id="em-err-nan"),
    pytest.param(em(X_err=np.r_[np.inf, np.ones(N - 1)]), X1, r"X_err contains NaN or "
                 r"infinite", id="em-err-inf"),
    pytest.param(em(X_err=np.ones(N - 1)), X1, r"X_err must have shape \(100,\), \(100, 1\) "
                 r".*got shape \(99,\)", id="em-err-length"),
    pytest.param(em(X_err=np.ones((N, 3))), X2, r"to match X of shape \(100, 2\); got shape "
                 r"\(100, 3\)", id="em-err-shape"),
    pytest.param(em(X_err=np.ones((N, 2, 3))), X2, r"got shape \(100, 2, 3\)",
                 id="em-err-cov-shape"),
    pytest.param(em(X_err=_not_psd), X2, r"X_err\[0\] is not positive semi-definite",
                 id="em-err-not-psd"),
    pytest.param(em(X_err=_asym), X2, r"X_err covariance matrices must be symmetric",
                 id="em-err-asymmetric"),
    pytest.param(em(X_err=["a"] * N), X1, r"X_err must be numeric", id="em-err-strings"),
    pytest.param(em(), ["a", "b", "c"], r"X must be numeric .*could not convert string",
                 id="em-strings"),
    pytest.param(em(), [1.0, "b", None], r"X must be numeric", id="em-mixed-objects"),
    pytest.param(em(), [[1.0, 2.0], [3.0]], r"X must be numeric", id="em-ragged"),
    pytest.param(em(), np.ones((4, 2, 2)), r"got an array with 3 dimensions", id="em-3d"),
    pytest.param(em(), np.ones((4, 0)), r"X has 0 feature\(s\) \(shape=\(4, 0\)\) while a "
                 r"minimum of 1 is required", id="em-no-features"),
    pytest.param(em(), None, r"got an array with 0 dimensions", id="em-none"),
    pytest.param(em(1), 3.0, r"got an array with 0 dimensions", id="em-scalar"),
    pytest.param(em(), np.full(10, 7.0), r"feature 0 of X is constant", id="em-constant"),
    pytest.param(em(), np.column_stack([X1, np.full(N, 2.5)]), r"feature 1 of X is constant",
                 id="em-constant-column"),
    pytest.param(em(), np.full(10, 7.0), r"every value equals 7\.0\)",
                 id="em-constant-message"),
    pytest.param(em(), X1 + 1j, r"X must be real", id="em-complex"),
    pytest.param(em(sample_weight=-np.ones(N)), X1, r"sample_weight must be finite and >= 0",
                 id="em-weight-negative"),
    pytest.param(em(sample_weight=np.zeros(N)), X1, r"sample_weight sums to zero",
                 id="em-weight-zero"),
    pytest.param(sel(), np.r_[np.nan, X1], r"X contains 1 NaN", id="select-nan"),
    pytest.param(sel(), [], r"X has 0 sample\(s\)", id="select-empty"),
    pytest.param(sel(()), X1, r"ks must be integers >= 1; got \[\]", id="select-no-k"),
    pytest.param(sel((0, 1)), X1, r"ks must be integers >= 1; got \[0, 1\]", id="select-k0"),
    pytest.param(sel((5, 6)), X1[:3], r"every k in \[5, 6\] exceeds the number of samples "
                 r"\(3\)", id="select-k-gt-n"),
    pytest.param(sel(), np.full(10, 1.0), r"feature 0 of X is constant", id="select-constant"),
    pytest.param(sel(criterion="loo"), X1, r"criterion must be 'bic' or 'aic'; got 'loo'",
                 id="select-criterion"),
    pytest.param(sel(X_err=np.ones(3)), X1, r"got shape \(3,\)", id="select-err-length"),
    pytest.param(bm(), np.r_[X1, np.nan], r"X contains 1 NaN .*first at row 100",
                 id="model-nan"),
    pytest.param(bm(), [], r"X has 0 sample\(s\)", id="model-empty"),
    pytest.param(bm(1), [2.0], r"X has 1 sample\(s\)", id="model-one-point"),
    pytest.param(bm(0), X1, r"n_components must be an integer >= 1; got 0", id="model-K0"),
    pytest.param(bm(4), X1[:3], r"n_components=4 exceeds the number of points \(3\)",
                 id="model-K-gt-n"),
    pytest.param(bm(), np.full(5, 3.0), r"the data are constant \(no spread\)",
                 id="model-constant"),
    pytest.param(bm(X_err=-np.ones(N)), X1, r"negative standard deviations", id="model-err-neg"),
    pytest.param(bm(X_err=np.ones(5)), X1, r"got shape \(5,\)", id="model-err-length"),
    pytest.param(bm(X_err=np.full(N, np.nan)), X1, r"X_err contains NaN", id="model-err-nan"),
    pytest.param(bm(priors={"foo": 1}), X1, r"unknown prior\(s\) \['foo'\]",
                 id="model-prior-key"),
    pytest.param(bm(priors={"sigmas_sigma": -1}), X1, r"prior sigmas_sigma must be positive",
                 id="model-prior-negative"),
    pytest.param(bm(X_err=np.ones((N, 3))), X2, r"X_err must have shape \(100,\), \(100, 2\) "
                 r".*got shape \(100, 3\)", id="model-md-err-shape"),
    pytest.param(bm(X_err=np.ones((N, 2, 3))), X2, r"got shape \(100, 2, 3\)",
                 id="model-md-err-cov-shape"),
    pytest.param(bm(X_err=_not_psd), X2, r"X_err\[0\] is not positive semi-definite",
                 id="model-md-err-not-psd"),
    pytest.param(bm(X_err=_asym), X2, r"X_err covariance matrices must be symmetric",
                 id="model-md-err-asymmetric"),
    pytest.param(bm(X_err=np.where(np.arange(N)[:, None] == 5, np.nan, np.ones((N, 2)))), X2,
                 r"X_err contains NaN", id="model-md-err-nan-where-observed"),
    pytest.param(bm(), np.where(np.arange(N)[:, None] == 7, np.nan, X2), r"X has 1 row\(s\) "
                 r"with every feature missing \(first at row 7\)", id="model-md-all-nan-row"),
    pytest.param(bm(1), np.ones((3, 5)) + np.arange(5), r"X has 5 features but only 3 points",
                 id="model-md-D-gt-n"),
    pytest.param(bm(), np.where(np.arange(N)[:, None] == 2, np.inf, X2), r"X contains 2 "
                 r"infinite value\(s\) \(first at row 2\); mark a missing value with NaN",
                 id="model-md-inf"),
    pytest.param(bm(), np.column_stack([X1, np.r_[1.0, np.full(N - 1, np.nan)]]),
                 r"feature 1 of X has 1 observed value\(s\)", id="model-md-feature-missing"),
    pytest.param(bm(), np.column_stack([X1, np.full(N, 2.5)]), r"feature 1 of X is constant "
                 r"\(every observed value equals 2\.5\)", id="model-md-constant-column"),
    pytest.param(bm(priors={"corr_eta": -1.0}), X2, r"prior corr_eta must be one positive",
                 id="model-md-corr-eta"),
    pytest.param(bfit(), np.r_[np.inf, X1], r"X contains 1 NaN or infinite", id="fit-inf"),
    pytest.param(bfit(1), [1.0], r"X has 1 sample\(s\)", id="fit-one-point"),
    pytest.param(bfit(0), X1, r"n_components must be an integer >= 1; got 0", id="fit-K0"),
    pytest.param(bfit(101), X1, r"n_components=101 exceeds the number of points \(100\)",
                 id="fit-K-gt-n"),
    pytest.param(bfit(), np.full(8, 1e9), r"the data are constant", id="fit-constant"),
    pytest.param(bfit(X_err=np.r_[0.1, -0.1, np.ones(N - 2)]), X1,
                 r"negative standard deviations \(first at flat index 1\)", id="fit-err-neg"),
    pytest.param(bfit(X_err=np.ones((N, 2))), X1, r"got shape \(100, 2\)", id="fit-err-shape"),
    # fit in D dims: the same DataError from validation.check_md, before any EM or sampling
    pytest.param(bfit(X_err=np.ones((N, 3))), X2, r"X_err must have shape \(100,\), \(100, 2\) "
                 r".*got shape \(100, 3\)", id="fit-md-err-shape"),
    pytest.param(bfit(X_err=_not_psd), X2, r"X_err\[0\] is not positive semi-definite",
                 id="fit-md-err-not-psd"),
    pytest.param(bfit(), np.where(np.arange(N)[:, None] == 7, np.nan, X2), r"X has 1 row\(s\) "
                 r"with every feature missing \(first at row 7\)", id="fit-md-all-nan-row"),
    pytest.param(bfit(1), X2[:2].repeat(2, axis=1)[:, :3], r"X has 3 features but only 2 "
                 r"points", id="fit-md-D-gt-n"),
    pytest.param(bfit(draws=0), X1, r"draws must be a positive integer; got 0", id="fit-draws0"),
    pytest.param(bfit(chains=1.5), X1, r"chains must be a positive integer", id="fit-chains"),
    pytest.param(bfit(sampler="gibbs"), X1, r"sampler must be 'nutpie', 'pymc', 'numpyro' or 'smc'",
                 id="fit-sampler"),
    pytest.param(bfit(target_accept=float("nan")), X1, r"target_accept must be in \(0, 1\)",
                 id="fit-target-accept"),
]


@pytest.mark.parametrize(("call", "X", "match"), API_ERRORS)
def test_api_rejects_bad_input(call, X, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent conversion warnings on the way either
        with pytest.raises(DataError, match=match):
            call(X)


# ------------------------------------------------------------------ awkward but valid


def _finite_em(gm):
    for arr in (gm.weights_, gm.means_, gm.covariances_, [gm.loglik_], gm.loglik_trace_):
        assert np.all(np.isfinite(arr)), "EM result holds NaN/inf without an error"
    assert gm.weights_.sum() == pytest.approx(1.0, abs=1e-12)


def _em_fit(X, K=2, **kw):
    return GaussianMixtureEM(K, random_seed=0, **kw).fit(X)


def _sorted(gm):
    o = np.argsort(gm.means_[:, 0])
    return gm.weights_[o], gm.means_[o], gm.covariances_[o]


@pytest.fixture(scope="module")
def base():
    return _em_fit(X1)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda x: list(x), id="list"),
        pytest.param(lambda x: pd.Series(x, name="v"), id="pandas-series"),
        pytest.param(lambda x: pd.DataFrame({"v": x}), id="pandas-dataframe"),
        pytest.param(lambda x: x[:, None], id="column-2d"),
        pytest.param(lambda x: pytest.importorskip("polars").Series("v", x), id="polars"),
    ],
)
def test_container_types_give_the_same_fit(base, convert):
    gm = _em_fit(convert(X1))
    _finite_em(gm)
    # same float64 values in another container: the same arithmetic, exactly
    for a, b in zip(_sorted(gm), _sorted(base), strict=True):
        np.testing.assert_array_equal(a, b)
    assert gm.loglik_ == base.loglik_


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float16])
def test_numeric_dtypes_are_read_as_float64(dtype):
    xi = np.round(X1 * 10).astype(dtype)
    gm = _em_fit(xi)
    ref = _em_fit(xi.astype(np.float64))
    _finite_em(gm)
    for a, b in zip(_sorted(gm), _sorted(ref), strict=True):
        np.testing.assert_array_equal(a, b)


def test_zero_errors_are_plain_em(base):
    gm = GaussianMixtureEM(2, random_seed=0).fit(X1, X_err=np.zeros(N))
    assert not gm.has_errors_
    for a, b in zip(_sorted(gm), _sorted(base), strict=True):
        np.testing.assert_array_equal(a, b)


def test_error_column_vector_shape_accepted():
    e = np.full(N, 0.3)
    a = GaussianMixtureEM(2, random_seed=0).fit(X1, X_err=e)
    b = GaussianMixtureEM(2, random_seed=0).fit(X1, X_err=e[:, None])
    c = GaussianMixtureEM(2, random_seed=0).fit(X1, X_err=(e**2)[:, None, None])
    _finite_em(a)
    for other in (b, c):
        for u, v in zip(_sorted(a), _sorted(other), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [pytest.param(1.0, 1e9, id="offset-1e9-spread-1"),
     pytest.param(1e-9, 0.0, id="spread-1e-9"),
     pytest.param(1e9, 0.0, id="spread-1e9"),
     pytest.param(1e-9, 1.0, id="offset-1-spread-1e-9")],
)
def test_extreme_offsets_and_scales(base, a, b):
    gm = _em_fit(a * X1 + b)
    _finite_em(gm)
    w0, m0, c0 = _sorted(base)
    w, m, c = _sorted(gm)
    # standardized inside, so only the rounding of a*x + b is lost: with b/a = 1e9 that is
    # ~1e-7 of the spread, amplified a little by EM's iterations
    np.testing.assert_allclose(w, w0, atol=1e-5)
    np.testing.assert_allclose((m - b) / a, m0, atol=1e-5 * X1.std())
    np.testing.assert_allclose(c / a**2, c0, rtol=1e-4)
    assert gm.loglik_ == pytest.approx(base.loglik_ - N * np.log(a), rel=1e-6, abs=1e-4)


def test_k_larger_than_distinct_values_is_flagged_degenerate():
    x = np.array([1.0, 1, 2, 2, 1, 2, 1, 2])
    with pytest.warns(ConvergenceWarning, match="collapsed onto a few \\(repeated\\) points"):
        gm = _em_fit(x, K=3)
    assert gm.degenerate_
    _finite_em(gm)
    # selection never picks a degenerate k: two exactly repeated values are one bump
    res = select_n_components(x, range(1, 4), random_seed=0)
    assert res.best_k == 1
    assert res.table.set_index("k").loc[[2, 3], "degenerate"].all()
    assert np.isfinite(res.table[["loglik", "bic", "aic"]].to_numpy()).all()


def test_many_repeated_values():
    x = np.r_[np.zeros(90), np.random.default_rng(3).normal(0, 1, 10)]
    gm = _em_fit(x)
    _finite_em(gm)
    assert not gm.degenerate_  # the collapsed start on the 90 zeros is not returned
    res = select_n_components(x, range(1, 4), random_seed=0)
    assert not res.table.set_index("k").loc[res.best_k, "degenerate"]


def test_two_points_two_components():
    with pytest.warns(ConvergenceWarning):
        gm = _em_fit([0.0, 1.0], K=2)
    _finite_em(gm)


@pytest.mark.parametrize(
    "convert",
    [pytest.param(lambda x: list(x), id="list"),
     pytest.param(lambda x: pd.Series(x), id="series"),
     pytest.param(lambda x: np.round(x * 100).astype(np.int64), id="int"),
     pytest.param(lambda x: x.astype(np.float32), id="float32")],
)
def test_build_model_accepts_containers(convert):
    model = bayesgmm.build_model(convert(X1), 2, X_err=list(np.full(N, 0.1)))
    ref = bayesgmm.build_model(np.asarray(convert(X1), dtype=np.float64), 2,
                               X_err=np.full(N, 0.1))
    point = {"weights_simplex__": np.zeros(1), "means_std_ordered__": np.array([-0.5, 0.0]),
             "sigmas_std_log__": np.zeros(2)}
    logp = model.compile_logp()(point)
    assert np.isfinite(logp)
    assert logp == ref.compile_logp()(point)


def test_build_model_start_is_given_to_the_sampler():
    # build_model carries no initval (PyMC 6 cannot compute_log_likelihood on such a model);
    # the ordered means' default start is valid (tied prior centres are spread by the
    # transform), and a start passed to the sampler is valid too.
    model = bayesgmm.build_model(X1, 3)
    assert all(v is None for v in model.rvs_to_initial_values.values())
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    start = model.initial_point()
    start["means_std_ordered__"] = np.array([-1.0, np.log(1.0), np.log(1.0)])
    assert np.isfinite(model.compile_logp()(start))
    point = pm_initial_point(model, {"means_std": np.linspace(-1.0, 1.0, 3)})
    assert np.isfinite(model.compile_logp()(point))


def pm_initial_point(model, initvals):
    from pymc.initial_point import make_initial_point_fn

    fn = make_initial_point_fn(model=model, overrides=initvals, jitter_rvs=set(),
                               return_transformed=True)
    return fn(0)


def _assert_no_nan(dt):
    for group in dt.groups:
        if group.startswith("/sample_stats"):
            continue  # nutpie marks "no divergence" with NaN positions, by design
        for name, var in dt[group].data_vars.items():
            values = np.asarray(var.values)
            if values.dtype.kind in "fc":
                assert not np.isnan(values).any(), f"NaN in {group}/{name}"


def test_fit_k_larger_than_distinct_values_has_no_nan():
    x = np.array([1.0, 1, 2, 2, 1, 2, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesgmm.SamplingWarning)
        dt = bayesgmm.fit(x, 3, **FIT_KW)
    _assert_no_nan(dt)


def test_fit_offset_and_zero_errors():
    x = X1 + 1e9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesgmm.SamplingWarning)
        dt = bayesgmm.fit(x, 2, X_err=np.zeros(N), **FIT_KW)
    _assert_no_nan(dt)
    means = np.sort(dt.posterior["means"].mean(("chain", "draw")).values)
    # n = 40 and 60 per component, sd 1: posterior means within ~0.5 of the cluster centres
    np.testing.assert_allclose(means - 1e9, [0.0, 6.0], atol=0.6)


# ---------------------------------------------------------------------------- CLI

FILES = {
    "huge.csv": "x\n5e293\n0\n1\n2\n",
    "ok.csv": "x,e,s,i\n1,0.1,a,1\n2,0.2,b,2\n3,0.1,c,2\n4,0.3,d,3\n10,0.2,e,9\n11,0.1,f,9\n",
    "three.csv": "a,b,c,e1,e2\n1,2,3,0.1,0.1\n2,3,1,0.1,0.1\n5,1,2,0.1,0.1\n",
    "gap.csv": "x\n1\n\n3\n4\n",
    "inf.csv": "x\n1\ninf\n3\n",
    "neg.csv": "x,e\n1,-1\n2,1\n3,1\n",
    "nanerr.csv": "x,e\n1,\n2,1\n3,1\n",
    "const.csv": "x\n1\n1\n1\n1\n",
    "one.csv": "x\n1\n",
    "empty.csv": "",
    "header.csv": "x\n",
    "quote.csv": 'hello world\n"unterminated\n',
    "text.csv": "name\nalpha\nbeta\ngamma\n",
    "data.json": "{}",
    "md.csv": "a,b,c,ea,eb,ec,r,rbad\n1,2,3,0.1,0.1,0.1,0.5,0.5\n2,,1,0.1,,0.1,,\n"
              "5,1,2,0.1,0.1,0.1,0.2,1.5\n4,3,0,0.2,0.1,0.1,0.1,0\n",
    "nanrow.csv": "a,b\n1,2\n2,1\n,\n5,1\n",
    "bad.parquet": "nope",
}


@pytest.fixture
def files(tmp_path, monkeypatch):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


CLI_ERRORS = [
    pytest.param("em ok.csv --k 0", r"argument --k: expected a positive integer, got '0'",
                 id="em-K0"),
    pytest.param("em ok.csv --k two", r"expected a positive integer, got 'two'", id="em-Kword"),
    pytest.param("em ok.csv --k 7", r"--k 7 exceeds the number of rows \(6\)", id="em-K-gt-n"),
    pytest.param("em ok.csv --k 2 --columns zz", r"column 'zz' not found in 'ok.csv'; "
                 r"available columns: x, e, s, i\.", id="em-missing-column"),
    pytest.param("em ok.csv --k 2 --columns s", r"column 's' in 'ok.csv' is not numeric "
                 r"\(data row 1 holds 'a'\)", id="em-text-column"),
    pytest.param("em ok.csv --k 2 --columns x --errors s", r"column 's' .* is not numeric",
                 id="em-text-errors"),
    pytest.param("em ok.csv --k 2 --columns x --errors nope", r"column 'nope' not found",
                 id="em-missing-errors"),
    pytest.param("em three.csv --k 1 --columns a b c --errors e1 e2",
                 r"got 2 error column\(s\) for 3 data column\(s\)", id="em-errors-count"),
    pytest.param("em gap.csv --k 1", r"column 'x' in 'gap.csv' has 1 missing, NaN or "
                 r"infinite value\(s\) \(first at row 1\)", id="em-missing-value"),
    pytest.param("em inf.csv --k 1", r"1 missing, NaN or infinite value\(s\) \(first at row 1\)",
                 id="em-inf"),
    pytest.param("em neg.csv --k 1 --columns x --errors e", r"error column 'e' has negative "
                 r"values", id="em-errors-negative"),
    pytest.param("em nanerr.csv --k 1 --columns x --errors e", r"column 'e' in 'nanerr.csv' "
                 r"has 1 missing", id="em-errors-missing"),
    pytest.param("em const.csv --k 1", r"feature 0 of X is constant", id="em-constant"),
    pytest.param("em one.csv --k 1", r"X has 1 sample\(s\); at least 2", id="em-one-row"),
    pytest.param("em empty.csv --k 1", r"cannot read 'empty.csv' as \.csv: No columns",
                 id="em-empty-file"),
    pytest.param("em header.csv --k 1", r"'header.csv' has no rows", id="em-header-only"),
    pytest.param("em quote.csv --k 1", r"cannot read 'quote.csv' as \.csv", id="em-not-a-table"),
    pytest.param("em binary.csv --k 1", r"cannot read 'binary.csv' as \.csv", id="em-binary"),
    pytest.param("em text.csv --k 1", r"'text.csv' has no numeric columns \(read as text: "
                 r"name; check the separator", id="em-no-numeric"),
    pytest.param("em data.json --k 1", r"unknown file type '\.json'", id="em-json"),
    pytest.param("em bad.parquet --k 1", r"cannot read 'bad.parquet' as \.parquet",
                 id="em-bad-parquet"),
    pytest.param("em missing.csv --k 1", r"file not found: 'missing.csv'", id="em-no-file"),
    pytest.param("em adir --k 1", r"'adir' holds no .parquet or .csv files",
                 id="em-directory"),
    pytest.param("em ok.csv --k 2 --covariance EEE", r"invalid choice: 'EEE'",
                 id="em-covariance"),
    pytest.param("em ok.csv", r"the following arguments are required: --k", id="em-no-k"),
    pytest.param("select ok.csv --k-max 0", r"expected a positive integer, got '0'",
                 id="select-kmax0"),
    pytest.param("select const.csv --k-max 2", r"feature 0 of X is constant",
                 id="select-constant"),
    pytest.param("select one.csv --k-max 2", r"X has 1 sample\(s\)", id="select-one-row"),
    pytest.param("fit ok.csv --k 0 --column x --out o", r"--k must be a positive integer or "
                 r"'auto'; got '0'", id="fit-K0"),
    pytest.param("fit ok.csv --k abc --column x --out o", r"got 'abc'", id="fit-Kword"),
    pytest.param("fit ok.csv --k 9 --column x --out o", r"--k 9 exceeds the number of rows "
                 r"\(6\)", id="fit-K-gt-n"),
    pytest.param("fit ok.csv --k 2 --out o", r"'ok.csv' has 3 numeric columns besides the "
                 r"errors \(x, e, i\); choose one with --column", id="fit-ambiguous-column"),
    pytest.param("fit ok.csv --k 2 --column s --out o", r"column 's' in 'ok.csv' is not "
                 r"numeric", id="fit-text-column"),
    pytest.param("fit ok.csv --k 2 --column q --out o", r"column 'q' not found", id="fit-no-col"),
    pytest.param("fit const.csv --k 1 --out o", r"constant", id="fit-constant"),
    pytest.param("fit neg.csv --k 1 --column x --errors e --out o", r"error column 'e' has "
                 r"negative values", id="fit-errors-negative"),
    pytest.param("fit ok.csv --k 2 --column x --out ok.csv", r"--out 'ok.csv' exists and is "
                 r"a file", id="fit-out-file"),
    pytest.param("fit ok.csv --k 2 --column x --draws 0 --out o", r"argument --draws",
                 id="fit-draws0"),
    pytest.param("fit ok.csv --k 2 --column x --target-accept 1.5 --out o",
                 r"argument --target-accept: expected a number between 0 and 1, got '1.5'",
                 id="fit-target-accept"),
    # D dims: --columns A B ... with --errors and --error-corr / --error-cov
    pytest.param("fit three.csv --k 1 --columns a b c --errors e1 e2 --out o",
                 r"got 2 error column\(s\) for 3 data column\(s\)", id="fit-md-errors-count"),
    pytest.param("fit three.csv --k 1 --columns a b c e1 --out o", r"4 data columns \(a, b, "
                 r"c, e1\) but only 3 row\(s\) in 'three.csv'", id="fit-md-D-gt-n"),
    pytest.param("fit nanrow.csv --k 1 --columns a b --out o", r"1 row\(s\) of 'nanrow.csv' "
                 r"have every data column \(a, b\) missing \(first at row 2\)",
                 id="fit-md-all-nan-row"),
    pytest.param("fit md.csv --k 1 --columns a b --errors ea --error-corr a:b=zz --out o",
                 r"--error-corr 'a:b=zz': column 'zz' not found in 'md.csv'",
                 id="fit-md-corr-no-column"),
    pytest.param("fit md.csv --k 1 --columns a b --errors ea eb --error-corr a:c=r --out o",
                 r"'c' is not one of the data columns \(a, b\)", id="fit-md-corr-not-data"),
    pytest.param("fit md.csv --k 1 --columns a b --errors ea eb --error-corr a:a=r --out o",
                 r"pairs 'a' with itself", id="fit-md-corr-self"),
    pytest.param("fit md.csv --k 1 --columns a b --errors ea eb --error-corr a:b=rbad "
                 "--out o", r"column 'rbad' in 'md.csv' has 1 correlation\(s\) outside "
                 r"\[-1, 1\] \(first at row 2: 1.5\)", id="fit-md-corr-range"),
    pytest.param("fit md.csv --k 1 --columns a c --errors ea ec --error-corr a:c=rbad "
                 "--out o", r"column 'rbad' in 'md.csv' has 1 missing value\(s\) \(first at "
                 r"row 1\) where 'a' and 'c' are both observed", id="fit-md-corr-empty"),
    pytest.param("fit md.csv --k 1 --columns a b c --errors ea eb ec --error-corr a:b=0.9 "
                 "b:c=0.9 a:c=-0.9 --out o", r"3 row\(s\) of 'md.csv' have an error "
                 r"covariance that is not positive semi-definite \(first at row 0",
                 id="fit-md-cov-not-psd"),
    pytest.param("fit md.csv --k 1 --columns a c --errors ea ec --error-cov a:c=0.5 --out o",
                 r"an error covariance that is not positive semi-definite",
                 id="fit-md-cov-beyond-sds"),
    pytest.param("fit md.csv --k 1 --columns a b --error-corr a:b=r --out o",
                 r"--error-corr and --error-cov need --errors", id="fit-md-corr-no-errors"),
    pytest.param("fit md.csv --k 1 --columns a b --errors ea eb --error-corr a:b --out o",
                 r"argument --error-corr: expected A:B=R", id="fit-md-corr-syntax"),
    pytest.param("fit md.csv --k 1 --column a --errors ea --error-corr a:b=r --out o",
                 r"give two or more with --columns", id="fit-1d-corr"),
    pytest.param("fit md.csv --k 1 --column a --columns a b --out o",
                 r"argument --columns: not allowed with argument --column",
                 id="fit-column-and-columns"),
    pytest.param("fit md.csv --k 1 --columns a a --out o", r"--columns names 'a' more than "
                 r"once", id="fit-md-column-twice"),
    pytest.param("fit md.csv --k 5 --columns a b --out o", r"--k 5 exceeds the number of rows "
                 r"\(4\)", id="fit-md-K-gt-n"),
    pytest.param("em huge.csv --k 1", r"X has values up to 5e\+293, beyond what float64 can "
                 r"square .*divide by 1e293", id="em-huge-values"),
    pytest.param("fit huge.csv --k 1 --out o", r"beyond what float64 can square",
                 id="fit-huge-values"),
    pytest.param("report nope.nc", r"file not found: 'nope.nc'", id="report-no-file"),
    pytest.param("report ok.csv", r"cannot read 'ok.csv' as a saved posterior",
                 id="report-not-netcdf"),
    pytest.param("frobnicate", r"invalid choice: 'frobnicate'", id="bad-command"),
]


@pytest.mark.parametrize(("argv", "match"), CLI_ERRORS)
def test_cli_user_errors(files, capsys, argv, match):

    try:
        code = main(argv.split())
    except SystemExit as exc:  # argparse's own errors: still status 2 and one line
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(match, lines[0]), lines[0]
    assert not (files / "o").exists()  # a failed fit leaves no output behind


def test_cli_integer_column(files, capsys):
    code = main(["em", "ok.csv", "--k", "1", "--columns", "i", "--seed", "0", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    obj = json.loads(out.out)
    values = np.array([1, 2, 2, 3, 9, 9], dtype=float)
    # K = 1: the maximum-likelihood fit is the sample mean and the biased variance
    assert obj["means"][0][0] == pytest.approx(values.mean(), rel=1e-12)
    assert obj["covariances"][0][0][0] == pytest.approx(values.var(), rel=1e-6)
    assert all(np.isfinite(obj[k]) for k in ("loglik", "bic", "aic"))
