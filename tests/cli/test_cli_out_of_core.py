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


def _write_parts(df, d, rows=3000):
    """``df`` as Parquet files of ``rows`` rows each in a new directory ``d``."""
    d.mkdir()
    for i in range(0, len(df), rows):
        df.iloc[i:i + rows].to_parquet(d / f"part-{i // rows}.parquet")


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
    _write_parts(df, d)
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


def test_em_on_parquet_files_with_empty_cells(capsys, tmp_path):
    # two columns with 5% of the cells empty, in three files: the missing values are
    # marginalised out of core (the same maximum as the same rows in memory, within
    # the default tolerance), and the output counts them
    rng = np.random.default_rng(6)
    X = np.concatenate([rng.normal(0, 1, (4500, 2)), rng.normal(4, 1, (4500, 2))])
    nan = rng.random(X.shape) < 0.05
    nan[nan.all(axis=1), 0] = False
    X[nan] = np.nan
    df = pd.DataFrame(X, columns=["g", "r"])
    d = tmp_path / "bands"
    _write_parts(df, d)
    csv = tmp_path / "bands.csv"
    df.to_csv(csv, index=False)
    code, out, err = run(capsys, "em", str(d), "--k", "2", "--seed", "0", "--json")
    assert code == 0, err
    lazy = json.loads(out)
    code, out, err = run(capsys, "em", str(csv), "--k", "2", "--seed", "0", "--json")
    assert code == 0, err
    mem = json.loads(out)
    assert lazy["n_missing"] == mem["n_missing"] == int(nan.sum())
    assert lazy["loglik"] == pytest.approx(mem["loglik"], abs=5.0)
    np.testing.assert_allclose(lazy["means"], mem["means"], atol=0.02)


def test_select_on_a_glob(capsys, parts):
    d, _ = parts
    code, out, err = run(capsys, "select", str(d / "part-*.parquet"), "--columns", "v",
                         "--k-max", "3", "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["best_k"] == 2 and obj["n_samples"] == 9_000


def test_csv_files_read_out_of_core_give_the_in_memory_fit(capsys, parts, tmp_path):
    # the same rows as CSV: one file read in blocks with --chunk-size, and a directory of
    # three semicolon files with decimal commas and a blank line (as spreadsheets write)
    from bayesgmm.io import load_dataset

    d, csv = parts
    code, out, err = run(capsys, "em", str(csv), "--k", "2", "--errors", "v_err",
                         "--seed", "0", "--json")
    mem = json.loads(out)
    code, out, err = run(capsys, "em", str(csv), "--k", "2", "--errors", "v_err",
                         "--chunk-size", "2500", "--seed", "0", "--json")
    assert code == 0, err
    lazy = json.loads(out)
    assert "pass " in err  # it went out of core: a line per pass
    assert lazy["n_samples"] == 9_000
    assert lazy["loglik"] == pytest.approx(mem["loglik"], abs=5.0)

    euro = tmp_path / "euro"
    euro.mkdir()
    df = pd.read_csv(csv)
    for i in range(3):
        text = df.iloc[i * 3000:(i + 1) * 3000].to_csv(sep=";", decimal=",", index=False)
        (euro / f"part-{i}.csv").write_text(text + ("\n" if i == 1 else ""))
    X, X_err, names = load_dataset(euro, None, ["v_err"], chunk_size=1000)
    assert names == ["v"] and X.shape == (9000, 1) and X.chunks[0][0] == 1000
    # every value read back exactly, in file order, blocks read from their byte offsets
    np.testing.assert_array_equal(X.compute()[:, 0], df["v"].to_numpy())
    np.testing.assert_array_equal(X_err.compute()[:, 0], df["v_err"].to_numpy())
    code, out, err = run(capsys, "select", str(euro / "part-*.csv"), "--errors", "v_err",
                         "--k-max", "3", "--seed", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["best_k"] == 2


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
