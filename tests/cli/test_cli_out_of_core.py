"""`bayesgmm em` and `select` on a directory of Parquet files or a glob, out of core."""

import json

import numpy as np
import pandas as pd
import pytest

from bayesgmm.cli import main

pytest.importorskip("dask.dataframe")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def parts(tmp_path):
    # 9,000 rows of (v, v_err) in three Parquet files, and the same rows as one CSV
    rng = np.random.default_rng(5)
    n = 9_000
    lab = rng.choice(2, size=n, p=[0.6, 0.4])
    err = rng.uniform(0.1, 0.4, n)
    v = np.where(lab == 0, 0.0, 4.0) + rng.normal(0, 1, n) + rng.normal(0, 1, n) * err
    df = pd.DataFrame({"v": v, "v_err": err, "note": ["x"] * n})
    d = tmp_path / "catalogue"
    d.mkdir()
    for i in range(3):
        df.iloc[i * 3000:(i + 1) * 3000].to_parquet(d / f"part-{i}.parquet")
    csv = tmp_path / "all.csv"
    df.to_csv(csv, index=False)
    return d, csv


def test_em_on_a_directory_matches_the_in_memory_fit(capsys, parts):
    d, csv = parts
    code, out, err = run(capsys, "em", str(d), "--k", "2", "--errors", "v_err",
                         "--chunk-size", "2000", "--seed", "0", "--json")
    assert code == 0, err
    lazy = json.loads(out)
    code, out, err2 = run(capsys, "em", str(csv), "--k", "2", "--errors", "v_err",
                          "--seed", "0", "--json")
    assert code == 0, err2
    mem = json.loads(out)
    assert lazy["n_samples"] == mem["n_samples"] == 9_000
    assert lazy["columns"] == ["v"]
    # the same maximum: default tol (1e-3 per point) stops both within ~1e-3 x n of it
    assert lazy["loglik"] == pytest.approx(mem["loglik"], abs=5.0)
    np.testing.assert_allclose(lazy["means"], mem["means"], atol=0.02)
    assert lazy["bic"] == pytest.approx(mem["bic"], abs=10.0)
    # a progress line per pass over the files, on stderr
    passes = [line for line in err.splitlines() if line.startswith("pass ")]
    assert len(passes) >= lazy["n_iter"]


def test_select_on_a_glob(capsys, parts):
    d, _ = parts
    code, out, err = run(capsys, "select", str(d / "part-*.parquet"), "--columns", "v",
                         "--k-max", "3", "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["best_k"] == 2 and obj["n_samples"] == 9_000


@pytest.mark.parametrize(("argv", "message"), [
    (["em", "{d}/nothing-*.parquet", "--k", "2"], "no files match"),
    (["em", "{d}", "--k", "2", "--columns", "w"], "column 'w' not found"),
    (["select", "{d}", "--k-max", "2", "--criterion", "posterior"], "in memory"),
    (["em", "{d}", "--k", "2", "--columns", "note"], "not numeric"),
])
def test_bad_datasets_exit_2_with_one_line(capsys, parts, argv, message):
    d, _ = parts
    code, out, err = run(capsys, *[a.format(d=d) for a in argv])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
