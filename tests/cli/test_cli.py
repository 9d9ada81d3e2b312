"""Command line: output contract and one-line errors with exit status 2."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayesgmm.cli import main
from bayesgmm.datasets import example_path, simulate


@pytest.fixture
def noisy_csv(tmp_path):
    sim = simulate(400, [0.5, 0.5], [0.0, 3.0], [0.3, 0.5], error_range=(0.2, 0.6),
                   random_seed=1)
    p = tmp_path / "noisy.csv"
    pd.DataFrame({"v": sim.x, "v_err": sim.x_err, "name": ["a"] * 400}).to_csv(p, index=False)
    return p


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_em_json(capsys, noisy_csv):
    code, out, err = run(capsys, "em", str(noisy_csv), "--k", "2", "--errors", "v_err",
                         "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    for key in ("n_components", "weights", "means", "covariances", "loglik", "bic", "aic",
                "n_iter", "converged"):
        assert key in obj
    assert obj["n_components"] == 2
    assert np.array(obj["means"]).shape == (2, 1)
    assert np.array(obj["covariances"]).shape == (2, 1, 1)
    assert obj["columns"] == ["v"]  # the text column and the error column are not data
    # intrinsic widths (errors removed), means sorted; n = 400, tolerance ~4 sd
    np.testing.assert_allclose(np.sqrt(np.ravel(obj["covariances"])), [0.3, 0.5], atol=0.12)
    np.testing.assert_allclose(np.ravel(obj["means"]), [0.0, 3.0], atol=0.15)
    n_par = 5
    assert obj["bic"] == pytest.approx(-2 * obj["loglik"] + n_par * np.log(400))


def test_em_text_and_parquet(capsys, tmp_path):
    df = pd.read_csv(example_path("seed000"))
    p = tmp_path / "d.parquet"
    df.to_parquet(p)
    code, out, err = run(capsys, "em", str(p), "--k", "2", "--seed", "1")
    assert code == 0, err
    assert "log-likelihood" in out and "converged" in out


def test_select_json(capsys):
    code, out, err = run(capsys, "select", example_path("seed000"), "--k-max", "6",
                         "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["criterion"] == "bic" and obj["best_k"] == 2
    assert [r["k"] for r in obj["table"]] == [1, 2, 3, 4, 5, 6]
    assert set(obj["table"][0]) >= {"k", "loglik", "bic", "aic"}


def test_select_by_the_posterior_over_k(capsys, tmp_path, monkeypatch):
    # seed 000's 50 points (two groups): K = 2 must lead p(K | data) among 1..3 (not the
    # first candidate), and BIC's columns and choice stay in the table. The values are
    # rounded to 0.01 and two of them repeat: without errors there is no evidence (exit
    # 2, and the message says what to pass); with their rounding error, 0.01 / sqrt(12),
    # there is. posterior_k runs for real with a third of its default work (500
    # particles x 2 runs, 50,000 importance draws): its accuracy is tested in
    # tests/bayes/test_posterior_k.py, the CLI's use of it here
    import functools
    import importlib

    pk_module = importlib.import_module("bayesgmm.bayes.posterior_k")
    monkeypatch.setattr(pk_module, "posterior_k", functools.partial(
        pk_module.posterior_k, n_particles=500, n_runs=2, n_importance=50_000))
    code, out, err = run(capsys, "select", example_path("seed000"), "--k-max", "3",
                         "--criterion", "posterior", "--seed", "0")
    assert code == 2 and "repeat exactly" in err and "u / sqrt(12)" in err, err
    x = pd.read_csv(example_path("seed000"))["x"]
    data = tmp_path / "seed000_err.csv"
    pd.DataFrame({"x": x, "x_err": 0.01 / np.sqrt(12)}).to_csv(data, index=False)
    code, out, err = run(capsys, "select", str(data), "--errors", "x_err", "--k-max", "3",
                         "--criterion", "posterior", "--seed", "0", "--json")
    obj = json.loads(out)
    assert code in (0, 3), err
    # exit 3 exactly when some K's evidence had no importance-sampling check
    methods = [r["evidence_method"] for r in obj["table"]]
    assert (code == 3) == ("smc" in methods), (code, methods)
    assert obj["criterion"] == "posterior" and obj["best_k"] == 2
    p = [r["p_k"] for r in obj["table"]]
    assert sum(p) == pytest.approx(1.0) and max(p) == p[1] and p[1] > 0.5
    assert obj["best_k_bic"] == 2 and {"bic", "log_evidence", "p_k_sd"} <= set(obj["table"][0])


def test_select_posterior_takes_several_columns(capsys, gappy_csv, monkeypatch):
    # D dims go to posterior_k's D-dim model with the data's missing cells and the error
    # columns (a stand-in records what it was given; the D-dim statistics are tested in
    # tests/bayes/test_smc_md.py): both columns, NaN kept, one error sd per cell
    import importlib

    from bayesgmm.bayes.posterior_k import PosteriorK

    # the module (bayesgmm.bayes re-exports a function of the same name)
    pk_module = importlib.import_module("bayesgmm.bayes.posterior_k")

    seen = {}

    def fake(X, ks, X_err=None, random_seed=None, priors=None):
        seen.update(X=np.asarray(X), X_err=None if X_err is None else np.asarray(X_err),
                    priors=priors)
        ks = np.asarray(list(ks))
        p = np.array([0.1, 0.9])
        return PosteriorK(ks=ks, probabilities=p, probabilities_sd=np.full(2, 0.01),
                          log_evidence=np.log(p), log_evidence_se=np.full(2, 0.01),
                          prior=np.full(2, 0.5), method=["importance"] * 2,
                          pareto_k=np.full(2, 0.3), log_evidence_smc=np.log(p))

    monkeypatch.setattr(pk_module, "posterior_k", fake)
    path = gappy_csv[0]
    code, out, err = run(capsys, "select", str(path), "--columns", "a", "b", "--errors",
                         "ea", "eb", "--k-max", "2", "--criterion", "posterior", "--json")
    assert code == 0, err
    X = seen["X"]
    assert seen["priors"] is None  # fit's defaults unless --priors says otherwise
    assert X.shape == (300, 2) and np.isnan(X).any()
    assert seen["X_err"] is not None and seen["X_err"].shape[:2] == (300, 2)
    obj = json.loads(out)
    assert obj["best_k"] == 2 and [r["p_k"] for r in obj["table"]] == [0.1, 0.9]


def test_select_posterior_with_richardson_and_greens_priors(capsys, monkeypatch):
    # --priors richardson_green reaches posterior_k as the preset's name (a stand-in
    # records it; the preset's statistics are tested in tests/bayes/
    # test_richardson_green.py), and the text says which priors p(K | data) is under
    import importlib

    from bayesgmm.bayes.posterior_k import PosteriorK

    pk_module = importlib.import_module("bayesgmm.bayes.posterior_k")
    seen = {}

    def fake(X, ks, X_err=None, random_seed=None, priors=None):
        seen.update(priors=priors, shape=np.shape(X))
        ks = np.asarray(list(ks))
        p = np.array([0.2, 0.7, 0.1])
        return PosteriorK(ks=ks, probabilities=p, probabilities_sd=np.full(3, 0.01),
                          log_evidence=np.log(p), log_evidence_se=np.full(3, 0.01),
                          prior=np.full(3, 1 / 3), method=["importance"] * 3,
                          pareto_k=np.full(3, 0.3), log_evidence_smc=np.log(p))

    monkeypatch.setattr(pk_module, "posterior_k", fake)
    code, out, err = run(capsys, "select", example_path("galaxy"), "--k-max", "3",
                         "--criterion", "posterior", "--priors", "richardson_green")
    assert code == 0, err
    assert seen == {"priors": "richardson_green", "shape": (82,)}
    assert "p(K = 2 | data) = 0.700" in out and "Richardson & Green's priors" in out
    # their prior is 1-D: two columns are refused with what to do (exit 2, one line)
    code, out, err = run(capsys, "select", example_path("old_faithful"), "--k-max", "2",
                         "--criterion", "posterior", "--priors", "richardson_green")
    assert code == 2 and "pass one --column" in err and err.count("\n") == 1, err


def _bad_files(tmp_path):
    text = tmp_path / "text.csv"
    pd.DataFrame({"x": ["1.0", "two", "3"]}).to_csv(text, index=False)
    nan = tmp_path / "nan.csv"
    pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0]}).to_csv(nan, index=False)
    inf = tmp_path / "inf.csv"
    inf.write_text("x\n1.0\ninf\n3.0\n")
    neg = tmp_path / "neg.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "e": [0.1, -0.2, 0.1]}).to_csv(neg, index=False)
    one = tmp_path / "one.csv"
    pd.DataFrame({"x": [1.0]}).to_csv(one, index=False)
    ok = tmp_path / "ok.csv"
    pd.DataFrame({"x": np.arange(5.0)}).to_csv(ok, index=False)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    return {"text": text, "nan": nan, "inf": inf, "neg": neg, "one": one, "ok": ok,
            "garbage": garbage}


@pytest.mark.parametrize(
    "args,match",
    [
        (["em", "{missing}", "--k", "2"], "file not found"),
        (["em", "{ok}", "--k", "2", "--columns", "nope"], "column 'nope' not found"),
        (["em", "{text}", "--k", "1", "--columns", "x"], "not numeric"),
        (["em", "{nan}", "--k", "1"], "NaN or infinite"),
        (["em", "{inf}", "--k", "1"], "NaN or infinite"),
        (["em", "{neg}", "--k", "1", "--columns", "x", "--errors", "e"], "negative"),
        (["em", "{ok}", "--k", "9"], "exceeds the number of rows"),
        (["em", "{one}", "--k", "1"], "at least 2"),
        (["em", "{ok}", "--k", "0"], "positive integer"),
        (["em", "{ok}"], "required"),
        (["select", "{ok}", "--k-max", "3", "--criterion", "dic"], "invalid choice"),
        (["select", "{ok}", "--k-max", "3", "--priors", "richardson_green"],
         "add --criterion posterior"),
        (["select", "{ok}", "--k-max", "3", "--priors", "flat"], "invalid choice"),
        (["em", "{garbage}", "--k", "2"], "cannot read"),
    ],
)
def test_bad_input_exit_2_one_line(capsys, tmp_path, args, match):
    files = _bad_files(tmp_path)
    files["missing"] = tmp_path / "missing.csv"
    argv = [a.format(**files) for a in args]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    assert match in err
    assert "Traceback" not in err


def test_console_script_subprocess(tmp_path):
    # The installed entry point: exit status and stderr as a user sees them.
    p = subprocess.run([sys.executable, "-m", "bayesgmm.cli", "em", str(tmp_path / "x.csv"),
                        "--k", "2"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("bayesgmm: error: file not found")
    assert "Traceback" not in p.stderr


def test_version(capsys):
    from bayesgmm import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesgmm {__version__}"


def test_every_option_states_its_default(capsys):
    """Each optional option's help says its default; --help documents the exit statuses."""
    import argparse

    from bayesgmm.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "3  fit, demo: the result was written but failed a check" in text
        formatter = p._get_formatter()
        for action in p._optionals._group_actions:
            if action.required or action.nargs == 0:  # required, or a flag / --help
                continue
            assert "(default" in formatter._get_help_string(action) % {
                "default": action.default}, f"{name} {action.option_strings}"


@pytest.mark.parametrize(
    "name,text,extra",
    [
        ("semi.csv", "v;e\n1.5;0.1\n2.5;0.2\n3.5;0.1\n", []),
        ("comma_decimal.csv", "v;e\n1,5;0,1\n2,5;0,2\n3,5;0,1\n", []),
        ("tabs.tsv", "v\te\n1.5\t0.1\n2.5\t0.2\n3.5\t0.1\n", []),
        ("tabs.txt", "v\te\n1.5\t0.1\n2.5\t0.2\n3.5\t0.1\n", []),
        ("pipes.csv", "v|e\n1.5|0.1\n2.5|0.2\n3.5|0.1\n", []),
        ("forced.dat.csv", "v:e\n1.5:0.1\n2.5:0.2\n3.5:0.1\n", ["--sep", ":"]),
        # a semicolon given by habit still reads decimal commas
        ("given_semi.csv", "v;e\n1,5;0,1\n2,5;0,2\n3,5;0,1\n", ["--sep", ";"]),
        # whole numbers in the first 60 rows, decimal commas only later
        ("late_decimals.csv", "v;e\n" + "2;0\n" * 60 + "1,5;0,1\n3,5;0,1\n", []),
    ],
)
def test_separator_detection(capsys, tmp_path, name, text, extra):
    p = tmp_path / name
    p.write_text(text)
    code, out, err = run(capsys, "em", str(p), "--k", "1", "--errors", "e", "--json", *extra)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["columns"] == ["v"]
    if name == "late_decimals.csv":  # 60 x 2 and 1.5, 3.5 (errors 0 and 0.1: XD weights)
        assert obj["means"][0][0] == pytest.approx(2.0, abs=0.05)
    else:
        assert obj["means"][0][0] == pytest.approx(2.5)


def test_one_column_with_decimal_commas_is_read_as_numbers(capsys, tmp_path):
    # one column: the header has no separator to guess from, and "6,47" split at the comma
    # became an index (6) and a value (47) before; now it is 6.47
    p = tmp_path / "one.csv"
    p.write_text("v\n1,5\n2,5\n3,5\n")
    code, out, err = run(capsys, "em", str(p), "--k", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["means"][0][0] == pytest.approx(2.5)


def test_rows_longer_than_the_header_are_refused(capsys, tmp_path):
    # a row with more fields than the header used to lend its first field as an index
    p = tmp_path / "long.csv"
    p.write_text("a,b\n1,2,3\n4,5,6\n7,8,9\n")
    code, out, err = run(capsys, "em", str(p), "--k", "1")
    assert code == 2 and "more fields than the header" in err and "--sep" in err
    assert len(err.strip().splitlines()) == 1


def test_no_numeric_column_says_what_was_read_as_text(capsys, tmp_path):
    # no --errors given: the message must not speak of error columns, and it names what
    # was read as text (here: a ':' file read with the wrong separator)
    p = tmp_path / "colon.csv"
    p.write_text("v:e\n1.5:0.1\n2.5:0.2\n")
    code, out, err = run(capsys, "em", str(p), "--k", "1", "--sep", ";")
    assert code == 2
    assert "error columns" not in err and "read as text: v:e" in err and "--sep" in err


def test_select_names_its_columns(capsys, noisy_csv):
    code, out, err = run(capsys, "select", str(noisy_csv), "--k-max", "2", "--errors", "v_err",
                         "--seed", "0")
    assert code == 0, err
    assert "data columns: v)" in out  # 'name' (text) and 'v_err' (errors) were left out


@pytest.fixture
def gappy_csv(tmp_path):
    """Two features, two components, 20% of the cells empty (no row entirely empty)."""
    rng = np.random.default_rng(7)
    n = 300
    lab = rng.random(n) < 0.5
    X = np.where(lab[:, None], rng.normal([0.0, 0.0], 1.0, (n, 2)),
                 rng.normal([5.0, 4.0], 1.0, (n, 2)))
    gone = rng.random(X.shape) < 0.2
    gone[gone.all(axis=1), 0] = False
    X[gone] = np.nan
    E = np.where(gone, np.nan, 0.1)  # an error cell may be empty where its data cell is
    p = tmp_path / "gappy.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "ea": E[:, 0], "eb": E[:, 1]}).to_csv(
        p, index=False)  # NaN is written as an empty cell
    return p, X, E


def test_em_marginalises_empty_cells(capsys, gappy_csv):
    from bayesgmm import GaussianMixtureEM

    p, X, E = gappy_csv
    code, out, err = run(capsys, "em", str(p), "--k", "2", "--columns", "a", "b",
                         "--errors", "ea", "eb", "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["n_missing"] == int(np.isnan(X).sum()) > 0
    assert obj["n_samples"] == 300
    # the same fit as the API's on the same array (the file round trip is exact here)
    gm = GaussianMixtureEM(2, random_seed=0).fit(X, X_err=E)
    assert obj["loglik"] == pytest.approx(gm.loglik_, rel=1e-12)
    assert obj["bic"] == pytest.approx(gm.bic(X, X_err=E), rel=1e-12)
    code, out, err = run(capsys, "em", str(p), "--k", "2", "--columns", "a", "b")
    assert code == 0, err
    assert "missing cell(s) marginalised" in out


def test_em_missing_cells_that_stay_errors(capsys, tmp_path):
    both = tmp_path / "both.csv"
    both.write_text("a,b\n1,2\n,\n3,1\n2,\n")
    code, _, err = run(capsys, "em", str(both), "--k", "1", "--columns", "a", "b")
    assert code == 2
    assert "1 row(s) of " in err
    assert "both.csv' have every data column (a, b) missing (first at row 1)" in err
    noerr = tmp_path / "noerr.csv"
    noerr.write_text("a,b,ea,eb\n1,2,0.1,0.1\n2,,0.1,\n3,1,,0.1\n")
    code, _, err = run(capsys, "em", str(noerr), "--k", "1", "--columns", "a", "b",
                       "--errors", "ea", "eb")
    assert code == 2
    assert "column 'ea' in " in err and "noerr.csv' has 1 missing" in err
    assert "where the data are observed" in err
    infs = tmp_path / "infs.csv"
    infs.write_text("a,b\n1,2\n2,inf\n3,\n")
    code, _, err = run(capsys, "em", str(infs), "--k", "1", "--columns", "a", "b")
    assert code == 2 and "infinite" in err


def test_select_with_empty_cells(capsys, gappy_csv):
    p, _, _ = gappy_csv
    code, out, err = run(capsys, "select", str(p), "--columns", "a", "b", "--k-max", "3",
                         "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["best_k"] == 2 and obj["n_samples"] == 300


def test_fit_still_refuses_empty_cells(capsys, tmp_path):
    p = tmp_path / "gap2.csv"
    p.write_text("x\n1\n\n3\n4\n5\n")
    code, _, err = run(capsys, "fit", str(p), "--k", "1", "--out", str(tmp_path / "o"))
    assert code == 2 and "missing" in err


def test_precompile_runs_every_group_and_reports(capsys, monkeypatch):
    # plumbing only (the real groups compile for minutes; the Makefile's install runs
    # them): each group is run once, on one worker, and its time reported
    from bayesgmm.cli import precompile

    ran = []
    monkeypatch.setattr(precompile, "GROUPS", {"a": lambda: ran.append("a"),
                                               "b": lambda: ran.append("b")})
    code, out, err = run(capsys, "precompile", "--workers", "1", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert ran == ["a", "b"] and set(obj["group_seconds"]) == {"a", "b"}
    assert obj["wall_seconds"] >= 0
