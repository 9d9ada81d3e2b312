"""The posterior functions' arguments: ``X``/``X_err`` as everywhere, old names still work.

No sampling: a small hand-made result (two chains of draws around a two-component
mixture) is enough, since only the plumbing of the arguments is tested here; the
statistics of membership, density and true values are tested on real fits in
``test_inference.py`` and ``test_robustness.py``.
"""

import inspect
import warnings

import numpy as np
import pytest
import xarray as xr

import bayesgmm
from bayesgmm import DataError, GaussianMixtureEM, plots, posterior

RENAMED = {"x", "x_err", "grid"}  # the old names of X and X_err


@pytest.fixture(scope="module")
def dt():
    rng = np.random.default_rng(5)
    C, S, n = 2, 60, 40
    w0 = 0.4 + 0.02 * rng.standard_normal((C, S))
    post = xr.Dataset(
        {"weights": (("chain", "draw", "component"), np.stack([w0, 1 - w0], -1)),
         "means": (("chain", "draw", "component"),
                   [0.0, 3.0] + 0.1 * rng.standard_normal((C, S, 2))),
         "sigmas": (("chain", "draw", "component"),
                    [0.7, 0.9] + 0.05 * rng.standard_normal((C, S, 2)))},
        coords={"chain": np.arange(C), "draw": np.arange(S), "component": [0, 1]},
    )
    x = np.concatenate([rng.normal(0, 0.7, n // 2), rng.normal(3, 0.9, n // 2)])
    return xr.DataTree.from_dict({
        "posterior": post,
        "observed_data": xr.Dataset({"x": ("obs", x)}, coords={"obs": np.arange(n)}),
        "constant_data": xr.Dataset({"x_err": ("obs", rng.uniform(0.1, 0.5, n))},
                                    coords={"obs": np.arange(n)}),
    })


def _old_keyword(call, old: str, new: str):
    """``call()``'s result; it must give exactly one FutureWarning naming both names."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    future = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(future) == 1, [str(w.message) for w in caught]
    message = str(future[0].message)
    assert f"'{old}' is renamed '{new}'" in message
    # it points at the caller's line (here), not at bayesgmm's own code
    assert future[0].filename == __file__
    return result


def test_membership_takes_X_and_X_err(dt):
    points, errors = [-1.0, 1.5, 4.0], [0.0, 0.3, 0.6]
    positional = bayesgmm.membership(dt, points, X_err=errors, ci_prob=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names give no warning
        new = bayesgmm.membership(dt, X=points, X_err=errors, ci_prob=0.9)
    xr.testing.assert_identical(new, positional)
    old = _old_keyword(lambda: bayesgmm.membership(dt, points, x_err=errors, ci_prob=0.9),
                       "x_err", "X_err")
    xr.testing.assert_identical(old, positional)
    old = _old_keyword(lambda: bayesgmm.membership(dt, x=points, ci_prob=0.9), "x", "X")
    xr.testing.assert_identical(old, bayesgmm.membership(dt, points, ci_prob=0.9))
    # the error must really be used (else the test above proves nothing)
    assert not np.allclose(old["mean"], positional["mean"])


def test_membership_with_both_names_is_an_error(dt):
    with pytest.raises(TypeError, match="both 'X_err' and its old name 'x_err'"):
        bayesgmm.membership(dt, 1.0, X_err=0.1, x_err=0.2)
    with pytest.raises(DataError, match="X_err must be finite"):
        bayesgmm.membership(dt, 1.0, X_err=-1.0)


def test_density_takes_X(dt):
    grid = np.linspace(-3, 6, 50)
    positional = bayesgmm.density(dt, grid, deconvolved=True)
    xr.testing.assert_identical(bayesgmm.density(dt, X=grid, deconvolved=True), positional)
    old = _old_keyword(lambda: bayesgmm.density(dt, grid=grid, deconvolved=True),
                       "grid", "X")
    xr.testing.assert_identical(old, positional)


def test_membership_figure_takes_X_err(dt):
    new = plots.membership_data(dt, n_grid=30, X_err=0.5)
    old = _old_keyword(lambda: plots.membership_data(dt, n_grid=30, x_err=0.5),
                       "x_err", "X_err")
    xr.testing.assert_identical(old, new)
    assert new.attrs["x_err"] == 0.5  # the output's attribute keeps its name
    fig = _old_keyword(lambda: plots.plot_membership(dt, n_grid=30, x_err=0.5),
                       "x_err", "X_err")
    assert "error 0.5" in fig.axes[0].get_title()
    assert "error 0.5" in plots.plot_membership(dt, n_grid=30, X_err=0.5).axes[0].get_title()


def _public_functions():
    from bayesgmm import datasets, diagnostics, report, selection

    for module in (bayesgmm, posterior, plots, diagnostics, report, datasets, selection):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
    for name, method in inspect.getmembers(GaussianMixtureEM, inspect.isfunction):
        if not name.startswith("_"):
            yield f"GaussianMixtureEM.{name}", method


def test_public_api_names_data_X_and_X_err():
    # one name for the data in the public API: fit, build_model, the estimator, and the
    # functions that take new values all say X and X_err
    found = {name: set(inspect.signature(f).parameters) & RENAMED
             for name, f in _public_functions()}
    assert {name: old for name, old in found.items() if old} == {}
    takes_X = {name for name, f in _public_functions()
               if "X" in inspect.signature(f).parameters}
    assert {"bayesgmm.fit", "bayesgmm.build_model", "bayesgmm.membership",
            "bayesgmm.density", "bayesgmm.select_n_components"} <= takes_X
