"""Simulation-based calibration of ``bayesgmm.fit`` and a deconvolution coverage study.

Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018): draw
the parameters from the prior, simulate a data set from them, fit it, and record the
rank of each true parameter among (thinned) posterior draws. If the sampler and the
model agree, every rank is uniform on 0..L. Each parameter's ranks are binned and tested
for uniformity with a chi-square test; the target is that none rejects at the 1% level.

The prior is given explicitly (``Design.priors``) so that the model is a proper
generative model: bayesgmm's default priors scale with the data, which is right for
users but is not a prior one can draw from before seeing the data. With scalar priors
the ordered means are the sorted draws of K independent Normals, and the weights and
sigmas stay exchangeable, so sorting the simulated components by mean gives a draw from
the model's prior exactly.

Two designs are run: ``plain`` (no measurement errors) and ``errors`` (per-point errors
e_i ~ Uniform(0.2, 1.0), of the order of the intrinsic widths). The ``errors`` design
also gives the coverage study: how often the central 90% intervals of the intrinsic
sigmas and of every point's true value (``bayesgmm.true_values``) contain the truth,
with a Clopper-Pearson interval. Because the parameters are drawn from the prior,
exact Bayesian inference gives 90% coverage on average.

Two more designs are in D = 2 (``plain_2d``, ``errors_2d``: per-point error covariances,
sds ~ Uniform(0.2, 1.0) per feature and error correlations ~ Uniform(-0.5, 0.5)). The
D-dimensional prior is symmetric in the labels (no ordering identifies components), so
the data are drawn from it as it is; ``fit`` relabels every draw to its EM estimate
(``bayesgmm.posterior.relabel``), and the truth is relabelled to the same EM estimate by
the same rule before ranking. That keeps the ranks uniform: SBC holds for any function
of the parameters and the data (Talts et al. 2018, section 4.1), and relabelling to a
pivot computed from the data alone is one. Ranked: weights, means and sds of each
component and feature, and each correlation.

Every fit goes through ``bayesgmm.fit`` with its defaults (4 chains x 1,000 draws,
nutpie); the compiled model is built once per K and reused for every simulation.

    python benchmarks/sbc.py                      # 200 + 200 simulations (about 25 min)
    python benchmarks/sbc.py --quick              # 20 + 20 smaller ones (about 2 min)
    python benchmarks/sbc.py --resume             # carry on an interrupted run
    python benchmarks/sbc.py --designs plain_2d errors_2d --sims 100   # D = 2

Each finished simulation is appended to ``<out>/records.jsonl`` at once, so an
interrupted run loses at most the simulation in progress; ``--resume`` skips the ones
already there (each simulation has its own seed, so the result is the same). The
summary goes to ``<out>/sbc.json`` and the rank histograms to ``<out>/sbc_ranks.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

PARAMS = ("weights", "means", "sigmas")
PARAMS_MD = ("weights", "means", "sds", "correlations")
OUT = Path(__file__).resolve().parent / "results" / "sbc"


@dataclass(frozen=True)
class Design:
    """One generative model: sizes, the explicit prior, and the measurement errors."""

    name: str
    n: int = 100
    K: int = 2
    errors: tuple[float, float] | None = None  # e_i ~ Uniform(lo, hi), or no errors
    weights_alpha: float = 1.0
    means_mu: float = 0.0
    means_sigma: float = 3.0
    sigmas_sigma: float = 1.0
    D: int = 1
    corr_eta: float = 2.0  # D > 1: LKJ(eta) on each component's correlations
    error_corr: float = 0.5  # D > 1 with errors: error correlations ~ Uniform(-c, c)

    def priors(self) -> dict[str, float]:
        """The prior handed to ``bayesgmm.fit`` (data units)."""
        out = {"weights_alpha": self.weights_alpha, "means_mu": self.means_mu,
               "means_sigma": self.means_sigma, "sigmas_sigma": self.sigmas_sigma}
        if self.D > 1:
            out["corr_eta"] = self.corr_eta
        return out

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """True parameters from the prior, and a data set simulated from them."""
        if self.D > 1:
            return self._draw_md(rng)
        K = self.K
        w = rng.dirichlet(np.full(K, self.weights_alpha))
        mu = rng.normal(self.means_mu, self.means_sigma, K)
        sigma = np.abs(rng.normal(0.0, self.sigmas_sigma, K))
        order = np.argsort(mu)  # exchangeable prior: sorting keeps it a prior draw
        w, mu, sigma = w[order], mu[order], sigma[order]
        labels = rng.choice(K, size=self.n, p=w)
        true = rng.normal(mu[labels], sigma[labels])
        if self.errors is None:
            e = None
            x = true
        else:
            e = rng.uniform(*self.errors, size=self.n)
            x = true + e * rng.standard_normal(self.n)
        return {"weights": w, "means": mu, "sigmas": sigma, "x": x, "x_err": e,
                "true": true}


    def _draw_md(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """D > 1: the unordered prior as it is (``fit`` relabels; see the module doc)."""
        K, D = self.K, self.D
        w = rng.dirichlet(np.full(K, self.weights_alpha))
        mu = rng.normal(self.means_mu, self.means_sigma, (K, D))
        sd = np.abs(rng.normal(0.0, self.sigmas_sigma, (K, D)))
        corr = np.array([lkj_corr(D, self.corr_eta, rng) for _ in range(K)])
        cov = sd[:, :, None] * corr * sd[:, None, :]
        labels = rng.choice(K, size=self.n, p=w)
        true = mu[labels] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov)[labels],
                                      rng.standard_normal((self.n, D)))
        out = {"weights": w, "means": mu, "sds": sd, "correlations": corr,
               "covariances": cov, "true": true}
        if self.errors is None:
            return {**out, "x": true.copy(), "x_err": None}
        e_sd = rng.uniform(*self.errors, size=(self.n, D))
        r = rng.uniform(-self.error_corr, self.error_corr, size=(self.n, D, D))
        r = np.triu(r, 1)
        r = r + np.swapaxes(r, 1, 2) + np.eye(D)
        if D > 2:  # only D = 2 is sure to be positive definite with |r| < 1
            r = np.where(np.eye(D, dtype=bool), 1.0, r / (D - 1))
        S = e_sd[:, :, None] * r * e_sd[:, None, :]
        x = true + np.einsum("nij,nj->ni", np.linalg.cholesky(S),
                             rng.standard_normal((self.n, D)))
        return {**out, "x": x, "x_err": S}

    def parameters(self) -> tuple[str, ...]:
        """The ranked parameters' names."""
        return PARAMS if self.D == 1 else PARAMS_MD


def lkj_corr(D: int, eta: float, rng: np.random.Generator) -> np.ndarray:
    """A correlation matrix drawn from LKJ(eta) by the C-vine method.

    Lewandowski, Kurowicka & Joe (2009), section 2.4: partial correlations on a C-vine,
    each 2 Beta(b, b) - 1 with b = eta + (D - 2 - k) / 2 on tree k, turned into
    correlations by the recursion of their eq. (2.3).
    """
    P = np.zeros((D, D))
    C = np.eye(D)
    b = eta + (D - 1) / 2
    for k in range(D - 1):
        b -= 0.5
        for i in range(k + 1, D):
            P[k, i] = 2 * rng.beta(b, b) - 1
            p = P[k, i]
            for m in range(k - 1, -1, -1):
                p = p * np.sqrt((1 - P[m, i] ** 2) * (1 - P[m, k] ** 2)) + P[m, i] * P[m, k]
            C[k, i] = C[i, k] = p
    return C


DESIGNS = {
    "plain": Design("plain"),
    "errors": Design("errors", errors=(0.2, 1.0)),
    "plain_2d": Design("plain_2d", D=2),
    "errors_2d": Design("errors_2d", D=2, errors=(0.2, 1.0)),
}
#: the designs run when none is named (the 1-D ones; D = 2: ``--designs plain_2d errors_2d``)
DEFAULT_DESIGNS = ("plain", "errors")


@dataclass
class Settings:
    sims: int = 200
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    n_ranks: int = 99  # L: thinned draws per simulation, so ranks are 0..L
    bins: int = 20
    seed: int = 2018
    ci_prob: float = 0.9
    target_accept: float | None = None  # fit's default: 0.8, rerun at 0.99 on divergences
    overrides: dict = field(default_factory=dict)  # Design fields changed (--n, --k)


def thinned(values: np.ndarray, L: int) -> np.ndarray:
    """L draws spread evenly over the chains, far enough apart to be nearly independent."""
    flat = values.reshape(-1, values.shape[-1])  # chain-major (chain*draw, K)
    idx = np.linspace(0, flat.shape[0] - 1, L).round().astype(int)
    return flat[idx]


def one_simulation(design: Design, settings: Settings, index: int) -> dict:
    """Draw, simulate, fit; the ranks, the coverage and the sampler's own diagnostics."""
    import arviz_stats as azs

    import bayesgmm as bg

    stream = [ord(c) for c in design.name]  # each design its own stream, by name
    rng = np.random.default_rng([settings.seed, *stream, index])
    truth = design.draw(rng)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = bg.fit(truth["x"], design.K, X_err=truth["x_err"], priors=design.priors(),
                    draws=settings.draws, tune=settings.tune, chains=settings.chains,
                    target_accept=settings.target_accept,
                    random_seed=int(rng.integers(2**31 - 1)), progressbar=False)
    seconds = time.perf_counter() - t0
    post = dt["posterior"]
    lo_q, hi_q = (1 - settings.ci_prob) / 2, (1 + settings.ci_prob) / 2
    if design.D > 1:
        truth = relabelled_truth(truth, dt)
    ranks, covered = {}, {}
    for p in design.parameters():
        values, true = _flat(np.asarray(post[p].values), truth[p], p, design)
        draws = thinned(values, settings.n_ranks)
        lo, hi = np.quantile(values.reshape(-1, values.shape[-1]), [lo_q, hi_q], axis=0)
        for j, label in enumerate(_labels(p, design)):
            ranks[f"{p}[{label}]"] = int(np.sum(draws[:, j] < true[j]))
            covered[f"{p}[{label}]"] = bool(lo[j] <= true[j] <= hi[j])
    names = list(design.parameters())
    record = {
        "design": design.name, "index": index, "seconds": seconds,
        "ranks": ranks, "covered": covered,
        "truth": {p: np.asarray(truth[p]).tolist() for p in names},
        # nan-aware: a correlation matrix's diagonal is the constant 1 (R-hat NaN)
        "rhat_max": float(np.nanmax(azs.rhat(dt, var_names=names).to_dataset().to_array())),
        "ess_bulk_min": float(np.nanmin(azs.ess(dt, var_names=names, method="bulk")
                                        .to_dataset().to_array())),
        "divergences": int(dt["sample_stats"]["diverging"].sum()),
        "warnings": sorted({type(w.message).__name__ for w in caught}),
    }
    if truth["x_err"] is not None:
        tv = bg.true_values(dt, ci_prob=settings.ci_prob,
                            random_seed=int(rng.integers(2**31 - 1)))
        true = truth["true"] if design.D == 1 else truth["true"].reshape(tv["lower"].shape)
        inside = (tv["lower"].values <= true) & (true <= tv["upper"].values)
        record["true_values_covered"] = int(inside.sum())
        record["true_values_n"] = int(inside.size)
    return record


def relabelled_truth(truth: dict, dt) -> dict:
    """The true parameters relabelled to the fit's EM estimate, as ``fit`` relabels draws."""
    from bayesgmm.posterior.relabel import relabel_to_pivot

    em = dt["em_estimate"]
    pivot = {"means": em["means"].values, "covariances": em["covariances"].values}
    perm, _ = relabel_to_pivot(truth["weights"], truth["means"], truth["covariances"],
                               pivot)
    return {**truth, **{p: np.asarray(truth[p])[perm] for p in
                        ("weights", "means", "sds", "correlations", "covariances")}}


def _labels(p: str, design: Design) -> list[str]:
    """Each ranked entry's label: ``k``, ``k,j`` (feature j) or ``k,i,j`` (correlation)."""
    K, D = design.K, design.D
    if p == "weights" or D == 1:
        return [str(k) for k in range(K)]
    if p == "correlations":
        return [f"{k},{i},{j}" for k in range(K) for i in range(D) for j in range(i + 1, D)]
    return [f"{k},{j}" for k in range(K) for j in range(D)]


def _flat(values: np.ndarray, true: np.ndarray, p: str, design: Design):
    """Draws (chain, draw, entries) and the truth (entries,) in :func:`_labels`' order."""
    lead = values.shape[:2]
    if p == "correlations":
        i, j = np.triu_indices(design.D, 1)
        return values[..., i, j].reshape(*lead, -1), np.asarray(true)[:, i, j].ravel()
    return values.reshape(*lead, -1), np.asarray(true).ravel()


# ---------------------------------------------------------------------- statistics


def uniformity(ranks: np.ndarray, L: int, bins: int) -> dict:
    """Chi-square test that ranks on 0..L are uniform, over ``bins`` equal bins."""
    from scipy import stats

    if (L + 1) % bins:
        raise ValueError(f"L + 1 = {L + 1} must be a multiple of bins = {bins}.")
    counts = np.bincount(np.asarray(ranks) * bins // (L + 1), minlength=bins)
    chi2, p = stats.chisquare(counts)
    return {"counts": counts.tolist(), "chi2": float(chi2), "dof": bins - 1,
            "p_value": float(p)}


def proportion(k: int, n: int, target: float, level: float = 0.95) -> dict:
    """A coverage figure with its Clopper-Pearson interval and a two-sided binomial test."""
    from scipy import stats

    test = stats.binomtest(int(k), int(n), target)
    ci = test.proportion_ci(confidence_level=level, method="exact")
    return {"covered": int(k), "n": int(n), "coverage": k / n, "ci_low": float(ci.low),
            "ci_high": float(ci.high), "ci_level": level, "p_value": float(test.pvalue)}


def clustered(fractions: np.ndarray, level: float = 0.95) -> dict:
    """Interval for a mean coverage when the units are whole simulations (t interval).

    A point's true value is covered or not together with its neighbours (they share the
    simulation's parameters), so the binomial interval over all points is too narrow;
    this one treats each simulation's coverage fraction as one observation.
    """
    from scipy import stats

    f = np.asarray(fractions, float)
    m, s = f.mean(), f.std(ddof=1) / np.sqrt(f.size)
    t = stats.t.ppf((1 + level) / 2, f.size - 1)
    return {"coverage": float(m), "ci_low": float(m - t * s), "ci_high": float(m + t * s),
            "ci_level": level, "simulations": int(f.size)}


def summarize(records: list[dict], settings: Settings, alpha: float = 0.01) -> dict:
    """Per design: uniformity per parameter, interval coverage, and sampler health."""
    out = {}
    for name in sorted({r["design"] for r in records}):
        rs = [r for r in records if r["design"] == name]
        params = list(rs[0]["ranks"])
        tests = {p: uniformity(np.array([r["ranks"][p] for r in rs]), settings.n_ranks,
                               settings.bins) for p in params}
        cover = {p: proportion(sum(r["covered"][p] for r in rs), len(rs), settings.ci_prob)
                 for p in params}
        summary = {
            "simulations": len(rs),
            "uniformity": tests,
            "rejected_at_1pct": [p for p, t in tests.items() if t["p_value"] < alpha],
            "interval_coverage": cover,
            "rhat_max": float(max(r["rhat_max"] for r in rs)),
            "sims_rhat_over_1.01": int(sum(r["rhat_max"] > 1.01 for r in rs)),
            "ess_bulk_min": float(min(r["ess_bulk_min"] for r in rs)),
            "sims_with_divergences": int(sum(r["divergences"] > 0 for r in rs)),
            "sims_with_warnings": int(sum(bool(r["warnings"]) for r in rs)),
            "seconds_median": float(np.median([r["seconds"] for r in rs])),
            "seconds_first": float(min(rs, key=lambda r: r["index"])["seconds"]),
        }
        if "true_values_n" in rs[0]:
            k = sum(r["true_values_covered"] for r in rs)
            n = sum(r["true_values_n"] for r in rs)
            summary["true_values_coverage"] = proportion(k, n, settings.ci_prob)
            summary["true_values_coverage_by_simulation"] = clustered(
                [r["true_values_covered"] / r["true_values_n"] for r in rs])
            sig = [p for p in params if p.startswith(("sigmas", "sds"))]
            summary["sigmas_coverage"] = proportion(
                sum(r["covered"][p] for r in rs for p in sig), len(rs) * len(sig),
                settings.ci_prob)
        out[name] = summary
    return out


# ---------------------------------------------------------------------- picture


def plot_ranks(records: list[dict], settings: Settings, path: Path) -> None:
    """Rank histograms, one row per design, with the 99% band of a uniform bin count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    designs = sorted({r["design"] for r in records})
    params = list(records[0]["ranks"])
    fig, axes = plt.subplots(len(designs), len(params), figsize=(2.2 * len(params),
                             2.2 * len(designs)), squeeze=False, sharex=True)
    for i, name in enumerate(designs):
        rs = [r for r in records if r["design"] == name]
        expected = len(rs) / settings.bins
        band = stats.binom.ppf([0.005, 0.995], len(rs), 1 / settings.bins)
        for j, p in enumerate(params):
            ax = axes[i, j]
            res = uniformity(np.array([r["ranks"][p] for r in rs]), settings.n_ranks,
                             settings.bins)
            ax.axhspan(*band, color="0.85", lw=0)
            ax.axhline(expected, color="0.5", lw=0.8)
            ax.bar(np.arange(settings.bins), res["counts"], width=1.0, color="C0",
                   edgecolor="white", lw=0.5)
            ax.set_title(f"{name}: {p}\np = {res['p_value']:.3f}", fontsize=8)
            ax.set_yticks([])
            ax.set_xticks([])
    fig.suptitle(f"SBC rank histograms ({settings.bins} bins of ranks 0..{settings.n_ranks}; "
                 "grey: 99% band for a uniform bin)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- driver


def load_records(path: Path) -> list[dict]:
    """Finished simulations; a last line cut short by a killed run is dropped from the file."""
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):  # cut short: keep only whole lines
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _identity(designs: list[Design], settings: Settings) -> dict:
    """What must not change between a run and its resumption (``sims`` may)."""
    same = {k: v for k, v in asdict(settings).items() if k != "sims"}
    return {"settings": same, "designs": [asdict(d) for d in designs]}


def run(designs: list[Design], settings: Settings, out: Path, resume: bool = False,
        log=print) -> tuple[list[dict], dict]:
    """Run (or carry on) every design's simulations; write records, summary, picture."""
    import bayesgmm as bg

    out.mkdir(parents=True, exist_ok=True)
    rec_path = out / "records.jsonl"
    id_path = out / "identity.json"
    identity = json.loads(json.dumps(_identity(designs, settings)))
    if resume and rec_path.exists():
        before = json.loads(id_path.read_text()) if id_path.exists() else None
        if before != identity:
            raise SystemExit(f"--resume: {out} holds a run with other settings or designs; "
                             "use another --out or drop --resume.")
    elif rec_path.exists():
        rec_path.unlink()
    id_path.write_text(json.dumps(identity, indent=1))
    records = load_records(rec_path)
    done = {(r["design"], r["index"]) for r in records}
    with rec_path.open("a") as fh:
        for design in designs:
            for i in range(settings.sims):
                if (design.name, i) in done:
                    continue
                r = one_simulation(design, settings, i)
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                records.append(r)
                if (i + 1) % 10 == 0 or i == settings.sims - 1:
                    log(f"  {design.name}: {i + 1}/{settings.sims} simulations "
                        f"({r['seconds']:.1f} s for the last)")
    records = [r for r in records if r["design"] in {d.name for d in designs}
               and r["index"] < settings.sims]
    summary = {
        "settings": asdict(settings),
        "designs": {d.name: asdict(d) for d in designs},
        "results": summarize(records, settings),
        "environment": {"python": platform.python_version(), "bayesgmm": bg.__version__,
                        "cpu_count": os.cpu_count(), "loadavg": os.getloadavg()},
    }
    tmp = out / "sbc.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / "sbc.json")
    plot_ranks(records, settings, out / "sbc_ranks.png")
    return records, summary


def report(summary: dict) -> str:
    """The figures a reader wants, as text."""
    lines = []
    for name, s in summary["results"].items():
        lines.append(f"\n== {name}: {s['simulations']} simulations "
                     f"(median {s['seconds_median']:.1f} s per fit, first "
                     f"{s['seconds_first']:.1f} s)")
        lines.append(f"{'parameter':<12}{'chi2':>8}{'p':>8}  {'90% coverage':>14}")
        for p, t in s["uniformity"].items():
            c = s["interval_coverage"][p]
            lines.append(f"{p:<12}{t['chi2']:>8.1f}{t['p_value']:>8.3f}  "
                         f"{c['coverage']:>8.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]")
        verdict = "PASS" if not s["rejected_at_1pct"] else "FAIL " + ", ".join(
            s["rejected_at_1pct"])
        lines.append(f"uniformity at 1%: {verdict}")
        lines.append(f"sampler: max R-hat {s['rhat_max']:.3f} "
                     f"({s['sims_rhat_over_1.01']} sims > 1.01), min bulk ESS "
                     f"{s['ess_bulk_min']:.0f}, {s['sims_with_divergences']} sims with "
                     f"divergences, {s['sims_with_warnings']} with warnings")
        if "sigmas_coverage" in s:
            for label, key in (("intrinsic sigmas", "sigmas_coverage"),
                               ("true values", "true_values_coverage")):
                c = s[key]
                lines.append(f"90% coverage of {label}: {c['coverage']:.3f} "
                             f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] "
                             f"({c['covered']}/{c['n']}, Clopper-Pearson 95%)")
            c = s["true_values_coverage_by_simulation"]
            lines.append(f"  true values, simulations as units: {c['coverage']:.3f} "
                         f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=200, help="simulations per design")
    p.add_argument("--designs", nargs="+", default=list(DEFAULT_DESIGNS),
                   choices=list(DESIGNS))
    p.add_argument("--n", type=int, default=None, help="points per data set (default 100)")
    p.add_argument("--k", type=int, default=None, help="components (default 2)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--bins", type=int, default=None,
                   help="histogram bins; must divide 100 (default 20, 5 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="20 simulations of 50 points, 500 draws (a smoke run)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    overrides = {k: v for k, v in (("n", a.n), ("K", a.k)) if v is not None}
    settings = Settings(sims=a.sims, draws=a.draws, tune=a.tune, chains=a.chains,
                        seed=a.seed, overrides=overrides, bins=a.bins or 20)
    if a.quick:
        settings.sims, settings.draws, settings.tune = 20, 500, 500
        settings.bins = a.bins or 5
        overrides.setdefault("n", 50)
    designs = [Design(**{**asdict(DESIGNS[d]), **overrides}) for d in a.designs]
    print(f"SBC: {settings.sims} simulations x {[d.name for d in designs]}, "
          f"n={designs[0].n}, K={designs[0].K}, {settings.chains} x {settings.draws} draws")
    _, summary = run(designs, settings, a.out, resume=a.resume)
    print(report(summary))
    print(f"\nwrote {a.out / 'sbc.json'} and {a.out / 'sbc_ranks.png'}")
    failed = any(s["rejected_at_1pct"] for s in summary["results"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
