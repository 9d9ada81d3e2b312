"""Seed 000: a two-component mixture of 50 points, fitted by EM and by a gradient optimizer.

What the seed teaches
    The mixture f(x) = t N(x | mu_a, sigma_a^2) + (1 - t) N(x | mu_b, sigma_b^2), its
    log-likelihood, the derivative of that log-likelihood with respect to mu_a (worked out
    with the chain rule), and "use an optimizer": gradient ascent on the log-likelihood.
    An interactive page lets the reader move (t, mu_a, sigma_a, mu_b, sigma_b) and shows the
    log-likelihood and the best value seen so far.

What this script reproduces
    * The maximum-likelihood estimate of the five parameters, found twice, independently:
      by ``bayesgmm.GaussianMixtureEM`` and by ``scipy.optimize.minimize`` (BFGS) on the
      negative log-likelihood, using the seed's analytic gradient (all five components,
      written out below) in an unconstrained parametrization (logit t, log sigma), from
      several starts. The two must agree: log-likelihood to 1e-6 relative, parameters to
      1e-4 after sorting the components by mean.
    * The interactive page itself: ``bayesgmm.write_explorer`` writes
      ``seed000_explorer.html``, one offline file with a slider per parameter, the
      density over the histogram, the log-likelihood and the best value seen, and buttons
      for one EM step, one gradient-ascent step with the seed's gradient (the one below),
      the EM maximum and a draw from the Bayesian posterior. Also, for print, a static
      log-likelihood surface (over (mu_a, mu_b) and over (sigma_a, sigma_b) with the
      other parameters at the MLE) and a table of a few settings a reader might try,
      with the log-likelihood and the best value seen.

Going beyond the seed
    * The analytic gradient is checked against finite differences.
    * BIC over K = 1..6 with ``select_n_components``. The data contain repeated values
      (7.62 and 7.34 each appear twice), where a component can collapse onto the repeats
      and the likelihood is unbounded; such fits are flagged ``degenerate`` and never
      chosen. BIC picks K = 2.

Notes on the seed
    The seed's generative code lacks an ``else``: as printed, the second ``return`` is
    unreachable, and the function returns ``None`` with probability 0.8. The intended
    story is 0.2 N(3.5, 0.7^2) + 0.8 N(6.8, 0.7^2), which the MLE below resembles
    (t = 0.18, mu_a = 3.56, mu_b = 6.79).

Run ``python examples/seed000_two_gaussians.py`` to print the tables and write the figures
and the explorer page to ``examples/output/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import optimize
from scipy.special import expit, logit

from bayesgmm import GaussianMixtureEM, select_n_components, write_explorer
from bayesgmm.datasets import seed000_data

NAMES = ("t", "mu_a", "sigma_a", "mu_b", "sigma_b")
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


# --------------------------------------------------------------------------- the seed's maths


def log_components(theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(t N_a(x)) and log((1 - t) N_b(x)) for parameters ``theta`` (natural units)."""
    t, mu_a, s_a, mu_b, s_b = theta
    la = np.log(t) - _LOG_SQRT_2PI - np.log(s_a) - 0.5 * ((x - mu_a) / s_a) ** 2
    lb = np.log1p(-t) - _LOG_SQRT_2PI - np.log(s_b) - 0.5 * ((x - mu_b) / s_b) ** 2
    return la, lb


def loglik(theta: np.ndarray, x: np.ndarray) -> float:
    """LL(theta) = sum_i log[t N(x_i | mu_a, s_a) + (1 - t) N(x_i | mu_b, s_b)]."""
    la, lb = log_components(theta, x)
    return float(np.logaddexp(la, lb).sum())


def gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The seed's gradient of LL in natural units (d/dt, d/dmu_a, d/dsigma_a, ...).

    The seed derives, for one point,
        d log f(x_i) / d mu_a = t / (f(x_i) sqrt(2 pi) sigma_a^3) exp(-z_a^2 / 2) (x_i - mu_a),
    i.e. r_a (x_i - mu_a) / sigma_a^2 with r_a = t N_a(x_i) / f(x_i), and says the same
    must be done for every parameter. The same chain rule gives
        d/d sigma_a = r_a [(x_i - mu_a)^2 / sigma_a^3 - 1 / sigma_a],
        d/d t       = [N_a(x_i) - N_b(x_i)] / f(x_i) = r_a / t - r_b / (1 - t),
    and the mirror images for component b. Computed in log space (r_a = exp(la - log f)).
    """
    t, mu_a, s_a, mu_b, s_b = theta
    la, lb = log_components(theta, x)
    logf = np.logaddexp(la, lb)
    r_a, r_b = np.exp(la - logf), np.exp(lb - logf)
    return np.array([
        np.sum(r_a / t - r_b / (1 - t)),
        np.sum(r_a * (x - mu_a) / s_a**2),
        np.sum(r_a * ((x - mu_a) ** 2 / s_a**3 - 1 / s_a)),
        np.sum(r_b * (x - mu_b) / s_b**2),
        np.sum(r_b * ((x - mu_b) ** 2 / s_b**3 - 1 / s_b)),
    ])


def to_natural(u: np.ndarray) -> np.ndarray:
    """Unconstrained (logit t, mu_a, log s_a, mu_b, log s_b) -> (t, mu_a, s_a, mu_b, s_b)."""
    return np.array([expit(u[0]), u[1], np.exp(u[2]), u[3], np.exp(u[4])])


def to_unconstrained(theta: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_natural`."""
    return np.array([logit(theta[0]), theta[1], np.log(theta[2]), theta[3], np.log(theta[4])])


def negloglik_and_grad(u: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """-LL and its gradient in the unconstrained parametrization (chain rule on top)."""
    theta = to_natural(u)
    g = gradient(theta, x)
    t, s_a, s_b = theta[0], theta[2], theta[4]
    jac = np.array([t * (1 - t), 1.0, s_a, 1.0, s_b])  # d theta / d u, elementwise
    return -loglik(theta, x), -g * jac


def canonical(theta: np.ndarray) -> np.ndarray:
    """Label the component with the smaller mean 'a' (labels are arbitrary)."""
    t, mu_a, s_a, mu_b, s_b = theta
    if mu_a <= mu_b:
        return np.asarray(theta, float)
    return np.array([1 - t, mu_b, s_b, mu_a, s_a])


# --------------------------------------------------------------------------- computations


def fit_em(x: np.ndarray) -> tuple[np.ndarray, float, GaussianMixtureEM]:
    """MLE by EM, as (t, mu_a, sigma_a, mu_b, sigma_b) with a the lower-mean component."""
    # tol tightened from the default 1e-8 so that EM's linear convergence does not limit a
    # 1e-4 comparison of parameters; 5 starts (the default) guard against local maxima.
    gm = GaussianMixtureEM(2, tol=1e-13, max_iter=5000, random_seed=0).fit(x)
    o = np.argsort(gm.means_[:, 0])
    w, mu, sd = gm.weights_[o], gm.means_[o, 0], np.sqrt(gm.covariances_[o, 0, 0])
    return np.array([w[0], mu[0], sd[0], mu[1], sd[1]]), gm.loglik_, gm


def fit_gradient(x: np.ndarray, starts: list[np.ndarray]) -> list[dict]:
    """BFGS on -LL with the analytic gradient from each start; one record per start."""
    runs = []
    for start in starts:
        res = optimize.minimize(
            negloglik_and_grad, to_unconstrained(start), args=(x,), jac=True,
            method="BFGS", options={"gtol": 1e-7, "maxiter": 10_000},
        )
        theta = canonical(to_natural(res.x))
        # a component shrinking onto one (or a repeated) point drives LL to +infinity:
        # that is the likelihood's singularity, not a maximum worth reporting
        degenerate = bool(min(theta[2], theta[4]) < 1e-3)
        runs.append({"start": start, "theta": theta, "loglik": -res.fun,
                     "success": bool(res.success), "n_iter": int(res.nit),
                     "degenerate": degenerate})
    return runs


def surface(x: np.ndarray, mle: np.ndarray, n_grid: int = 121) -> dict:
    """LL over (mu_a, mu_b) and over (sigma_a, sigma_b), the other parameters at the MLE."""
    t, mu_a, s_a, mu_b, s_b = mle
    out = {}
    for key, (ia, ib), (ca, cb) in (
        ("means", (1, 3), (np.linspace(2.4, 5.0, n_grid), np.linspace(5.9, 7.6, n_grid))),
        ("sigmas", (2, 4), (np.linspace(0.2, 1.3, n_grid), np.linspace(0.5, 1.2, n_grid))),
    ):
        A, B = np.meshgrid(ca, cb, indexing="xy")
        theta = np.broadcast_to(np.asarray(mle)[:, None, None, None],
                                (5, *A.shape, 1)).copy()
        theta[ia], theta[ib] = A[..., None], B[..., None]
        la = np.log(t) - _LOG_SQRT_2PI - np.log(theta[2]) - 0.5 * ((x - theta[1]) / theta[2]) ** 2
        lb = (np.log1p(-t) - _LOG_SQRT_2PI - np.log(theta[4])
              - 0.5 * ((x - theta[3]) / theta[4]) ** 2)
        out[key] = {"a": ca, "b": cb, "ll": np.logaddexp(la, lb).sum(axis=-1),
                    "names": (NAMES[ia], NAMES[ib])}
    return out


def reader_session(x: np.ndarray, mle: np.ndarray) -> list[dict]:
    """What the seed's interactive page shows as a reader moves the sliders."""
    settings = [
        ("all equal, centred", [0.5, 6.0, 1.5, 6.0, 1.5]),
        ("split the means", [0.5, 4.0, 1.0, 7.0, 1.0]),
        ("the story's values", [0.2, 3.5, 0.7, 6.8, 0.7]),
        ("narrower a", [0.2, 3.5, 0.4, 6.8, 0.7]),
        ("too narrow a", [0.2, 3.5, 0.2, 6.8, 0.7]),
        ("wider b", [0.2, 3.5, 0.4, 6.8, 0.8]),
        ("the MLE", list(mle)),
    ]
    rows, best = [], -np.inf
    for label, theta in settings:
        ll = loglik(np.asarray(theta), x)
        best = max(best, ll)
        rows.append({"setting": label, **dict(zip(NAMES, np.round(theta, 4), strict=True)),
                     "loglik": ll, "best_seen": best})
    return rows


# --------------------------------------------------------------------------- drawing


def draw(outdir: Path, x: np.ndarray, mle: np.ndarray, surf: dict) -> list[Path]:
    """Write the log-likelihood surface and the fitted density; return the file paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    ll_max = loglik(mle, x)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), constrained_layout=True)
    for ax, key, (ia, ib) in zip(axes, ("means", "sigmas"), ((1, 3), (2, 4)), strict=True):
        s = surf[key]
        rel = np.maximum(s["ll"] - ll_max, -30.0)
        cs = ax.contourf(s["a"], s["b"], rel, levels=np.linspace(-30, 0, 31), cmap="viridis")
        ax.contour(s["a"], s["b"], rel, levels=[-4.5, -2.0, -0.5], colors="w", linestyles="solid",
                   linewidths=0.8)
        ax.plot(mle[ia], mle[ib], marker="*", color="red", ms=14, mec="k", label="MLE")
        ax.set_xlabel(s["names"][0])
        ax.set_ylabel(s["names"][1])
        ax.legend(loc="upper right")
        fig.colorbar(cs, ax=ax, label="log-likelihood - max (clipped at -30)")
    axes[0].set_title("LL over the means (t, sigmas at the MLE)")
    axes[1].set_title("LL over the sigmas (t, means at the MLE)")
    fig.suptitle("Seed 000: log-likelihood surface; white contours at -0.5, -2, -4.5")
    p1 = outdir / "seed000_loglik_surface.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    grid = np.linspace(1.5, 10, 500)
    la, lb = log_components(mle, grid)
    ax.hist(x, bins=20, density=True, color="steelblue", alpha=0.4, edgecolor="k")
    ax.plot(grid, np.exp(np.logaddexp(la, lb)), "k", label="MLE mixture")
    ax.plot(grid, np.exp(la), "--", label="component a")
    ax.plot(grid, np.exp(lb), "--", label="component b")
    ax.plot(x, np.full_like(x, -0.01), "|k", ms=8)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend()
    ax.set_title("Seed 000: the 50 points and the two-component MLE")
    p2 = outdir / "seed000_fit.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


# --------------------------------------------------------------------------- main


def main(outdir: Path | None = None) -> dict:
    """Run the example, check its claims, and return the key numbers."""
    x = seed000_data()
    vals, counts = np.unique(x, return_counts=True)
    repeated = {float(v): int(c) for v, c in zip(vals, counts, strict=True) if c > 1}
    print(f"seed 000: {x.size} points; repeated values: {repeated}")

    # 1. the analytic gradient agrees with finite differences (5 points in parameter space)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(5):
        u = to_unconstrained(np.array([rng.uniform(0.1, 0.9), rng.uniform(3, 5),
                                       rng.uniform(0.3, 1.5), rng.uniform(5.5, 7.5),
                                       rng.uniform(0.3, 1.5)]))
        g = negloglik_and_grad(u, x)[1]
        fd = optimize.approx_fprime(u, lambda v: negloglik_and_grad(v, x)[0], 1e-7)
        worst = max(worst, float(np.max(np.abs(g - fd)) / np.max(np.abs(g))))
    print(f"analytic gradient vs finite differences: max relative error {worst:.1e}")
    assert worst < 1e-5, f"analytic gradient disagrees with finite differences ({worst:.2e})"

    # 2. MLE by EM
    em_theta, em_ll, gm = fit_em(x)
    # the EM log-likelihood is the seed's LL at the EM parameters (a third, independent check)
    assert abs(loglik(em_theta, x) - em_ll) < 1e-9 * abs(em_ll)

    # 3. MLE by a gradient optimizer from several starts
    starts = [
        np.array([0.5, 4.0, 1.0, 7.0, 1.0]),
        np.array([0.2, 3.5, 0.7, 6.8, 0.7]),  # the seed's generative story
        np.array([0.5, np.quantile(x, 0.25), x.std(), np.quantile(x, 0.75), x.std()]),
        np.array([0.7, 7.5, 0.5, 3.0, 2.0]),  # labels swapped on purpose
        np.array([0.3, 5.0, 2.0, 6.0, 0.3]),
    ]
    runs = fit_gradient(x, starts)
    print("\ngradient optimizer (BFGS on -LL, analytic gradient), one row per start:")
    print(f"  {'start':<36} {'loglik':>11} {'iter':>5}  success  degenerate")
    for r in runs:
        print(f"  {np.array2string(r['start'], precision=2):<36} {r['loglik']:11.6f} "
              f"{r['n_iter']:5d}  {r['success']!s:<7}  {r['degenerate']}")
    ok = [r for r in runs if r["success"] and not r["degenerate"]]
    assert ok, "no gradient run converged to a proper maximum"
    best = max(ok, key=lambda r: r["loglik"])
    opt_theta, opt_ll = best["theta"], best["loglik"]
    n_agree = sum(np.allclose(r["theta"], opt_theta, atol=1e-4) for r in ok)

    print("\nMLE of (t, mu_a, sigma_a, mu_b, sigma_b), component a = lower mean:")
    print(f"  {'':<10}" + "".join(f"{n:>11}" for n in NAMES) + f"{'loglik':>14}")
    print("  EM        " + "".join(f"{v:11.5f}" for v in em_theta) + f"{em_ll:14.7f}")
    print("  gradient  " + "".join(f"{v:11.5f}" for v in opt_theta) + f"{opt_ll:14.7f}")
    print(f"  ({n_agree} of {len(starts)} starts reached this maximum)")
    rel = abs(em_ll - opt_ll) / abs(opt_ll)
    assert rel < 1e-6, f"EM and gradient log-likelihoods differ: {em_ll} vs {opt_ll}"
    # 1e-4 absolute on parameters of order 0.2-7: both optimizers stop at gtol 1e-7 / tol
    # 1e-13, far tighter; the EM reg_covar of 1e-9 (relative to Var x = 2.3) moves sigma by
    # ~3e-9 only
    assert np.allclose(em_theta, opt_theta, rtol=0, atol=1e-4), (em_theta, opt_theta)

    # 4. the interactive page, as a table of settings and as a surface
    session = reader_session(x, em_theta)
    print("\nthe interactive page, as a reader might use it:")
    print(f"  {'setting':<20}" + "".join(f"{n:>9}" for n in NAMES)
          + f"{'loglik':>12}{'best seen':>12}")
    for row in session:
        print(f"  {row['setting']:<20}" + "".join(f"{row[n]:9.3f}" for n in NAMES)
              + f"{row['loglik']:12.3f}{row['best_seen']:12.3f}")
    assert session[-1]["loglik"] == max(r["loglik"] for r in session)
    surf = surface(x, em_theta)
    grid_max = max(float(s["ll"].max()) for s in surf.values())
    # no grid point beats the MLE (up to the grid's float rounding)
    assert grid_max <= em_ll + 1e-9, (grid_max, em_ll)

    # 5. how many components? BIC over K = 1..6
    sel = select_n_components(x, range(1, 7), criterion="bic", random_seed=0)
    table = sel.table
    print("\nBIC over K = 1..6 (select_n_components, 5 starts each):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"BIC picks K = {sel.best_k}")
    assert sel.best_k == 2, sel.best_k
    assert not table.loc[table.k == sel.best_k, "degenerate"].item()
    assert abs(table.loc[table.k == 2, "loglik"].item() - em_ll) < 1e-5 * abs(em_ll)

    # 6. the Bayesian posterior of (t, mu_a, sigma_a, mu_b, sigma_b), next to the MLE
    import warnings

    from bayesgmm import SamplingWarning, fit

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        dt = fit(x, 2, random_seed=1, progressbar=False)  # defaults: 4 chains x 1,000
    post = dt.posterior
    draws = {
        "t": post["weights"].values[..., 0], "mu_a": post["means"].values[..., 0],
        "sigma_a": post["sigmas"].values[..., 0], "mu_b": post["means"].values[..., 1],
        "sigma_b": post["sigmas"].values[..., 1],
    }
    print("\nBayesian posterior (bayesgmm.fit, 4 chains x 1,000 draws, default priors):")
    print(f"  {'':<8}{'MLE':>9}{'mean':>9}{'sd':>8}{'94% interval':>22}")
    posterior = {}
    for name, mle in zip(NAMES, em_theta, strict=True):
        v = draws[name].ravel()
        q_lo, q_hi = np.quantile(v, [0.03, 0.97])
        posterior[name] = {"mean": float(v.mean()), "sd": float(v.std()),
                           "interval": (float(q_lo), float(q_hi))}
        print(f"  {name:<8}{mle:9.3f}{v.mean():9.3f}{v.std():8.3f}"
              f"    [{q_lo:7.3f}, {q_hi:7.3f}]")
        # 50 points: the posterior is wide, and every MLE lies inside its 94% interval
        assert q_lo <= mle <= q_hi, (name, mle, q_lo, q_hi)
    print("  the small component (t ~ 0.18, about 9 points) is uncertain: its width's "
          "interval spans a factor of ~2.")
    assert not [w for w in caught if "divergent" in str(w.message)]

    figures = draw(outdir, x, em_theta, surf) if outdir is not None else []
    explorer = None
    if outdir is not None:
        # the seed's page, live: starts at the seed's story (0.2 N(3.5, 0.7) + 0.8 N(6.8,
        # 0.7)), jumps to the EM maximum, and draws from the posterior just computed
        explorer = write_explorer(x, outdir / "seed000_explorer.html", gm, posterior=dt,
                                  start={"weights": [0.2, 0.8], "means": [3.5, 6.8],
                                         "sigmas": [0.7, 0.7]},
                                  title="Seed 000: the likelihood of a two-Gaussian mixture")
        print(f"\nthe interactive page: {explorer}")
    return {
        "n": int(x.size),
        "repeated_values": repeated,
        "em_theta": dict(zip(NAMES, map(float, em_theta), strict=True)),
        "gradient_theta": dict(zip(NAMES, map(float, opt_theta), strict=True)),
        "loglik_em": float(em_ll),
        "loglik_gradient": float(opt_ll),
        "gradient_check_rel_error": worst,
        "n_starts": len(starts),
        "n_starts_at_mle": int(n_agree),
        "reader_session": session,
        "bic_table": table,
        "best_k_bic": int(sel.best_k),
        "posterior": posterior,
        "figures": [str(p) for p in figures],
        "explorer": None if explorer is None else str(explorer),
    }


if __name__ == "__main__":
    main(outdir=Path(__file__).resolve().parent / "output")
