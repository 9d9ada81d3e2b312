"""``bayesgmm explore``: the page from a table, K chosen or given, draws from a posterior.nc."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers import _tree

from bayesgmm.cli import main
from bayesgmm.datasets import seed000_data


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _page_data(path):
    text = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'id="bgmm-explorer-data">(.*?)</script>', text, re.S).group(1))


@pytest.fixture
def seed_csv(tmp_path):
    # a semicolon file with decimal commas, as a European spreadsheet writes it
    p = tmp_path / "seed000.csv"
    pd.DataFrame({"x": seed000_data()}).to_csv(p, sep=";", decimal=",", index=False)
    return p


def test_explore_auto_k_is_bics_choice(capsys, seed_csv, tmp_path):
    page = tmp_path / "page.html"
    code, out, err = run(capsys, "explore", seed_csv, "--out", page, "--seed", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    # BIC picks 2 on seed 000 (examples/seed000_two_gaussians.py), not the first candidate
    assert obj["n_components"] == 2 and obj["k_reason"].startswith("BIC")
    data = _page_data(page)
    assert data["k"] == 2 and data["x"] == seed000_data().tolist() and data["draws"] is None
    assert abs(data["em_loglik"] - obj["loglik"]) < 1e-9


def test_explore_with_errors_and_a_posterior(capsys, tmp_path):
    dt = _tree(C=2, S=100, n=300)
    x = dt["observed_data"]["x"].values
    csv = tmp_path / "d.csv"
    pd.DataFrame({"v": x, "v_err": np.full(x.size, 0.1)}).to_csv(csv, index=False)
    nc = tmp_path / "posterior.nc"
    dt.to_netcdf(nc, engine="h5netcdf")
    page = tmp_path / "page.html"
    code, out, err = run(capsys, "explore", csv, "--column", "v", "--errors", "v_err",
                         "--posterior", nc, "--out", page, "--seed", "0")
    assert code == 0, err
    assert "K = 2 (the posterior's)" in out and f"page: {page}" in out
    data = _page_data(page)
    assert data["err"] == [0.1] * 300
    assert len(data["draws"]["means"]) == 200  # all 2 x 100 draws (under the cap of 500)
    np.testing.assert_array_equal(data["draws"]["means"][0],
                                  dt["posterior"]["means"].values[0, 0])

    # the posterior's K and data must be this page's
    code, _, err = run(capsys, "explore", csv, "--column", "v", "--posterior", nc,
                       "--k", "3", "--out", page)
    assert code == 2 and "has 2 components" in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "other.csv"
    pd.DataFrame({"v": x[::-1]}).to_csv(other, index=False)
    code, _, err = run(capsys, "explore", other, "--posterior", nc, "--out", page)
    assert code == 2 and "fitted to other data" in err


@pytest.mark.parametrize("argv, message", [
    (["--column", "nope"], "nope"),
    (["--k", "0"], "positive integer"),
    (["--k", "60"], "exceeds the number of rows"),
    (["--out", "{tmp}/missing/page.html"], "does not exist"),
    (["--out", "{tmp}"], "is a directory"),
])
def test_explore_bad_input_is_one_line(capsys, seed_csv, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "page.html")]
    code, out, err = run(capsys, "explore", seed_csv, *argv)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "page.html").exists()


def test_explore_a_posterior_nc_alone(capsys, tmp_path):
    # a fit's posterior.nc brings its data, EM estimate and draws: no table needed
    dt = _tree(C=2, S=50, n=120)
    nc = tmp_path / "posterior.nc"
    dt.to_netcdf(nc, engine="h5netcdf")
    page = tmp_path / "page.html"
    code, out, err = run(capsys, "explore", nc, "--out", page)
    assert code == 0, err
    data = _page_data(page)
    assert data["x"] == dt["observed_data"]["x"].values.tolist() and data["err"] is None
    np.testing.assert_array_equal(data["em"]["means"], np.sort(dt["em_estimate"]["means"]))
    assert len(data["draws"]["weights"]) == 100
    code, _, err = run(capsys, "explore", nc, "--column", "x", "--out", page)
    assert code == 2 and "drop --column" in err
