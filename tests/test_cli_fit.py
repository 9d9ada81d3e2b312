"""`bayesgmm fit` / `demo`: outputs, --force, --k auto, interruption, one-line errors."""

import pandas as pd
import pytest
import xarray as xr

from bayesgmm.cli import main
from bayesgmm.datasets import simulate

FAST = ["--draws", "100", "--tune", "200", "--chains", "2", "--seed", "1"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    sim = simulate(300, [0.5, 0.5], [0.0, 3.0], [0.3, 0.5], error_range=(0.2, 0.5),
                   random_seed=3)
    p = tmp_path_factory.mktemp("data") / "v.csv"
    pd.DataFrame({"v": sim.x, "v_err": sim.x_err}).to_csv(p, index=False)
    return p


def test_fit_writes_outputs(capsys, table, tmp_path):
    out = tmp_path / "run"
    code = main(["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    dt = xr.load_datatree(out / "posterior.nc")
    assert dt.posterior["means"].sizes == {"chain": 2, "draw": 100, "component": 2}
    assert dt.attrs["data_column"] == "v" and dt.attrs["error_column"] == "v_err"
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert {"means[0]", "means[1]", "sigmas[0]", "weights[1]"} <= set(summary.index)
    # data units: the means are near 0 and 3 (n = 300, 4 sd ~ 0.2)
    assert abs(summary.loc["means[1]", "mean"] - 3.0) < 0.25
    assert "wrote" in captured.out
    assert not list(tmp_path.glob(".run.partial-*"))


def test_existing_output_needs_force(capsys, table, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user's file")
    code = main(["fit", str(table), "--k", "1", "--column", "v", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    assert (out / "keep.txt").read_text() == "user's file"
    code = main(["fit", str(table), "--k", "1", "--column", "v", "--out", str(out), "--force",
                 *FAST])
    assert code == 0
    assert (out / "posterior.nc").exists() and not (out / "keep.txt").exists()


def test_k_auto_compares_by_loo(capsys, table, tmp_path):
    out = tmp_path / "auto"
    code = main(["fit", str(table), "--k", "auto", "--errors", "v_err", "--out", str(out),
                 *FAST])
    text = capsys.readouterr().out
    assert code == 0
    assert "BIC from EM" in text and "LOO" in text and "chose K=" in text
    dt = xr.load_datatree(out / "posterior.nc")
    assert dt.attrs["n_components"] == 2  # two well-separated components


def test_interrupt_leaves_nothing(capsys, table, tmp_path, monkeypatch):
    import bayesgmm.inference as inference

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


def test_report_bad_file(capsys, tmp_path):
    code = main(["report", str(tmp_path / "missing.nc")])
    assert code == 2 and "file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    code = main(["report", str(bad)])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_report_rebuilds_from_saved_posterior(capsys, table, tmp_path):
    out = tmp_path / "run"
    assert main(["fit", str(table), "--k", "2", "--errors", "v_err", "--out", str(out),
                 *FAST]) == 0
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
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "report:" in text and str((out / "report.html").resolve()) in text
    assert "CONVERGED" in text  # this example meets R-hat, ESS and the other checks
    for name in ("posterior.nc", "summary.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    assert main(["demo", "--out", str(out)]) == 2  # not overwritten without --force


def test_sampling_failure_keeps_em_estimate(capsys, table, tmp_path, monkeypatch):
    import json

    import bayesgmm.inference as inference

    def broken(*args, **kwargs):
        raise RuntimeError("simulated sampler failure")

    monkeypatch.setattr(inference, "_sample_nutpie", broken)
    monkeypatch.setattr(inference, "_sample_pymc", broken)
    out = tmp_path / "run"
    code = main(["fit", str(table), "--k", "2", "--column", "v", "--out", str(out), *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "sampling failed" in err and "not a posterior" in err
    doc = json.loads((out / "em_estimate.json").read_text())
    assert "NOT a posterior" in doc["kind"] and len(doc["means"]) == 2
    assert not (out / "posterior.nc").exists()


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
    cmd = [sys.executable, "-m", "bayesgmm", "fit", str(table), "--k", "2", "--errors",
           "v_err", "--out", str(out), *FAST]
    assert subprocess.run(cmd, capture_output=True, timeout=600).returncode == 0
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
    assert subprocess.run([*cmd, "--force"], capture_output=True,
                          timeout=600).returncode == 0
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

    from bayesgmm.cli_fit import _recover_stale

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
    _recover_stale(tmp_path / "run")
    assert (tmp_path / "run" / "posterior.nc").read_text() == "old result"
    assert not old.exists() and not new.exists() and other.exists() and live.exists()
    assert "restored" in capsys.readouterr().err


def test_no_force_never_replaces_a_result_that_appeared_meanwhile(tmp_path):
    from bayesgmm.cli_fit import _move_into_place
    from bayesgmm.errors import DataError

    out = tmp_path / "run"
    out.mkdir()
    (out / "theirs.txt").write_text("another run's result")
    tmp = tmp_path / ".run.partial-x-1"
    tmp.mkdir()
    (tmp / "posterior.nc").write_text("ours")
    with pytest.raises(DataError, match="filled by another run"):
        _move_into_place(tmp, out, force=False)
    assert (out / "theirs.txt").read_text() == "another run's result"
    saved = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    assert len(saved) == 1 and (saved[0] / "posterior.nc").read_text() == "ours"
    # an empty directory (allowed by the up-front check) is simply taken
    empty = tmp_path / "empty"
    empty.mkdir()
    tmp2 = tmp_path / ".empty.partial-x-1"
    tmp2.mkdir()
    (tmp2 / "posterior.nc").write_text("ours")
    _move_into_place(tmp2, empty, force=False)
    assert (empty / "posterior.nc").read_text() == "ours"
