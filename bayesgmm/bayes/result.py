"""The ``DataTree`` a fit returns.

Posterior, sample stats, pointwise log-likelihood, posterior predictive (simulated in
``predictive.py``), observed and constant data, the EM estimate.
"""


from __future__ import annotations

import re
from typing import Any

import numpy as np

#: Largest chains x draws x points stored in log_likelihood by default (8 bytes each).
LOGLIK_MAX_VALUES = 50_000_000


#: "waiting [min]" or "waiting (min)": a name with its units
_NAME_UNITS = re.compile(r"^\s*(.*?\S)\s*[\[(]\s*([^\[\]()]+?)\s*[\])]\s*$")


def _data_name(X: Any) -> tuple[str, str]:
    """(name, units) of the data; ``("x", "")`` for plain arrays.

    The name of a pandas Series, a one-column DataFrame's column or an xarray DataArray;
    units from ``attrs["units"]`` or a name like ``"waiting [min]"``. The name is made
    safe for netCDF (no "/").
    """
    name = getattr(X, "name", None)
    columns = getattr(X, "columns", None)
    if columns is not None and len(columns) == 1:
        name = columns[0]
        attrs = getattr(X[name], "attrs", None) or getattr(X, "attrs", None) or {}
    else:
        attrs = getattr(X, "attrs", None) or {}
    units = str(attrs.get("units", "") or "") if isinstance(attrs, dict) else ""
    name = "" if name is None else str(name)
    m = _NAME_UNITS.match(name)
    if m and not units:
        name, units = m.group(1), m.group(2)
    name = "".join(c if c.isprintable() and c != "/" else "_" for c in name.strip()) or "x"
    if name in ("obs", "chain", "draw", "component"):  # the result's dimension names
        name += "_"
    return name, units


def _assemble(x, e, K, loc, scale, hyper, em, post, stats, sampler, seed, log_likelihood,
              name="x", units=""):
    import xarray as xr

    from .. import __version__
    from .likelihood import pointwise_loglik
    from .predictive import kept_draws, replicate

    n = x.shape[0]
    C, S = post.sizes["chain"], post.sizes["draw"]
    post = post.assign_coords(component=np.arange(K))
    for var, unit in (("weights", ""), ("means", units or "data units"),
                      ("sigmas", units or "data units")):
        post[var].attrs["units"] = unit
    post["sigmas"].attrs["long_name"] = "intrinsic width (measurement errors removed)"
    post.attrs.update({"sampler": sampler, "inference_library": sampler})

    z = (x - loc) / scale
    eps2 = np.zeros(n) if e is None else (e / scale) ** 2
    w = post["weights"].values.reshape(C * S, K)
    mu = ((post["means"].values - loc) / scale).reshape(C * S, K)
    sg = (post["sigmas"].values / scale).reshape(C * S, K)
    obs = np.arange(n)
    groups: dict[str, Any] = {"posterior": post, "sample_stats": stats}

    store_ll = (C * S * n <= LOGLIK_MAX_VALUES) if log_likelihood is None else log_likelihood
    if store_ll:
        ll = pointwise_loglik(z, eps2, np.ascontiguousarray(w), np.ascontiguousarray(mu),
                              np.ascontiguousarray(sg), float(np.log(scale)))
        groups["log_likelihood"] = xr.Dataset(
            {name: (("chain", "draw", "obs"), ll.reshape(C, S, n))},
            coords={"chain": post.chain.values, "draw": post.draw.values, "obs": obs},
        )

    idx = kept_draws(C, S, n)
    pp = replicate(post["weights"].values[:, idx], mu.reshape(C, S, K)[:, idx],
                   sg.reshape(C, S, K)[:, idx], eps2, loc, scale, seed)
    data_attrs = {"units": units} if units else {}
    groups["posterior_predictive"] = xr.Dataset(
        {name: (("chain", "draw", "obs"), pp, data_attrs)},
        coords={"chain": post.chain.values, "draw": post.draw.values[idx], "obs": obs},
    )
    groups["observed_data"] = xr.Dataset({name: ("obs", x, data_attrs)}, coords={"obs": obs})
    const = {
        "x_err": ("obs", np.zeros(n) if e is None else e),
        "loc": ((), loc),
        "scale": ((), scale),
    }
    # the priors' hyperparameters, named as build_model's pm.Data are; older files call
    # them prior_{key}_std, and no reader depends on either name
    for key, value in hyper.items():
        const[f"prior_{key}"] = ("component", value, {"units": "standardized"})
    groups["constant_data"] = xr.Dataset(const, coords={"obs": obs, "component": np.arange(K)})
    groups["em_estimate"] = xr.Dataset(
        {
            "weights": ("component", em["weights"]),
            "means": ("component", em["means"]),
            "sigmas": ("component", em["sigmas"]),
            "loglik": ((), float(em["loglik"])),
            "bic": ((), float(em["bic"])),
        },
        coords={"component": np.arange(K)},
        attrs={"n_iter": int(em["n_iter"]), "converged": int(em["converged"]),
               "degenerate": int(em["degenerate"])},
    )
    dt = xr.DataTree.from_dict(groups)
    dt.attrs.update({
        "bayesgmm_version": __version__,
        "n_components": K,
        "has_errors": int(e is not None),
        "sampler": sampler,
        "random_seed": seed,
        "log_likelihood_stored": int(bool(store_ll)),
        "data_name": name,
        "data_units": units,
    })
    return dt
