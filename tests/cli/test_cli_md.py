"""`bayesgmm fit --columns A B ...`: D-dim data, errors, error correlations, exit status.

Reading is checked against hand-built arrays; the plumbing runs with a stand-in for
``bayesgmm.bayes.inference.fit`` returning a D-dim result of the agreed layout (no
sampling), a stand-in for the BIC table (no EM) and a stub report. Bad input is in
tests/test_bad_input.py's table.
"""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm.cli import fit as cli_fit
from bayesgmm.cli import main
from bayesgmm.errors import DataError

#: the table of most tests: a, b, c data (b has an empty cell), sds, a correlation
CSV = """a,b,c,ea,eb,ec,r_ab,c_bc
1.0,2.0,0.5,0.1,0.2,0.3,0.5,0.01
2.0,,1.5,0.1,,0.2,,
3.0,1.0,2.5,0.2,0.3,0.1,-0.3,0.0
4.0,5.0,0.1,0.1,0.1,0.2,0.0,-0.02
5.0,3.0,1.1,0.3,0.1,0.4,0.9,0.01
6.0,4.0,2.0,0.2,0.2,0.2,0.1,0.0
"""


@pytest.fixture
def csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text(CSV)
    return p


def _read(path, *argv):
    """What ``fit`` reads from ``path`` with these options (no fitting)."""
    from bayesgmm.cli.data import read_data
    from bayesgmm.cli.main import build_parser
    from bayesgmm.io import load_table

    args = build_parser().parse_args(["fit", str(path), "--k", "1", "--out", "o", *argv])
    return read_data(load_table(path), args, repr(str(path)))


def test_sds_per_column_are_passed_as_they_are(csv):
    x, err, names, errors, said = _read(csv, "--columns", "a", "b", "--errors", "ea", "eb")
    df = pd.read_csv(csv)
    assert isinstance(x, pd.DataFrame) and list(x.columns) == ["a", "b"] == names
    np.testing.assert_array_equal(x.to_numpy(), df[["a", "b"]].to_numpy())  # NaN kept
    np.testing.assert_array_equal(err, df[["ea", "eb"]].to_numpy())
    assert errors == ["ea", "eb"] and "1 missing cell(s) marginalised" in said


def test_one_error_column_for_all_and_no_errors(csv):
    _, err, *_ = _read(csv, "--columns", "a", "c", "--errors", "ea")
    ea = pd.read_csv(csv)["ea"].to_numpy()
    np.testing.assert_array_equal(err, np.column_stack([ea, ea]))
    _, err, _, errors, _ = _read(csv, "--columns", "a", "c")
    assert err is None and errors == []


def test_correlations_and_covariances_make_full_error_covariances(csv):
    _, cov, *_ = _read(csv, "--columns", "a", "b", "c", "--errors", "ea", "eb", "ec",
                       "--error-corr", "a:b=r_ab", "--error-cov", "c:b=c_bc")
    df = pd.read_csv(csv)
    # by hand, row by row: sd^2 on the diagonal, r sd_a sd_b and the covariance off it,
    # zero in the row and column of row 1's missing b
    expect = np.zeros((6, 3, 3))
    for i, row in df.iterrows():
        sd = np.array([row.ea, row.eb, row.ec])
        S = np.diag(sd**2)
        S[0, 1] = S[1, 0] = row.r_ab * row.ea * row.eb
        S[1, 2] = S[2, 1] = row.c_bc
        if np.isnan(row.b):
            S[1, :] = S[:, 1] = 0.0
        expect[i] = S
    np.testing.assert_allclose(cov, expect, rtol=1e-15, atol=0)


def test_a_number_is_one_correlation_for_every_row(csv):
    _, cov, *_ = _read(csv, "--columns", "a", "c", "--errors", "ea", "ec",
                       "--error-corr", "a:c=-0.25")
    df = pd.read_csv(csv)
    np.testing.assert_allclose(cov[:, 0, 1], -0.25 * df.ea * df.ec, rtol=1e-15)
    np.testing.assert_allclose(cov[:, 1, 0], cov[:, 0, 1], rtol=0)


def test_one_name_in_columns_is_the_1d_fit(csv):
    x, err, column, errors, _ = _read(csv, "--columns", "a", "--errors", "ea")
    assert isinstance(x, pd.Series) and x.name == "a" == column and errors == "ea"
    assert err.shape == (6,)
    with pytest.raises(DataError, match=r"column 'b' in .* has 1 missing"):
        _read(csv, "--columns", "b")  # 1-D still refuses empty cells


def test_help_documents_the_error_options(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--columns C [C ...]", "--error-corr A:B=R [A:B=R ...]",
                  "pmra:pmdec=pmra_pmdec_corr", "--error-cov A:B=C", "full error covariance",
                  "positive semi-definite"):
        assert words in text, words


# ------------------------------------------------------------------ the plumbing

FEATURES = ["a", "b"]


def _tree_md(K=2, C=2, S=100, n=6, seed=0):
    """A D = 2 result of the agreed layout (rules of session 7), from made-up draws."""
    rng = np.random.default_rng(seed)
    D = len(FEATURES)
    w = rng.dirichlet(np.full(K, 50.0), size=(C, S))
    mu = np.arange(K)[:, None] * 3.0 + 0.05 * rng.standard_normal((C, S, K, D))
    sd = 0.5 * np.exp(0.02 * rng.standard_normal((C, S, K, D)))
    r = np.clip(0.3 + 0.02 * rng.standard_normal((C, S, K)), -0.9, 0.9)
    corr = np.broadcast_to(np.eye(D), (C, S, K, D, D)).copy()
    corr[..., 0, 1] = corr[..., 1, 0] = r
    cov = corr * sd[..., :, None] * sd[..., None, :]
    cd, comp = ("chain", "draw"), ("chain", "draw", "component")
    coords = {"chain": np.arange(C), "draw": np.arange(S), "component": np.arange(K),
              "feature": FEATURES, "feature_": FEATURES}
    post = xr.Dataset({"weights": (comp, w), "means": ((*comp, "feature"), mu),
                       "sds": ((*comp, "feature"), sd),
                       "correlations": ((*comp, "feature", "feature_"), corr),
                       "covariances": ((*comp, "feature", "feature_"), cov)}, coords=coords)
    stats = xr.Dataset({"diverging": (cd, np.zeros((C, S), bool))},
                       coords={"chain": coords["chain"], "draw": coords["draw"]})
    obs = rng.normal(size=(n, D))
    groups = {
        "posterior": post, "sample_stats": stats,
        "log_likelihood": xr.Dataset({"x": ((*cd, "obs"), -2.0 + 0.1 * rng.normal(
            size=(C, S, n)))}),
        "posterior_predictive": xr.Dataset({"x": ((*cd, "obs", "feature"), rng.normal(
            size=(C, S, n, D)))}, coords={"feature": FEATURES}),
        "observed_data": xr.Dataset({"x": (("obs", "feature"), obs)},
                                    coords={"feature": FEATURES}),
        "em_estimate": post.isel(chain=0, draw=0, drop=True),
    }
    dt = xr.DataTree.from_dict(groups)
    dt.attrs.update({"n_components": K, "n_features": D, "has_errors": 1, "data_name": "x",
                     "sampler": "nutpie", "sampling_runs": "[]", "relabelled": 1})
    return dt


def _diagnosis(ok):
    from bayesgmm.diagnostics import Diagnosis

    table = pd.DataFrame({"mean": [0.5, 3.0, 0.3]},
                         index=["weights[0]", "means[1, a]", "correlations[0, a, b]"])
    return Diagnosis(ok=ok, verdict="All checks passed." if ok else "Do not trust these "
                     "numbers yet: 1 of 13 checks failed (r_hat).", checks=pd.DataFrame(),
                     table=table)


@pytest.fixture
def fake(monkeypatch):
    """fit, the BIC table, diagnose and the report stood in for; records fit's calls."""
    import bayesgmm.bayes.inference as inference
    import bayesgmm.diagnostics as diagnostics
    import bayesgmm.report as report
    import bayesgmm.selection as selection

    calls = []

    def fit(X, k, **kw):
        calls.append((X, k, kw))
        return _tree_md(K=k, n=X.shape[0])

    def select(X, ks, X_err=None, random_seed=None):
        calls.append(("select", np.asarray(X), X_err))
        ks = list(ks)
        bic = [abs(k - 2) * 10.0 + k for k in ks]  # K = 2 first, then K = 1
        table = pd.DataFrame({"k": ks, "loglik": 0.0, "bic": bic, "aic": bic,
                              "converged": True, "degenerate": False})
        return type("Selection", (), {"table": table, "best_k": 2})()

    state = {"ok": True}
    monkeypatch.setattr(inference, "fit", fit)
    monkeypatch.setattr(selection, "select_n_components", select)
    monkeypatch.setattr(diagnostics, "diagnose", lambda dt, **kw: _diagnosis(state["ok"]))
    monkeypatch.setattr(report, "write_report",
                        lambda dt, path, **kw: path.write_text("<html>stub</html>"))
    return calls, state


@pytest.mark.parametrize("ok,status", [(True, 0), (False, 3)])
def test_md_fit_writes_the_result_and_exit_status(capsys, csv, tmp_path, fake, ok, status):
    calls, state = fake
    state["ok"] = ok
    out = tmp_path / "run"
    code = main(["fit", str(csv), "--columns", "a", "b", "--errors", "ea", "eb",
                 "--error-corr", "a:b=r_ab", "--k", "2", "--seed", "3", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == status, captured.err
    assert captured.out.count("verdict:") == 1
    assert "data columns: a, b (6 rows; 1 missing cell(s) marginalised" in captured.out
    X, k, kw = calls[-1]
    assert k == 2 and list(X.columns) == ["a", "b"] and kw["random_seed"] == 3
    assert kw["X_err"].shape == (6, 2, 2)
    np.testing.assert_allclose(kw["X_err"][0], [[0.01, 0.5 * 0.1 * 0.2],
                                                [0.5 * 0.1 * 0.2, 0.04]], rtol=1e-14)
    # the BIC table had the same data and errors
    np.testing.assert_array_equal(calls[0][1], X.to_numpy())
    dt = xr.load_datatree(out / "posterior.nc")
    assert list(dt.posterior["means"].coords["feature"].values) == FEATURES
    assert dt.posterior["covariances"].dims[-2:] == ("feature", "feature_")
    assert dt.attrs["data_column"] == "a, b" and dt.attrs["error_column"] == "ea, eb"
    cli = json.loads(dt.attrs["cli_args"])
    assert cli["columns"] == ["a", "b"] and cli["errors"] == ["ea", "eb"]
    assert cli["error_corr"] == ["a:b=r_ab"] and cli["error_cov"] == [] and "column" not in cli
    # the verdict's "run next" command gives the columns, errors and correlations back
    from bayesgmm.diagnostics.verdict import command

    again = command(dt, draws=2000)
    assert (f"bayesgmm fit {csv} --columns a b --errors ea eb --error-corr a:b=r_ab --k 2 "
            "--draws 2000") in again, again
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert "correlations[0, a, b]" in summary.index
    assert not list(tmp_path.glob(".run.partial-*"))  # written atomically, as in 1-D


def test_md_fit_json(capsys, csv, tmp_path, fake):
    code = main(["fit", str(csv), "--columns", "a", "c", "--k", "2", "--json",
                 "--out", str(tmp_path / "o")])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["exit_status"] == 0 and doc["n_components"] == 2
    assert doc["data_columns"] == ["a", "c"] and doc["error_columns"] == []
    assert doc["data_column"] is None
    assert doc["summary"]["means[1, a]"]["mean"] == 3.0


def test_md_k_auto_fits_the_bic_candidates_and_compares_by_loo(capsys, csv, tmp_path, fake,
                                                               monkeypatch):
    # where p(K | data) is not computed (too many points, rounded data), LOO chooses
    calls, _ = fake
    monkeypatch.setattr(cli_fit, "_posterior_k", lambda x, e, cands, seed: None)
    code = main(["fit", str(csv), "--columns", "a", "b", "--k", "auto",
                 "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0, out
    fitted = [c[1] for c in calls if not isinstance(c[0], str)]
    assert fitted == [2, 1]  # BIC's two leading K, from the stand-in table
    assert all(c[2]["first_run_check"] is cli_fit.not_identified for c in calls[1:])
    assert "chose K=" in out
    # the LOO table stored for the report counts D-dim parameters (1 + 2*2 + 2*3 for K = 2)
    from bayesgmm._stored import stored_tables

    _, loo = stored_tables(xr.load_datatree(tmp_path / "o" / "posterior.nc"))
    assert loo.loc["K=2", "params"] == 11 and loo.loc["K=1", "params"] == 5


def test_md_k_auto_chooses_by_the_posterior_over_k(capsys, csv, tmp_path, fake, monkeypatch):
    # D dims: --k auto computes p(K | data) on the (n, D) data with their error sds
    # (posterior_k stood in for, recording what it got; the D-dim evidence is tested in
    # tests/bayes/test_smc_md.py). It puts K = 3 first, a K BIC did not propose (its
    # candidates are 2 and 1): K = 3 is fitted as well, and chosen
    import importlib

    from bayesgmm.bayes.posterior_k import PosteriorK

    pk_module = importlib.import_module("bayesgmm.bayes.posterior_k")
    calls, _ = fake
    seen = {}

    def fake_pk(X, ks, X_err=None, random_seed=None):
        seen.update(X=np.asarray(X, float), X_err=X_err, ks=list(ks))
        ks = np.asarray(list(ks))
        p = np.array([0.05, 0.15, 0.6, 0.15, 0.05])[: ks.size]
        p = p / p.sum()
        return PosteriorK(ks=ks, probabilities=p, probabilities_sd=np.full(ks.size, 0.01),
                          log_evidence=np.log(p), log_evidence_se=np.full(ks.size, 0.01),
                          prior=np.full(ks.size, 1 / ks.size),
                          method=["importance"] * ks.size, pareto_k=np.full(ks.size, 0.3),
                          log_evidence_smc=np.log(p))

    monkeypatch.setattr(pk_module, "posterior_k", fake_pk)
    code = main(["fit", str(csv), "--columns", "a", "b", "--errors", "ea", "eb", "--k",
                 "auto", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    df = pd.read_csv(csv)
    np.testing.assert_array_equal(seen["X"], df[["a", "b"]].to_numpy())  # NaN kept
    assert np.shape(seen["X_err"])[:2] == (len(df), 2)
    assert seen["ks"] == [1, 2, 3, 4]  # up to BIC's larger candidate + 2
    assert sorted(c[1] for c in calls if not isinstance(c[0], str)) == [1, 2, 3]
    assert "p(K = 3 | data) = 0.632" in out and "chose K=3" in out


@pytest.mark.parametrize("K,D", [(1, 1), (3, 1), (2, 2), (3, 3)])
def test_parameter_count_is_scikit_learns(K, D):
    from sklearn.mixture import GaussianMixture

    from bayesgmm.selection.loo import n_parameters

    X = np.random.default_rng(0).normal(size=(30, D))
    gm = GaussianMixture(K, covariance_type="full", random_state=0).fit(X)
    assert n_parameters(K, D) == gm._n_parameters()
    assert n_parameters(K) == 3 * K - 1  # the 1-D count, unchanged


def test_sampling_failure_keeps_the_em_estimate_with_the_columns(capsys, csv, tmp_path,
                                                                 fake, monkeypatch):
    import bayesgmm.bayes.inference as inference
    from bayesgmm.errors import SamplingError

    em = {"weights": np.array([0.5, 0.5]), "means": np.zeros((2, 2)),
          "covariances": np.tile(np.eye(2), (2, 1, 1))}

    def broken(X, k, **kw):
        raise SamplingError("sampling failed (test)", em_estimate=em)

    monkeypatch.setattr(inference, "fit", broken)
    out = tmp_path / "o"
    code = main(["fit", str(csv), "--columns", "a", "b", "--errors", "ea", "eb", "--k", "2",
                 "--out", str(out)])
    assert code == 1, capsys.readouterr().err
    doc = json.loads((out / "em_estimate.json").read_text())
    assert doc["data_columns"] == ["a", "b"] and doc["error_columns"] == ["ea", "eb"]
    assert doc["covariances"] == np.tile(np.eye(2), (2, 1, 1)).tolist()


@pytest.mark.slow
def test_md_end_to_end_real_fit(capsys, tmp_path, monkeypatch):
    """One real D = 2 run through the command line: sampling, diagnose, posterior.nc.

    n = 150 well-separated points, correlated errors; 2 x 200 draws are too few for the
    ESS check, so the status is 3 (written, not trusted). The report is E's (stubbed).
    """
    import bayesgmm.report as report

    monkeypatch.setattr(report, "write_report",
                        lambda dt, path, **kw: path.write_text("<html>stub</html>"))
    rng = np.random.default_rng(1)
    n = 150
    lab = rng.random(n) < 0.5
    X = np.where(lab[:, None], rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], n),
                 rng.multivariate_normal([5, 3], [[0.5, -0.2], [-0.2, 0.8]], n))
    e = rng.uniform(0.1, 0.3, (n, 2))
    r = rng.uniform(-0.5, 0.5, n)
    p = tmp_path / "data.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "ea": e[:, 0], "eb": e[:, 1], "r": r}).to_csv(
        p, index=False)
    out = tmp_path / "run"
    code = main(["fit", str(p), "--columns", "a", "b", "--errors", "ea", "eb",
                 "--error-corr", "a:b=r", "--k", "2", "--draws", "200", "--tune", "200",
                 "--chains", "2", "--seed", "1", "--out", str(out)])
    captured = capsys.readouterr()
    assert code in (0, 3), captured.err
    assert captured.out.count("verdict:") == 1
    dt = xr.load_datatree(out / "posterior.nc")
    assert dt.posterior["means"].sizes == {"chain": 2, "draw": 200, "component": 2,
                                           "feature": 2}
    assert list(dt.posterior["feature"].values) == ["a", "b"]
    # the error covariances the model saw are the ones built from the table, by hand
    S = np.zeros((n, 2, 2))
    S[:, 0, 0], S[:, 1, 1] = e[:, 0] ** 2, e[:, 1] ** 2
    S[:, 0, 1] = S[:, 1, 0] = r * e[:, 0] * e[:, 1]
    np.testing.assert_allclose(dt.constant_data["x_err_cov"].values, S, rtol=1e-12)
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert any(i.startswith("sds[") for i in summary.index)
    assert any(i.startswith("correlations[") for i in summary.index)
    # the two clusters' means, in data units (n = 75 each: sd of a mean ~0.1, 0.5 is 5 sd)
    means = dt.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means[np.argsort(means[:, 0])], [[0, 0], [5, 3]], atol=0.5)
