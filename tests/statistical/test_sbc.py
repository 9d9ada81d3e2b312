"""Simulation-based calibration, reduced: benchmarks/sbc.py at a size the suite can carry.

The full study (200 + 200 simulations, target: no parameter rejects uniformity at 1%)
is ``python benchmarks/sbc.py``; this runs the same code on 20 + 20 data sets of 40
points, 4 x 200 draws (the 99 ranked draws are then every 8th, close to independent).
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sbc.py"


@pytest.fixture(scope="module")
def sbc():
    spec = importlib.util.spec_from_file_location("bayesgmm_sbc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_prior_draw_is_sorted_and_follows_the_design(sbc):
    d = sbc.Design("errors", n=500, K=3, errors=(0.2, 1.0))
    t = d.draw(np.random.default_rng(0))
    assert np.all(np.diff(t["means"]) > 0)
    assert t["weights"].sum() == pytest.approx(1.0)
    assert np.all(t["sigmas"] > 0)
    assert t["x"].shape == t["true"].shape == t["x_err"].shape == (500,)
    assert np.all((t["x_err"] >= 0.2) & (t["x_err"] <= 1.0))
    # the observed values are the true ones plus the stated errors: standardized
    # residuals have sd 1 (500 points: sd of the sample sd ~ 0.03; 0.1 is > 3 of them)
    assert np.std((t["x"] - t["true"]) / t["x_err"]) == pytest.approx(1.0, abs=0.1)


def test_prior_draw_in_two_dimensions(sbc):
    d = sbc.DESIGNS["errors_2d"]
    d = sbc.Design(**{**sbc.asdict(d), "n": 2000, "K": 3})
    t = d.draw(np.random.default_rng(3))
    assert t["means"].shape == t["sds"].shape == (3, 2)
    assert t["x"].shape == t["true"].shape == (2000, 2) and t["x_err"].shape == (2000, 2, 2)
    np.testing.assert_allclose(t["covariances"], t["sds"][:, :, None] * t["correlations"]
                               * t["sds"][:, None, :])
    # the stated error covariances: whitened residuals have identity covariance (2000
    # points: the sample covariance's entries have sd ~0.03; 0.1 is > 3 of them)
    L = np.linalg.cholesky(t["x_err"])
    white = np.linalg.solve(L, (t["x"] - t["true"])[:, :, None])[..., 0]
    np.testing.assert_allclose(np.cov(white.T), np.eye(2), atol=0.1)
    assert d.priors()["corr_eta"] == 2.0 and "corr_eta" not in sbc.DESIGNS["plain"].priors()


@pytest.mark.parametrize("D", [2, 3])
def test_lkj_draws_have_the_lkj_marginal(sbc, D):
    from scipy import stats

    # LKJ(eta) in D dimensions: each correlation is 2 Beta(b, b) - 1, b = eta - 1 + D/2
    # (Lewandowski et al. 2009); 3000 draws, KS at 1% with a fixed seed
    rng = np.random.default_rng(11)
    eta = 2.0
    draws = np.array([sbc.lkj_corr(D, eta, rng) for _ in range(3000)])
    assert np.all(np.linalg.eigvalsh(draws) > 0)
    b = eta - 1 + D / 2
    for i, j in zip(*np.triu_indices(D, 1), strict=True):
        r = (draws[:, i, j] + 1) / 2
        assert stats.kstest(r, stats.beta(b, b).cdf).pvalue > 0.01, (i, j)


def test_truth_is_relabelled_like_the_draws(sbc):
    import xarray as xr

    d = sbc.Design("plain_2d", D=2, K=3, n=10)
    t = d.draw(np.random.default_rng(5))
    perm = np.array([2, 0, 1])
    # the fit's EM estimate holds the components in another order than the truth
    em = xr.Dataset({"means": (("component", "feature"), t["means"][perm]),
                     "covariances": (("component", "feature", "feature_"),
                                     t["covariances"][perm])})
    dt = xr.DataTree.from_dict({"em_estimate": em})
    r = sbc.relabelled_truth(t, dt)
    for p in ("weights", "means", "sds", "correlations", "covariances"):
        np.testing.assert_array_equal(r[p], t[p][perm])
    assert sbc._labels("correlations", d) == ["0,0,1", "1,0,1", "2,0,1"]
    assert sbc._labels("sds", d)[:3] == ["0,0", "0,1", "1,0"]


def test_uniformity_test_accepts_uniform_and_rejects_skewed_ranks(sbc):
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, 100, size=200)
    assert sbc.uniformity(uniform, 99, 20)["p_value"] > 0.01
    # an over-dispersed posterior piles the ranks in the middle: must be rejected
    middle = np.clip(rng.normal(50, 12, size=200).round(), 0, 99).astype(int)
    assert sbc.uniformity(middle, 99, 20)["p_value"] < 1e-6
    with pytest.raises(ValueError, match="multiple of bins"):
        sbc.uniformity(uniform, 99, 7)


def test_records_survive_an_interrupted_run(sbc, tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"design": "plain", "index": 0}) + "\n" + '{"design": "pl')
    assert sbc.load_records(path) == [{"design": "plain", "index": 0}]
    # the cut-short line is gone, so the next record appended starts on a line of its own
    with path.open("a") as fh:
        fh.write(json.dumps({"design": "plain", "index": 1}) + "\n")
    assert [r["index"] for r in sbc.load_records(path)] == [0, 1]


def test_resume_refuses_other_settings(sbc, tmp_path):
    designs = [sbc.Design("plain", n=30)]
    (tmp_path / "records.jsonl").write_text("")
    (tmp_path / "identity.json").write_text(json.dumps(
        sbc._identity(designs, sbc.Settings(sims=5, draws=100))))
    with pytest.raises(SystemExit, match="other settings"):
        sbc.run(designs, sbc.Settings(sims=5, draws=200), tmp_path, resume=True)


def test_coverage_intervals(sbc):
    c = sbc.proportion(180, 200, 0.9)
    assert c["ci_low"] < 0.9 < c["ci_high"] and c["coverage"] == 0.9
    assert sbc.proportion(140, 200, 0.9)["ci_high"] < 0.9
    cl = sbc.clustered(np.array([0.85, 0.9, 0.95, 0.9]))
    assert cl["ci_low"] < 0.9 < cl["ci_high"]


@pytest.mark.slow
def test_reduced_sbc_is_calibrated(sbc, tmp_path, monkeypatch):
    import nutpie.compiled_pyfunc as cp

    built = []
    original = cp.from_pyfunc

    def counting(*args, **kwargs):
        built.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cp, "from_pyfunc", counting)
    # one run per fit (target_accept given): the rerun after divergences would double the
    # time here; the full study samples with fit's defaults, rerun included
    settings = sbc.Settings(sims=16, draws=200, tune=300, chains=4, bins=4, seed=7,
                            target_accept=0.8)
    designs = [sbc.Design("plain", n=40), sbc.Design("errors", n=40, errors=(0.2, 1.0))]
    records, summary = sbc.run(designs, settings, tmp_path, log=lambda *_: None)

    assert len(records) == 32
    assert len(built) <= 1  # one compiled model for K = 2, reused for all 32 fits
    assert (tmp_path / "sbc_ranks.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "sbc.json").read_text())["results"].keys() == {
        "plain", "errors"}
    for name, res in summary["results"].items():
        # 16 simulations, 4 bins (4 expected per bin), 6 parameters per design: at 0.1%
        # a calibrated sampler fails this with probability ~1.2% over the 12 tests (the
        # seed is fixed, so the outcome is too); the full study tests at 1% with 200.
        bad = {p: t["p_value"] for p, t in res["uniformity"].items() if t["p_value"] < 1e-3}
        assert not bad, (name, bad)
        # all 90% intervals pooled: 96 per design, correlated within a simulation, so
        # allow 0.75-0.99 (a 2x-too-narrow or too-wide posterior lands far outside)
        cover = np.mean([c["coverage"] for c in res["interval_coverage"].values()])
        assert 0.75 <= cover <= 0.99, (name, cover)
    tv = summary["results"]["errors"]["true_values_coverage_by_simulation"]
    # 16 data sets x 40 points; the per-simulation coverage has sd ~0.06, so the mean's
    # standard error is ~0.015: 0.05 is more than 3 of them
    assert abs(tv["coverage"] - 0.9) < 0.05, tv


@pytest.mark.slow
def test_reduced_sbc_in_two_dimensions(sbc, tmp_path):
    # the D = 2 designs of the full study (python benchmarks/sbc.py --designs plain_2d
    # errors_2d), at a size the suite can carry: 8 + 8 data sets of 40 points, 4 x 200
    # draws, one run per fit. Each draw and the truth are relabelled to the fit's EM
    # estimate by the same rule (relabelled_truth), which keeps the ranks uniform.
    settings = sbc.Settings(sims=8, draws=200, tune=300, chains=4, bins=4, seed=11,
                            target_accept=0.8)
    designs = [sbc.Design("plain_2d", D=2, n=40),
               sbc.Design("errors_2d", D=2, n=40, errors=(0.2, 1.0))]
    records, summary = sbc.run(designs, settings, tmp_path, log=lambda *_: None)

    assert len(records) == 16
    assert len(records[0]["ranks"]) == 2 + 4 + 4 + 2  # weights, means, sds, correlations
    for name, res in summary["results"].items():
        # 8 simulations in 4 bins (2 expected per bin), 12 parameters per design: at
        # 0.1% a calibrated sampler fails one of the 24 tests with probability ~2.4% (a
        # fixed seed fixes the outcome). This only catches ranks piled in one bin; the
        # full study is the real test: 100 + 100 at 1% (benchmarks/README.md).
        bad = {p: t["p_value"] for p, t in res["uniformity"].items() if t["p_value"] < 1e-3}
        assert not bad, (name, bad)
        # a relabelling that disagreed with the truth's puts ranks at 0 or L: of the 96
        # ranks of a design, 2% (about 2) are there by chance; more than 12 has
        # probability below 1e-7 for a calibrated sampler
        ranks = [r["ranks"][p] for r in records if r["design"] == name for p in r["ranks"]]
        extreme = sum(k in (0, settings.n_ranks) for k in ranks)
        assert len(ranks) == 96 and extreme <= 12, (name, extreme)
        # 96 intervals at 90% per design, correlated within a simulation: 0.75-0.99
        cover = np.mean([c["coverage"] for c in res["interval_coverage"].values()])
        assert 0.75 <= cover <= 0.99, (name, cover)
    assert "true_values_coverage_by_simulation" in summary["results"]["errors_2d"]
