"""Membership, density and true values of a D-dimensional mixture (D >= 2).

The NumPy core behind :func:`~bayesgmm.posterior.membership`,
:func:`~bayesgmm.posterior.density` and :func:`~bayesgmm.posterior.true_values` when the
result's posterior ``means`` have a ``feature`` dim, and :func:`density_grid`, the
density of two features on a grid (contour plots). Points may miss features (NaN): a
point's quantities use its observed features only, exactly (the mixture's marginal over
them). Points are handled one pattern of observed features at a time and in chunks, so
no (n, K, D, D) array is ever built; draws are thinned evenly as in 1-D.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..validation import check_errors, check_X

__all__ = ["feature_values", "is_md"]

_LOG_2PI = float(np.log(2 * np.pi))
_BLOCK = 2_000_000  # floats in one chunk's (draws, points, components, D, D) arrays


def is_md(dt: Any) -> bool:
    """Whether a result is D-dimensional: its posterior ``means`` have a ``feature`` dim."""
    try:
        return "feature" in dt["posterior"]["means"].dims
    except KeyError:
        return False


def feature_values(dt: Any) -> np.ndarray:
    """The ``feature`` coordinate of a D-dim result's posterior (column names or 0..D-1)."""
    return np.asarray(dt["posterior"]["feature"].values)


def draws_md(dt: Any, max_draws: int | None = None) -> tuple[np.ndarray, ...]:
    """Flattened weights (S, K), means (S, K, D), covariances (S, K, D, D), thinned evenly."""
    post = dt["posterior"]
    try:
        w = post["weights"].transpose(..., "component").values
        mu = post["means"].transpose(..., "component", "feature").values
        if "covariances" in post:
            cov = post["covariances"].transpose(..., "component", "feature", "feature_").values
        else:
            sd = post["sds"].transpose(..., "component", "feature").values
            corr = post["correlations"].transpose(
                ..., "component", "feature", "feature_").values
            cov = sd[..., :, None] * corr * sd[..., None, :]
    except (KeyError, ValueError):
        raise DataError(
            "expected a D-dimensional bayesgmm.fit result: a posterior with weights "
            "(component), means (component, feature) and covariances (component, feature, "
            "feature_) or sds and correlations."
        ) from None
    K, D = mu.shape[-2:]
    w, mu, cov = w.reshape(-1, K), mu.reshape(-1, K, D), cov.reshape(-1, K, D, D)
    if max_draws is not None and w.shape[0] > max_draws:
        idx = np.linspace(0, w.shape[0] - 1, max_draws).round().astype(int)
        w, mu, cov = w[idx], mu[idx], cov[idx]
    return np.asarray(w, float), np.asarray(mu, float), np.asarray(cov, float)


def check_points_md(X: Any, features: np.ndarray, name: str = "X") -> np.ndarray:
    """Points of shape (m, D) (one point may be given as (D,)); NaN marks a missing feature.

    A table whose columns include every feature name is reordered to the features' order.
    """
    D = features.size
    cols = getattr(X, "columns", None)
    if cols is not None and all(str(f) in map(str, cols) for f in features):
        X = X[[c for f in features for c in cols if str(c) == str(f)]]
    arr = np.asarray(X)
    if arr.ndim == 1 and arr.size == D:
        arr = arr.reshape(1, D)
    if arr.ndim != 2 or arr.shape[1] != D:
        raise DataError(
            f"{name} must have shape (m, {D}) (one column per feature of the fit); "
            f"got shape {arr.shape}."
        )
    return check_X(arr, name=name, min_samples=1, n_features=D, allow_nan=True)


def point_errors_md(X_err: Any, x: np.ndarray, name: str = "X_err") -> np.ndarray | None:
    """Error covariances (m, D, D) of points ``x`` (sds (m,), (m, D), a scalar, or (m, D, D)).

    None when there are no errors or all are zero.
    """
    if X_err is None:
        return None
    m, D = x.shape
    if np.ndim(X_err) == 0:
        X_err = np.full(m, X_err, dtype=float)
    cov = check_errors(X_err, m, D, name=name, missing=np.isnan(x))
    return cov if np.any(cov) else None


def stored_errors(dt: Any) -> np.ndarray | None:
    """The data's error covariances ``constant_data["x_err_cov"]`` (n, D, D), None if zero."""
    if "constant_data" not in dt.children or "x_err_cov" not in dt["constant_data"]:
        return None
    cov = np.asarray(dt["constant_data"]["x_err_cov"].transpose(
        "obs", "feature", "feature_").values, dtype=float)
    return cov if np.any(cov) else None


def patterns(observed: np.ndarray):
    """(observed feature indices, rows) for each pattern of observed features."""
    pats, inv = np.unique(observed, axis=0, return_inverse=True)
    inv = np.ravel(inv)
    for j, pat in enumerate(pats):
        yield np.flatnonzero(pat), np.flatnonzero(inv == j)


def chunks(rows: np.ndarray, S: int, K: int, D: int):
    """``rows`` in pieces small enough for (S, c, K, D, D) arrays of ``_BLOCK`` floats."""
    step = max(1, _BLOCK // (S * K * D * D))
    for a in range(0, rows.size, step):
        yield rows[a:a + step]


def _cholesky(C: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Lower Cholesky factor of a stack of small matrices, entry by entry.

    ``C[i][j]`` is entry (i, j) of every matrix (an array over the stack); so is the
    result's ``L[i][j]`` (j <= i). Vectorised over the stack with contiguous arrays:
    millions of 2 x 2 or 3 x 3 matrices cost a few array operations each, where a LAPACK
    call per matrix (``np.linalg.cholesky``) would cost more than the arithmetic.
    """
    d = len(C)
    L: list[list[np.ndarray]] = [[None] * d for _ in range(d)]  # type: ignore[list-item]
    for j in range(d):
        acc = C[j][j]
        for k in range(j):
            acc = acc - L[j][k] * L[j][k]
        L[j][j] = np.sqrt(acc)
        for i in range(j + 1, d):
            acc = C[i][j]
            for k in range(j):
                acc = acc - L[i][k] * L[j][k]
            L[i][j] = acc / L[j][j]
    return L


def _solve_lower(L: list[list[np.ndarray]], b: list[np.ndarray]) -> list[np.ndarray]:
    """L^-1 b by forward substitution, entry by entry (see :func:`_cholesky`)."""
    z: list[np.ndarray] = []
    for i in range(len(b)):
        acc = b[i]
        for k in range(i):
            acc = acc - L[i][k] * z[k]
        z.append(acc / L[i][i])
    return z


def component_terms(
    x: np.ndarray, E: np.ndarray | None, w: np.ndarray, mu: np.ndarray, cov: np.ndarray,
    o: np.ndarray, *, posterior: bool = False,
) -> Any:
    """Per draw, point and component: log(w_k N(x_o | mu_ko, Sigma_koo + E_oo)).

    ``x`` (c, D) are points all observed in features ``o`` (indices); ``E`` is None, one
    shared (D, D) error covariance, or one per point (c, D, D). Returns (S, c, K); with
    ``posterior``, also the true value's posterior mean b (S, c, K, D) and variances
    (S, c, K, D) given the component (XD: b = mu_k + Sigma_k[:, o] C^-1 (x_o - mu_ko),
    B = Sigma_k - Sigma_k[:, o] C^-1 Sigma_k[o, :], C = Sigma_koo + E_oo): deconvolved
    observed features and, for missing ones, the conditional mean given the observed.
    Through C's Cholesky factor L: z = L^-1 (x_o - mu_ko), Y = L^-1 Sigma_k[o, :], so
    the Mahalanobis term is |z|^2, b = mu_k + Y'z and diag(B) = diag(Sigma_k) - |Y|^2.
    """
    d, D = o.size, x.shape[1]
    if E is not None:
        Eo = E[..., o[:, None], o]
        if not np.any(Eo):
            E = None
    # entries as arrays over (S, 1 or c, K): contiguous, no reductions over tiny axes
    if E is None:
        C = [[cov[:, None, :, o[i], o[j]] for j in range(d)] for i in range(d)]
    elif E.ndim == 2:  # one error covariance for every point
        C = [[cov[:, None, :, o[i], o[j]] + Eo[i, j] for j in range(d)] for i in range(d)]
    else:
        C = [[cov[:, None, :, o[i], o[j]] + Eo[None, :, i, j, None] for j in range(d)]
             for i in range(d)]
    L = _cholesky(C)
    z = _solve_lower(L, [x[None, :, None, o[i]] - mu[:, None, :, o[i]] for i in range(d)])
    quad = sum(zi * zi for zi in z)
    logdet = 2.0 * sum(np.log(L[i][i]) for i in range(d))
    with np.errstate(divide="ignore"):  # a zero weight: log 0 = -inf, exactly right
        logp = np.log(w)[:, None, :] - 0.5 * (d * _LOG_2PI + logdet + quad)
    if not posterior:
        return logp
    shape = logp.shape
    b = np.empty((*shape, D))
    var = np.empty((*shape, D))
    for j in range(D):
        y = _solve_lower(L, [cov[:, None, :, j, o[i]] for i in range(d)])
        b[..., j] = mu[:, None, :, j] + sum(yi * zi for yi, zi in zip(y, z, strict=True))
        var[..., j] = np.maximum(cov[:, None, :, j, j] - sum(yi * yi for yi in y), 0.0)
    # an observed feature without error is its true value, exactly
    err_diag = np.zeros((x.shape[0], d)) if E is None else \
        np.broadcast_to(np.diagonal(Eo, axis1=-2, axis2=-1), (x.shape[0], d))
    exact = np.zeros(x.shape, bool)
    exact[:, o] = err_diag == 0
    b = np.where(exact[None, :, None], x[None, :, None], b)
    var = np.where(exact[None, :, None], 0.0, var)
    return logp, b, var


def membership_md(dt: Any, X: Any, X_err: Any, prob: float, kind: str,
                  max_draws: int) -> Any:
    """:func:`~bayesgmm.posterior.membership` for a D-dim result (see its docstring)."""
    import xarray as xr
    from scipy.special import softmax

    from .summaries import _summarize

    features = feature_values(dt)
    x = check_points_md(X, features)
    E = point_errors_md(X_err, x)
    w, mu, cov = draws_md(dt, max_draws)
    S, K, D = mu.shape
    out = {key: np.empty((x.shape[0], K)) for key in ("mean", "lower", "upper")}
    for o, rows in patterns(~np.isnan(x)):
        for part in chunks(rows, S, K, D):
            lp = component_terms(x[part], None if E is None else E[part], w, mu, cov, o)
            for key, val in _summarize(softmax(lp, axis=-1), prob, kind).items():
                out[key][part] = val
    return xr.Dataset(
        {key: (("point", "component"), val) for key, val in out.items()},
        coords={"x": (("point", "feature"), x), "feature": features,
                "component": np.arange(K)},
        attrs={"ci_prob": prob, "ci_kind": kind, "quantity": "p(component | x)",
               "x_err": _same_error(E, x)},
    )


def _same_error(E: np.ndarray | None, x: np.ndarray) -> float:
    """The one error sd every observed feature of every point has (0 without), else NaN."""
    if E is None:
        return 0.0
    obs = ~np.isnan(x)
    diag = np.diagonal(E, axis1=-2, axis2=-1)[obs]
    off = E - np.einsum("nd,de->nde", np.diagonal(E, axis1=-2, axis2=-1), np.eye(x.shape[1]))
    if np.any(off) or not np.all(diag == diag[0]):
        return np.nan
    return float(np.sqrt(diag[0]))


def _error_set(dt: Any, max_errors: int) -> list[np.ndarray | None]:
    """The data's error covariances the observed density averages over.

    At most ``max_errors``, evenly spaced in order of their trace; rows with every
    feature observed preferred.
    """
    stored = stored_errors(dt)
    if stored is None:
        return [None]
    obs = ~np.isnan(np.asarray(dt["observed_data"][_name(dt)].transpose(
        "obs", "feature").values, dtype=float))
    complete = obs.all(axis=1)
    errs = stored[complete] if complete.any() else stored
    if errs.shape[0] > max_errors:
        order = np.argsort(np.trace(errs, axis1=1, axis2=2), kind="stable")
        pick = ((np.arange(max_errors) + 0.5) / max_errors * errs.shape[0]).astype(int)
        errs = errs[order[pick]]
    return list(errs)


def _name(dt: Any) -> str:
    from .summaries import data_name

    return data_name(dt)


def observed_md(dt: Any) -> np.ndarray:
    """The data (n, D) of a D-dim result, NaN where missing."""
    return np.asarray(dt["observed_data"][_name(dt)].transpose("obs", "feature").values,
                      dtype=float)


def density_md(dt: Any, X: Any, X_err: Any, deconvolved: bool, prob: float, kind: str,
               max_errors: int, max_draws: int) -> Any:
    """:func:`~bayesgmm.posterior.density` for a D-dim result (see its docstring)."""
    import xarray as xr

    from .summaries import _summarize

    features = feature_values(dt)
    if X is None:  # the data themselves, with their own errors
        x = observed_md(dt)
        e_sets = [None] if deconvolved else [stored_errors(dt)]
    else:
        x = check_points_md(X, features)
        E = point_errors_md(X_err, x)
        if deconvolved:
            e_sets = [None]
        elif E is not None:
            e_sets = [E]
        else:
            e_sets = _error_set(dt, max_errors)
    w, mu, cov = draws_md(dt, max_draws)
    S, K, D = mu.shape
    m = x.shape[0]
    out = {key: np.empty(m) for key in ("mean", "lower", "upper")}
    comp_mean = np.empty((m, K))
    for o, rows in patterns(~np.isnan(x)):
        for part in chunks(rows, S, K, D):  # summarised chunk by chunk: no (S, m, K) array
            comp = np.zeros((S, part.size, K))
            for E in e_sets:
                Ep = E if E is None or E.ndim == 2 else E[part]
                comp += np.exp(component_terms(x[part], Ep, w, mu, cov, o))
            comp /= len(e_sets)
            for key, val in _summarize(comp.sum(-1), prob, kind).items():
                out[key][part] = val
            comp_mean[part] = comp.mean(axis=0)
    return xr.Dataset(
        {**{key: ("point", val) for key, val in out.items()},
         "component_mean": (("point", "component"), comp_mean)},
        coords={"x": (("point", "feature"), x), "feature": features,
                "component": np.arange(K)},
        attrs={"ci_prob": prob, "ci_kind": kind, "deconvolved": int(deconvolved)},
    )


def true_values_md(dt: Any, prob: float, kind: str, random_seed: Any,
                   max_draws: int) -> Any:
    """:func:`~bayesgmm.posterior.true_values` for a D-dim result (see its docstring)."""
    import xarray as xr
    from scipy.special import softmax

    from .summaries import _interval

    features = feature_values(dt)
    x = observed_md(dt)
    E = stored_errors(dt)
    w, mu, cov = draws_md(dt, max_draws)
    S, K, D = mu.shape
    rng = np.random.default_rng(random_seed)
    n = x.shape[0]
    mean, second, lower, upper = (np.empty((n, D)) for _ in range(4))
    for o, rows in patterns(~np.isnan(x)):
        for part in chunks(rows, S, K, D):
            lp, b, var = component_terms(x[part], None if E is None else E[part], w, mu,
                                         cov, o, posterior=True)
            r = softmax(lp, axis=-1)[..., None]  # (S, c, K, 1)
            mean[part] = (r * b).sum(2).mean(0)
            second[part] = (r * (var + b * b)).sum(2).mean(0)
            u = rng.random(r.shape[:2])
            lab = (u[..., None] > np.cumsum(r[..., 0], -1)).sum(-1).clip(max=K - 1)
            pick = lab[..., None, None]
            bb = np.take_along_axis(b, pick, 2)[:, :, 0]
            vv = np.take_along_axis(var, pick, 2)[:, :, 0]
            sim = bb + np.sqrt(vv) * rng.standard_normal(bb.shape)
            lower[part], upper[part] = _interval(sim, prob, kind)
    sd = np.sqrt(np.maximum(second - mean**2, 0.0))
    # an observed feature without error is its true value: no rounding in the mixing
    exact = ~np.isnan(x)
    if E is not None:
        exact &= np.diagonal(E, axis1=-2, axis2=-1) == 0
    mean[exact], sd[exact] = x[exact], 0.0
    dims = ("obs", "feature")
    return xr.Dataset(
        {"mean": (dims, mean), "lower": (dims, lower), "upper": (dims, upper),
         "sd": (dims, sd), "observed": (dims, x)},
        coords={"obs": np.asarray(dt["observed_data"]["obs"].values), "feature": features},
        attrs={"ci_prob": prob, "ci_kind": kind},
    )


def _feature_index(features: np.ndarray, which: Any) -> int:
    """Position of a feature given by its coordinate value (or, failing that, position)."""
    for i, f in enumerate(features):
        if f == which or str(f) == str(which):
            return i
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool) \
            and 0 <= which < features.size:
        return int(which)
    raise DataError(
        f"unknown feature {which!r}; the result's features are "
        f"{', '.join(map(str, features))}."
    )


def feature_indices(features: np.ndarray, which: Any, what: str) -> list[int]:
    """Positions of the features named in ``which`` (one name or a list), unique, nonempty."""
    if isinstance(which, (str, int, np.integer)):
        which = [which]
    idx = [_feature_index(features, f) for f in which]
    if not idx:
        raise DataError(f"{what}: select at least one feature.")
    if len(set(idx)) != len(idx):
        raise DataError(f"{what}: a feature is selected twice ({list(which)!r}).")
    return idx
