"""The figures and the self-contained HTML report, on one real small fit."""

import base64
import io
import os
import re
import shutil
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import bayesgmm
from bayesgmm.datasets import simulate

CHROMIUM = "/usr/bin/chromium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim():
    # two well-separated components with heteroscedastic errors: the deconvolved panel shows
    return simulate(300, [0.4, 0.6], [-2.0, 2.0], [0.8, 1.0], error_range=(0.2, 0.6),
                    random_seed=0)


@pytest.fixture(scope="module")
def dt(sim):
    with warnings.catch_warnings():
        # 2 x 200 draws is too few for the ESS checks; the report must say so, not fail
        warnings.simplefilter("ignore", bayesgmm.SamplingWarning)
        return bayesgmm.fit(sim.x, 2, X_err=sim.x_err, draws=200, tune=300, chains=2,
                            progressbar=False, random_seed=1)


@pytest.fixture(scope="module")
def selection(sim):
    return bayesgmm.select_n_components(sim.x, range(1, 5), X_err=sim.x_err, random_seed=0)


@pytest.fixture(scope="module")
def report(dt, selection, tmp_path_factory):
    from bayesgmm.report import write_report

    path = tmp_path_factory.mktemp("report") / "fit.html"
    out = write_report(dt, path, selection=selection, title="Two groups <&> \"test\"")
    assert out == path.resolve()
    return out


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text):
    p = _Tags()
    p.feed(text)
    return p.tags


# ---------------------------------------------------------------------- the HTML file


def test_report_is_self_contained(report):
    from PIL import Image

    text = report.read_text(encoding="utf-8")
    tags = _tags(text)
    for tag, attrs in tags:
        for key in ("src", "href", "srcset", "poster", "data"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), (tag, key)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text)
    assert not [t for t, _ in tags if t in ("link", "iframe")]
    # the one script is the likelihood explorer's, inline (its data and its code), folded
    # away in a closed <details>
    scripts = [a for t, a in tags if t == "script"]
    assert len(scripts) == 2 and not [a for a in scripts if "src" in a]
    assert [a.get("type") for a in scripts] == ["application/json", None]
    folds = [a for t, a in tags if t == "details" and a.get("class") == "explorer"]
    assert len(folds) == 1 and "open" not in folds[0]
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert len(imgs) == 6  # density, membership, selection, rank, trace, ppc
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw.startswith(PNG_MAGIC)
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
    # no temporary file left beside the report
    assert [p.name for p in report.parent.iterdir()] == [report.name]


def test_verdict_comes_first_and_text_is_escaped(report, dt):
    import html

    from bayesgmm import diagnostics

    text = report.read_text(encoding="utf-8")
    first_img = text.index("<img")
    assert text.index('id="verdict"') < first_img
    if hasattr(diagnostics, "diagnose"):
        verdict = diagnostics.diagnose(dt).verdict
        assert verdict and text.index(html.escape(verdict)) < first_img
    assert "<h1>Two groups &lt;&amp;&gt; &quot;test&quot;</h1>" in text
    order = [text.index(h) for h in ("Parameters (data units)", "Checks", "Fitted density",
                                     "Class probabilities", "BIC and AIC", "rank plots",
                                     "Posterior predictive check")]
    assert order == sorted(order)


def test_report_says_why_the_sampler_ran_twice():
    import json

    from bayesgmm.report import _runs_sentence

    runs = [{"target_accept": 0.8, "tune": 1000, "divergences": 12, "max_rhat": 1.0234,
             "min_ess_bulk": 180.4, "failed": ["divergences", "max_rhat", "min_ess_bulk"]},
            {"target_accept": 0.99, "tune": 2000, "divergences": 0, "max_rhat": 1.004,
             "min_ess_bulk": 812.0}]
    text = _runs_sentence(json.dumps(runs))
    assert "12 divergent transitions" in text and "max R-hat 1.023" in text
    assert "min bulk ESS 180" in text and "0.99 with 2000 tuning steps" in text
    # only what failed is given as the reason
    runs[0].update(divergences=0, max_rhat=1.004, failed=["min_ess_bulk"])
    text = _runs_sentence(json.dumps(runs))
    assert "min bulk ESS 180" in text and "R-hat" not in text and "divergent" not in text
    assert _runs_sentence(json.dumps(runs[:1])) == ""  # one run: nothing to explain
    assert _runs_sentence("not json") == ""
    # the rerun rule's last step: both NUTS runs failed R-hat, SMC's draws are kept
    runs[0].update(max_rhat=1.09, failed=["max_rhat"])
    runs[1].update(target_accept=0.8, max_rhat=1.052, failed=["max_rhat"])
    text = _runs_sentence(json.dumps([*runs, {"sampler": "smc", "log_evidence": -1.0}]))
    assert "max R-hat 1.090" in text and "2000 tuning steps still had max R-hat 1.052" in text
    assert "sampler='smc'" in text


def test_diagnosis_object_is_used(dt, tmp_path):
    import pandas as pd

    from bayesgmm.report import write_report

    class Diag:
        ok = False
        verdict = "Nope: <b>bold</b> claims"
        checks = pd.DataFrame({"name": ["x"], "ok": [False], "value": [1.0],
                               "threshold": [0.5], "message": ["too big"]})
        table = pd.DataFrame({"mean": [1.0]}, index=pd.Index(["means[0]"], name="parameter"))

    loo = pd.DataFrame({"rank": [0, 1], "elpd": [-10.0, -12.5]},
                       index=pd.Index(["k2", "k1"]))
    text = write_report(dt, tmp_path / "r.html", diagnosis=Diag(),
                        loo_table=loo).read_text(encoding="utf-8")
    assert "Nope: &lt;b&gt;bold&lt;/b&gt; claims" in text
    assert 'class="verdict fail"' in text
    assert "LOO comparison" in text and "k1" in text
    assert "BIC and AIC" not in text


def test_write_is_atomic(dt, tmp_path, monkeypatch):
    from bayesgmm import report as report_mod

    target = tmp_path / "r.html"
    target.write_text("old report")

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_mod.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        report_mod.write_report(dt, target, diagnosis=_ok_diagnosis())
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def _ok_diagnosis():
    class Diag:
        ok = True
        verdict = "fine"
        checks = None
        table = None

    return Diag()


# ---------------------------------------------------------------------- figures


def test_figures_have_expected_axes(dt, selection):
    from matplotlib.figure import Figure

    from bayesgmm import plots

    fig = plots.plot_density(dt)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # observed and deconvolved: the fit has measurement errors
    assert "True values" in fig.axes[1].get_title()
    fig = plots.plot_membership(dt)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "p(component | x)"
    fig = plots.plot_selection(selection)
    assert len(fig.axes) == 1
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "BIC" in labels and "AIC" in labels
    assert any(lab.startswith("best by BIC: K = 2") for lab in labels)
    fig = plots.plot_trace(dt)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert isinstance(fig, Figure) and len(visible) == 6  # 3 parameters x 2 components
    fig = plots.plot_trace(dt, kind="trace")
    assert isinstance(fig, Figure) and len(fig.axes) == 6  # 3 parameters x (trace, dist)
    fig = plots.plot_ppc(dt, num_samples=20)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(bayesgmm.DataError, match="kind must be 'rank' or 'trace'"):
        plots.plot_trace(dt, kind="forest")


def test_plot_data_functions(dt, selection):
    from bayesgmm import plots

    d = plots.density_data(dt, n_grid=50)
    grid = d["observed"]["x"].values
    # both densities integrate to ~1 over data range +- 8% (tails outside: a few percent)
    for key in ("observed", "true"):
        area = np.trapezoid(d[key]["mean"].values, grid)
        assert 0.9 < area < 1.01, (key, area)
    assert np.isclose(np.sum(d["hist"] * np.diff(d["edges"])), 1.0)
    m = plots.membership_data(dt, n_grid=40)
    np.testing.assert_allclose(m["stack"].isel(component=-1).values, 1.0, atol=1e-12)
    s = plots.selection_data(selection)
    assert list(s["k"]) == [1, 2, 3, 4]
    assert int(s.loc[s["best_bic"], "k"].iloc[0]) == 2
    with pytest.raises(bayesgmm.DataError, match="columns k, bic, aic"):
        plots.selection_data([1, 2])


def test_plots_import_does_not_import_matplotlib():
    code = ("import sys, bayesgmm, bayesgmm.plots, bayesgmm.report; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- browser


_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var v = document.getElementById("verdict").getBoundingClientRect();
  document.title = "imgs=" + ok + "/" + imgs.length + " verdict=" + Math.round(v.width)
    + "x" + Math.round(v.height) + " top=" + Math.round(v.top);
});
</script>"""


def _chromium(tmp_path, *args):
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"headless browser test needs {CHROMIUM} (apt-get install chromium)")
def test_report_renders_in_chromium(report, tmp_path):
    from PIL import Image

    page = tmp_path / "probe.html"
    text = report.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    out = _chromium(tmp_path, "--window-size=1200,3000", "--virtual-time-budget=5000",
                    "--dump-dom", page.as_uri()).stdout
    title = re.search(r"<title>(.*?)</title>", out, re.S).group(1)
    m = re.fullmatch(r"imgs=(\d+)/(\d+) verdict=(\d+)x(\d+) top=(-?\d+)", title.strip())
    assert m, title
    loaded, total, w, h, top = map(int, m.groups())
    assert total == 6 and loaded == total  # every embedded PNG decoded
    assert w > 300 and h > 20 and 0 <= top < 300  # verdict visible near the top

    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1200,3000", "--hide-scrollbars",
              f"--screenshot={shot}", report.as_uri())
    with Image.open(shot) as im:
        assert im.size == (1200, 3000)
        gray = np.asarray(im.convert("L"), dtype=float)
    assert gray.std() > 20  # not a blank page
    keep = os.environ.get("BAYESGMM_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"headless browser test needs {CHROMIUM} (apt-get install chromium)")
def test_report_explorer_opens_and_scores_the_fit(report, dt, sim, tmp_path):
    # the folded explorer opens by a click on its summary, and scores the report's data
    # with its errors: the EM maximum's log-likelihood is the fit's EM estimate's
    from cdp import Browser

    b = Browser(tmp_path / "profile")
    try:
        b.open(report.as_uri())
        assert not b.js("document.querySelector('details.explorer').open")
        b.click("details.explorer > summary")
        assert b.js("document.querySelector('details.explorer').open")
        b.click("button[data-action=max]")
        s = b.js("bayesgmmExplorer.state()")
        em = dt["em_estimate"]
        np.testing.assert_allclose(s["means"], np.sort(em["means"].values), rtol=1e-14)
        gm = bayesgmm.GaussianMixtureEM.from_params(s["weights"], s["means"],
                                                    np.square(s["sigmas"]))
        assert abs(s["loglik"] - gm.score_samples(sim.x, X_err=sim.x_err).sum()) < 1e-9
        # the fit's draws are there to show
        assert not b.js("document.querySelector('button[data-action=draw]').disabled")
        b.click("button[data-action=draw]")
        s = b.js("bayesgmmExplorer.state()")
        post = dt["posterior"]
        i = np.argmin(np.abs(post["means"].values.reshape(-1, 2) - s["means"]).sum(1))
        np.testing.assert_array_equal(post["means"].values.reshape(-1, 2)[i], s["means"])
        assert not [e for e in b.events if e.get("method") == "Runtime.exceptionThrown"]
    finally:
        b.close()


def test_write_explorer_takes_the_fit_result(dt, sim, tmp_path):
    # write_explorer(dt, path): the fit's data and errors, its EM estimate, its draws
    import json

    from bayesgmm import DataError, write_explorer

    page = write_explorer(dt, tmp_path / "page.html")
    text = page.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="bgmm-explorer-data">(.*?)</script>', text, re.S).group(1))
    assert data["x"] == sim.x.tolist() and data["err"] == sim.x_err.tolist()
    np.testing.assert_array_equal(data["em"]["means"], np.sort(dt["em_estimate"]["means"]))
    assert len(data["draws"]["means"]) == 400  # 2 chains x 200 draws, all kept
    with pytest.raises(DataError, match="brings its own data"):
        write_explorer(dt, tmp_path / "p.html", X_err=sim.x_err)
