"""`bayesgmm fit` / `demo`: outputs, --force, exit status, --json, result size,
interruption, one-line errors. (--k auto: tests/cli/test_cli_auto.py.)

Plumbing tests reuse one real fit (``fitted``) through a stand-in for
``bayesgmm.bayes.inference.fit``; only the tests about sampling itself sample.
"""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayesgmm.bayes.samplers import pymc_nuts
from bayesgmm.cli import main
from bayesgmm.datasets import simulate

# 2 x 100 draws: the verdict's ESS check (400) fails, so these runs exit with status 3
FAST = ["--draws", "100", "--tune", "200", "--chains", "2", "--seed", "1"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    sim = simulate(300, [0.5, 0.5], [0.0, 3.0], [0.3, 0.5], error_range=(0.2, 0.5),
                   random_seed=3)
    p = tmp_path_factory.mktemp("data") / "v.csv"
    pd.DataFrame({"v": sim.x, "v_err": sim.x_err}).to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def fitted(table):
    """One real K = 2 fit of ``table`` at FAST settings."""
    import bayesgmm

    df = pd.read_csv(table)
    return bayesgmm.fit(df.v, 2, X_err=df.v_err, draws=100, tune=200, chains=2,
                        random_seed=1, progressbar=False)


@pytest.fixture
def reuse_fit(fitted, monkeypatch):
    """``bayesgmm fit`` without sampling: every fit returns a copy of ``fitted``."""
    import bayesgmm.bayes.inference as inference

    calls = []

    def fake(x, k, **kw):
        calls.append(kw)
        return fitted.copy(deep=True)

    monkeypatch.setattr(inference, "fit", fake)
    return calls


@pytest.fixture
def quick_report(monkeypatch):
    """A stub report (the figures take seconds; tests of the report draw them)."""
    import bayesgmm.report as report

    monkeypatch.setattr(report, "write_report",
                        lambda dt, path, **kw: path.write_text("<html>stub</html>"))


def test_fit_writes_outputs(capsys, table, tmp_path):
    out = tmp_path / "run"
    code = main(["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert code == 3, captured.err  # written, but 200 draws fail the ESS check
    dt = xr.load_datatree(out / "posterior.nc")
    assert dt.posterior["means"].sizes == {"chain": 2, "draw": 100, "component": 2}
    assert dt.attrs["data_column"] == "v" and dt.attrs["error_column"] == "v_err"
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert {"means[0]", "means[1]", "sigmas[0]", "weights[1]"} <= set(summary.index)
    # data units: the means are near 0 and 3 (n = 300, 4 sd ~ 0.2)
    assert abs(summary.loc["means[1]", "mean"] - 3.0) < 0.25
    assert "wrote" in captured.out
    assert not list(tmp_path.glob(".run.partial-*"))
    # compressed: gzip on every array, float32 for the two big groups
    with h5py.File(out / "posterior.nc") as f:
        for group in ("log_likelihood", "posterior_predictive"):
            assert f[group]["v"].compression == "gzip" and f[group]["v"].dtype == np.float32
        assert f["posterior"]["means"].compression == "gzip"
        assert f["posterior"]["means"].dtype == np.float64
    # ArviZ still reads it: LOO from the stored log-likelihood
    import arviz_stats as azs

    assert np.isfinite(azs.loo(dt).elpd)


def test_existing_output_needs_force(capsys, table, tmp_path, reuse_fit, quick_report):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user's file")
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    assert (out / "keep.txt").read_text() == "user's file"
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out), "--force",
                 *FAST])
    assert code == 3
    assert (out / "posterior.nc").exists() and not (out / "keep.txt").exists()


def _diagnosis(ok):
    from bayesgmm.diagnostics import Diagnosis

    verdict = ("All 13 checks that could be run passed: these numbers can be trusted." if ok
               else "Do not trust these numbers yet: 1 of 13 checks failed (r_hat).")
    return Diagnosis(ok=ok, verdict=verdict, checks=pd.DataFrame(),
                     table=pd.DataFrame({"mean": [0.5]}, index=["weights[0]"]))


@pytest.mark.parametrize("ok,status", [(True, 0), (False, 3)])
def test_exit_status_and_verdict_said_once(capsys, table, tmp_path, reuse_fit, quick_report,
                                          monkeypatch, ok, status):
    import bayesgmm.diagnostics as diagnostics

    monkeypatch.setattr(diagnostics, "diagnose", lambda dt, **kw: _diagnosis(ok))
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out",
                 str(tmp_path / "o"), *FAST])
    out = capsys.readouterr().out
    assert code == status
    assert out.count(_diagnosis(ok).verdict) == 1
    assert out.lower().count("trust") == 1, out  # not "NOT TRUSTWORTHY YET: Do not trust"


def test_fit_json(capsys, table, tmp_path, reuse_fit, quick_report):
    out = tmp_path / "o"
    code = main(["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out),
                 "--json", *FAST])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is one JSON object; progress went to stderr
    assert "fitting K = 2" in captured.err
    assert code == doc["exit_status"] == 3 and doc["ok"] is False
    assert doc["verdict"].startswith("Do not trust")
    assert doc["n_components"] == 2 and doc["k_choice"]["k"] == 2
    assert doc["k_choice"]["reason"] == "given with --k"
    assert set(doc["files"]) == {"posterior.nc", "summary.csv", "report.html"}
    assert doc["files"]["posterior.nc"] == str((out / "posterior.nc").resolve())
    assert {"means[0]", "sigmas[1]", "weights[0]"} <= set(doc["summary"])
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(doc["summary"]["means[0]"])
    assert doc["data_column"] == "v" and doc["error_column"] == "v_err"


def test_no_loglik_and_thin_ppc_shrink_the_result(capsys, table, tmp_path, reuse_fit, quick_report):
    full, small = tmp_path / "full", tmp_path / "small"
    assert main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(full),
                 *FAST]) == 3
    assert main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(small),
                 "--no-loglik", "--thin-ppc", "10", *FAST]) == 3
    err = capsys.readouterr().err
    assert "LOO (arviz_stats.loo) cannot be computed" in err
    assert reuse_fit[-1]["log_likelihood"] is False  # not even computed
    dt = xr.load_datatree(small / "posterior.nc")
    assert "log_likelihood" not in dt.children and dt.attrs["log_likelihood_stored"] == 0
    assert dt["posterior_predictive"].sizes["draw"] == 10
    assert dt["posterior"].sizes["draw"] == 100  # the posterior itself is whole
    # 300 points, 2 x 100 draws: the two big groups are ~2/3 of the file (the rest is
    # ~170 kB of HDF5 metadata, fixed); at the demo's size they are ~all of it
    assert (small / "posterior.nc").stat().st_size < 0.4 * (full / "posterior.nc").stat().st_size
    none = tmp_path / "none"
    assert main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(none),
                 "--thin-ppc", "0", *FAST]) == 3
    assert "posterior_predictive" not in xr.load_datatree(none / "posterior.nc").children


def test_default_column_ignores_text_and_is_named(capsys, tmp_path, monkeypatch):
    import bayesgmm.bayes.inference as inference

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "fit", interrupted)
    p = tmp_path / "t.csv"
    pd.DataFrame({"site": ["a", "b", "c", "d"], "velocity": [1.0, 2.0, 3.5, 4.0],
                  "err": [0.1] * 4}).to_csv(p, index=False)
    assert main(["fit", str(p), "--k", "1", "--errors", "err", "--out",
                 str(tmp_path / "o")]) == 130
    assert "data column: 'velocity'" in capsys.readouterr().out


def test_out_parent_is_never_created(capsys, table, tmp_path):
    target = tmp_path / "missing" / "dir" / "x"
    code = main(["fit", str(table), "--k", "1", "--column", "v", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_semicolon_file(capsys, tmp_path, monkeypatch):
    import bayesgmm.bayes.inference as inference

    def interrupted(x, *args, **kwargs):
        interrupted.x = x
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "fit", interrupted)
    p = tmp_path / "semi.csv"  # a European spreadsheet export: ';' and decimal commas
    p.write_text("velocity;err\n1,5;0,1\n2,5;0,2\n3,25;0,1\n")
    assert main(["fit", str(p), "--k", "1", "--errors", "err", "--out",
                 str(tmp_path / "o")]) == 130
    np.testing.assert_array_equal(interrupted.x, [1.5, 2.5, 3.25])


def test_interrupt_leaves_nothing(capsys, table, tmp_path, monkeypatch):
    import bayesgmm.bayes.inference as inference

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "fit", interrupted)
    out = tmp_path / "run"
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out), *FAST])
    assert code == 130
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--k", "abc"], "--k must be a positive integer or 'auto'"),
        (["--k", "0"], "--k must be a positive integer"),
        (["--k", "2", "--column", "nope"], "column 'nope' not found"),
        (["--k", "2", "--errors", "v_err", "--column", "v", "--draws", "0"],
         "positive integer"),
    ],
)
def test_fit_bad_input(capsys, table, tmp_path, extra, match):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["fit", str(table), "--out", str(tmp_path / "o"), *extra]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_fit_needs_column_when_ambiguous(capsys, tmp_path):
    p = tmp_path / "two.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}).to_csv(p, index=False)
    code = main(["fit", str(p), "--k", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "choose one with --column" in err


def test_report_bad_file(capsys, tmp_path, table):
    code = main(["report", str(tmp_path / "missing.nc")])
    assert code == 2 and "file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    code = main(["report", str(bad)])
    assert code == 2 and "cannot read" in capsys.readouterr().err
    # a data table given by mistake: our one line, not xarray's list of backends
    code = main(["report", str(table)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "not a netCDF-4 file" in err and "backend" not in err
    with h5py.File(tmp_path / "other.h5", "w") as f:  # HDF5, but not a posterior
        f["a"] = np.arange(3.0)
    code = main(["report", str(tmp_path / "other.h5")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a bayesgmm posterior" in err


def test_report_rebuilds_from_saved_posterior(capsys, table, tmp_path, reuse_fit):
    out = tmp_path / "run"
    assert main(["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out),
                 *FAST]) == 3
    html = (out / "report.html").read_text()
    assert 'id="verdict"' in html and html.count("data:image/png;base64,") >= 5
    target = tmp_path / "again.html"
    assert main(["report", str(out / "posterior.nc"), "--out", str(target)]) == 0
    assert str(target.resolve()) in capsys.readouterr().out
    again = target.read_text()
    assert 'id="verdict"' in again and again.count("data:image/png;base64,") >= 5


def test_demo_end_to_end(capsys, tmp_path):
    # the README's main job: bundled data with errors, defaults (4 x 1,000 draws)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0  # 3 if a check failed
    text = capsys.readouterr().out
    assert "report:" in text and str((out / "report.html").resolve()) in text
    assert "verdict: All" in text  # this example meets R-hat, ESS and the other checks
    for name in ("posterior.nc", "summary.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    assert main(["demo", "--out", str(out)]) == 2  # not overwritten without --force


def test_sampling_failure_keeps_em_estimate(capsys, table, tmp_path, monkeypatch):
    import bayesgmm.bayes.inference as inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated sampler failure")

    monkeypatch.setattr(inference, "_sample_nutpie", broken)
    monkeypatch.setattr(pymc_nuts, "_sample_pymc", broken)
    out = tmp_path / "run"
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out), *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "sampling failed" in err and "not a posterior" in err
    doc = json.loads((out / "em_estimate.json").read_text())
    assert "NOT a posterior" in doc["kind"] and len(doc["means"]) == 2
    assert not (out / "posterior.nc").exists()
    # --json: still one object on stdout
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out),
                 "--force", "--json", *FAST])
    doc = json.loads(capsys.readouterr().out)
    assert code == doc["exit_status"] == 1 and doc["ok"] is False
    assert list(doc["files"]) == ["em_estimate.json"]


@pytest.mark.slow
def test_killed_run_never_leaves_a_truncated_result(table, tmp_path):
    """SIGKILL while the outputs are being written: the previous result stays whole.

    The kill lands once posterior.nc has appeared in the hidden work directory (the
    report takes seconds more to draw), i.e. in the middle of writing the new result.
    """
    import hashlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = ["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out), *FAST]
    cmd = [sys.executable, "-m", "bayesgmm", *args]
    # the runs before and after the kill in this process (the same code path as the
    # command; a subprocess each cost its imports again); only the killed one is separate
    assert main(args) == 3  # FAST
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert {"posterior.nc", "summary.csv", "report.html"} <= set(digest)

    proc = subprocess.Popen([*cmd[:-2], "--seed", "2", "--force"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / f".run.partial-{socket.gethostname()}-{proc.pid}"
    deadline = time.monotonic() + 600
    while not (partial / "posterior.nc").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    killed_while_writing = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert killed_while_writing, "the run finished before the kill; the test proved nothing"
    # the old result is untouched, file for file
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in out.iterdir()} == digest
    assert partial.exists()  # the killed run's work directory, never seen as a result

    # the next run clears what the killed one left and replaces the result whole
    assert main([*args, "--force"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (out / "posterior.nc").exists() and (out / "report.html").exists()


def _dead_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_result_set_aside_by_a_killed_run_is_restored(tmp_path, capsys):
    """Killed between its two renames: the old result is hidden and out is missing."""
    import socket

    from bayesgmm.cli.output import recover_stale

    host, pid = socket.gethostname(), _dead_pid()
    old = tmp_path / f".run.replaced-{host}-{pid}"
    old.mkdir()
    (old / "posterior.nc").write_text("old result")
    new = tmp_path / f".run.partial-{host}-{pid}"
    new.mkdir()
    (new / "posterior.nc").write_text("new, maybe incomplete")
    other = tmp_path / f".run.v2.partial-{host}-{pid}"  # another --out: not touched
    other.mkdir()
    live = tmp_path / f".run.partial-{host}-{__import__('os').getpid()}"  # alive: kept
    live.mkdir()
    recover_stale(tmp_path / "run")
    assert (tmp_path / "run" / "posterior.nc").read_text() == "old result"
    assert not old.exists() and not new.exists() and other.exists() and live.exists()
    assert "restored" in capsys.readouterr().err


def test_no_force_never_replaces_a_result_that_appeared_meanwhile(tmp_path):
    from bayesgmm.cli.output import move_into_place
    from bayesgmm.errors import DataError

    out = tmp_path / "run"
    out.mkdir()
    (out / "theirs.txt").write_text("another run's result")
    tmp = tmp_path / ".run.partial-x-1"
    tmp.mkdir()
    (tmp / "posterior.nc").write_text("ours")
    with pytest.raises(DataError, match="filled by another run"):
        move_into_place(tmp, out, force=False)
    assert (out / "theirs.txt").read_text() == "another run's result"
    saved = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    assert len(saved) == 1 and (saved[0] / "posterior.nc").read_text() == "ours"
    # an empty directory (allowed by the up-front check) is simply taken
    empty = tmp_path / "empty"
    empty.mkdir()
    tmp2 = tmp_path / ".empty.partial-x-1"
    tmp2.mkdir()
    (tmp2 / "posterior.nc").write_text("ours")
    move_into_place(tmp2, empty, force=False)
    assert (empty / "posterior.nc").read_text() == "ours"
