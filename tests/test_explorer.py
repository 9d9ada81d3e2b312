"""The likelihood explorer (seed 000's interactive page): its numbers, driven in a browser.

The page computes in JavaScript; these tests load it in headless Chromium (Debian's
``chromium``, through ``tests/cdp.py``'s DevTools pipe), move its sliders and press its
buttons with synthetic mouse and keyboard input, and check what it shows against
bayesgmm's Python: ``score_samples(...).sum()`` to 1e-9 and one ``GaussianMixtureEM``
iteration to 1e-12.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from cdp import CHROMIUM, Browser

from bayesgmm import ConvergenceWarning, DataError, GaussianMixtureEM, write_explorer
from bayesgmm.datasets import seed000_data

needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"browser test needs {CHROMIUM} (apt-get install chromium)")

# EM's tolerance and seed as the example uses them; the maximum is the same from any seed
SEED = 0


def _errors_data():
    # 3 components, 400 points, errors comparable to the narrowest width: XD is needed
    rng = np.random.default_rng(11)
    z = rng.choice(3, size=400, p=[0.3, 0.5, 0.2])
    truth = np.array([-2.0, 1.0, 4.0])[z] + np.array([0.6, 1.0, 0.4])[z] * rng.standard_normal(400)
    e = rng.uniform(0.2, 0.7, 400)
    return truth + e * rng.standard_normal(400), e


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    x = seed000_data()
    gm = GaussianMixtureEM(2, random_seed=SEED).fit(x)
    path = write_explorer(x, tmp_path_factory.mktemp("plain") / "page.html", gm)
    return {"x": x, "e": None, "gm": gm, "path": path, "K": 2}


@pytest.fixture(scope="module")
def with_errors(tmp_path_factory):
    import xarray as xr

    x, e = _errors_data()
    gm = GaussianMixtureEM(3, random_seed=SEED).fit(x, X_err=e)
    # a posterior with 3 components on these 400 points: hand-built draws around EM's
    rng = np.random.default_rng(3)
    C, S = 2, 300
    w = gm.weights_ * np.exp(0.05 * rng.standard_normal((C, S, 3)))
    post = {"weights": w / w.sum(-1, keepdims=True),
            "means": gm.means_[:, 0] + 0.05 * rng.standard_normal((C, S, 3)),
            "sigmas": np.sqrt(gm.covariances_[:, 0, 0]) * np.exp(0.05 * rng.standard_normal(
                (C, S, 3)))}
    dims = ("chain", "draw", "component")
    dt = xr.DataTree.from_dict({
        "posterior": xr.Dataset({k: (dims, v) for k, v in post.items()},
                                coords={"component": [0, 1, 2]}),
        "observed_data": xr.Dataset({"x": ("obs", x)}),
    })
    path = write_explorer(x, tmp_path_factory.mktemp("err") / "page.html", gm, X_err=e,
                          posterior=dt)
    return {"x": x, "e": e, "gm": gm, "path": path, "K": 3, "post": post}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser test needs {CHROMIUM}")
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def _open(browser, page):
    browser.viewport(1200, 900)
    browser.open(page["path"].as_uri())
    return browser.js("bayesgmmExplorer.state()")


def _py_loglik(page, s):
    gm = GaussianMixtureEM.from_params(s["weights"], s["means"], np.square(s["sigmas"]))
    return float(gm.score_samples(page["x"], X_err=page["e"]).sum())


def _one_em_iteration(page, s):
    init = {"weights": s["weights"], "means": np.reshape(s["means"], (-1, 1)),
            "covariances": np.square(s["sigmas"]).reshape(-1, 1, 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one iteration never converges
        gm = GaussianMixtureEM(page["K"], init=init, max_iter=1, n_init=1).fit(
            page["x"], X_err=page["e"])
    return gm.weights_, gm.means_[:, 0], np.sqrt(gm.covariances_[:, 0, 0])


def _type_into(browser, selector, value):
    """Click a number box, replace its text by typing, and leave it (Tab) as a user does."""
    assert browser.js(f"document.querySelector({json.dumps(selector)}).type") == "number"
    browser.click(selector)
    browser.js(f"document.querySelector({json.dumps(selector)}).select()")
    browser.type_text(repr(float(value)))
    browser.key("Tab", key_code=9)


# ---------------------------------------------------------------------- the page as a file


def test_page_is_one_offline_file(plain):
    text = plain["path"].read_text(encoding="utf-8")
    # no external resource: nothing loaded by src/href, no @import or url()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text)
    assert not re.search(r"@import|url\(", text)
    assert text.count("<script") == 2  # the data (JSON) and the inline script
    data = json.loads(re.search(
        r'<script type="application/json" id="bgmm-explorer-data">(.*?)</script>', text,
        re.S).group(1))
    # the data round-trip exactly (repr floats), so the page scores the same numbers
    assert data["x"] == plain["x"].tolist() and data["k"] == 2
    # the EM maximum in the page is the estimator's, components ordered by mean
    np.testing.assert_array_equal(data["em"]["means"], np.sort(plain["gm"].means_[:, 0]))
    assert [p.name for p in plain["path"].parent.iterdir()] == ["page.html"]  # no temp file


def test_bad_input_is_named(plain, tmp_path):
    x, gm = plain["x"], plain["gm"]
    out = tmp_path / "p.html"
    with pytest.raises(DataError, match="one feature"):
        write_explorer(np.c_[x, x], out, gm)
    with pytest.raises(DataError, match="X_err must have shape"):
        write_explorer(x, out, gm, X_err=np.ones(3))
    with pytest.raises(DataError, match="without measurement errors"):
        write_explorer(x, out, gm, X_err=np.full(x.size, 0.1))
    with pytest.raises(DataError, match="fitted GaussianMixtureEM"):
        write_explorer(x, out, GaussianMixtureEM(2))
    with pytest.raises(DataError, match="sample_weight"):
        w = np.r_[np.full(25, 2.0), np.ones(25)]
        write_explorer(x, out, GaussianMixtureEM(2, random_seed=0).fit(x, sample_weight=w))
    with pytest.raises(DataError, match="folder does not exist"):
        write_explorer(x, tmp_path / "nowhere" / "p.html", gm)
    from helpers import _tree

    with pytest.raises(DataError, match="fitted to 300 points"):
        write_explorer(x, out, gm, posterior=_tree())
    assert not out.exists()


# ---------------------------------------------------------------------- in the browser


@needs_browser
@pytest.mark.parametrize("case", ["plain", "with_errors"])
def test_loglik_equals_score_samples_at_any_slider_position(case, request, browser):
    page = request.getfixturevalue(case)
    s = _open(browser, page)
    assert abs(s["loglik"] - _py_loglik(page, s)) < 1e-9
    rng = np.random.default_rng(5)
    K, x = page["K"], page["x"]
    seen = [s["loglik"]]
    for trial in range(6):
        # type random values into the boxes: the weight last typed is kept, the others
        # rescaled to sum to 1
        k = int(rng.integers(K))
        for kind, value in (("means", rng.uniform(x.min(), x.max())),
                            ("sigmas", rng.uniform(0.1, 2.0) * x.std()),
                            ("weights", rng.uniform(0.05, 0.9))):
            _type_into(browser, f"#bgmm-x-{kind}-{k}-value", value)
            s = browser.js("bayesgmmExplorer.state()")
            assert s[kind][k] == float(value)  # typed exactly, not snapped to the slider
            seen.append(s["loglik"])
        # and move a slider: a click on it, then the keyboard, as a user without a mouse
        browser.click(f"#bgmm-x-means-{(k + 1) % K}")
        seen.append(browser.js("bayesgmmExplorer.state().loglik"))
        for _ in range(trial + 1):
            browser.key("ArrowRight", key_code=39)
            seen.append(browser.js("bayesgmmExplorer.state().loglik"))
        s = browser.js("bayesgmmExplorer.state()")
        assert np.isclose(np.sum(s["weights"]), 1.0, rtol=0, atol=1e-12)
        # 1e-9 absolute on |LL| ~ 1e2-1e3: both sum n terms of the same formula in float64
        assert abs(s["loglik"] - _py_loglik(page, s)) < 1e-9, (trial, s)
        shown = float(browser.js("document.querySelector('.bgmm-x-ll').dataset.value"))
        assert shown == s["loglik"]
        # best seen is the highest log-likelihood of any position so far
        assert s["best"] == max(seen)
    # the keyboard moved the slider: its value is no longer the one typed
    assert browser.js("document.activeElement.type") == "range"


@needs_browser
@pytest.mark.parametrize("case", ["plain", "with_errors"])
def test_em_step_equals_one_iteration_of_the_estimator(case, request, browser):
    page = request.getfixturevalue(case)
    s = _open(browser, page)
    rng = np.random.default_rng(8)
    for step in range(5):
        if step == 3:  # from somewhere else too: a position typed in by hand
            _type_into(browser, "#bgmm-x-sigmas-0-value", 0.3 * page["x"].std())
            _type_into(browser, "#bgmm-x-means-1-value",
                       rng.uniform(*np.quantile(page["x"], [.4, .6])))
            s = browser.js("bayesgmmExplorer.state()")
        browser.click("button[data-action=em]")
        new = browser.js("bayesgmmExplorer.state()")
        w, m, sd = _one_em_iteration(page, s)
        # 1e-12: the same sums in the same units; bayesgmm adds them in standardized
        # units and blocks of 128 points, so the last bits may differ (observed ~1e-15)
        scale = page["x"].std()
        np.testing.assert_allclose(new["weights"], w, rtol=0, atol=1e-12)
        np.testing.assert_allclose(new["means"], m, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(new["sigmas"], sd, rtol=0, atol=1e-12 * scale)
        assert new["loglik"] >= s["loglik"] - 1e-9  # EM never goes down
        assert new["steps"] == step + 1
        s = new


@needs_browser
def test_gradient_is_the_seeds_and_gradient_steps_climb(plain, browser):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "seed000", Path(__file__).resolve().parents[1] / "examples" / "seed000_two_gaussians.py")
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    s = _open(browser, plain)
    g = browser.js("bayesgmmExplorer.gradient(bayesgmmExplorer.state())")
    theta = np.array([s["weights"][0], s["means"][0], s["sigmas"][0], s["means"][1],
                      s["sigmas"][1]])
    ref = seed.gradient(theta, plain["x"])  # the example's, written from the seed's algebra
    page = np.array([g["weights"][0], g["means"][0], g["sigmas"][0], g["means"][1],
                     g["sigmas"][1]])
    np.testing.assert_allclose(page, ref, rtol=1e-10)
    # the box beside each slider shows the same numbers
    shown = browser.js("[...document.querySelectorAll('.bgmm-x-grad')]"
                       ".map(e => Number(e.dataset.value))")
    np.testing.assert_allclose(shown[1:3], page[1:3], rtol=1e-12)

    browser.click("svg.bgmm-x-plot")  # focus in the page, not in a box: keys are commands
    lls = [s["loglik"]]
    for _ in range(25):
        browser.key("g", key_code=71)
        lls.append(browser.js("bayesgmmExplorer.state().loglik"))
    assert np.all(np.diff(lls) > 0), lls  # every gradient step climbs
    assert lls[-1] > lls[0] + 10  # and gets somewhere: from -109.6 towards -76.2


@needs_browser
def test_buttons_maximum_posterior_draw_and_reset(with_errors, plain, browser):
    page = with_errors
    s0 = _open(browser, page)
    gm = page["gm"]
    o = np.argsort(gm.means_[:, 0])
    browser.click("button[data-action=max]")
    s = browser.js("bayesgmmExplorer.state()")
    np.testing.assert_array_equal(s["means"], gm.means_[o, 0])
    np.testing.assert_array_equal(s["weights"], gm.weights_[o])
    assert abs(s["loglik"] - gm.loglik_) < 1e-9
    assert abs(float(browser.js("document.querySelector('.bgmm-x-gap').dataset.value"))) < 1e-9

    # posterior draws: each press shows one of the stored draws, not always the same
    post = page["post"]
    flat = {k: v.reshape(-1, 3) for k, v in post.items()}
    shown = set()
    for _ in range(4):
        browser.click("button[data-action=draw]")
        s = browser.js("bayesgmmExplorer.state()")
        i = int(np.argmin(np.abs(flat["means"] - s["means"]).sum(1)))
        for key in ("weights", "means", "sigmas"):
            np.testing.assert_array_equal(s[key], flat[key][i])
        assert abs(s["loglik"] - _py_loglik(page, s)) < 1e-9
        shown.add(i)
    assert len(shown) >= 3

    browser.key("r", key_code=82)  # reset by key: back to the start, best seen cleared
    s = browser.js("bayesgmmExplorer.state()")
    for key in ("weights", "means", "sigmas"):
        assert s[key] == s0[key]
    assert s["best"] == s["loglik"] and s["steps"] == 0

    _open(browser, plain)  # no posterior given: the button says so and cannot be pressed
    assert browser.js("document.querySelector('button[data-action=draw]').disabled")
    assert "posterior" in browser.js("document.querySelector('button[data-action=draw]').title")


@needs_browser
def test_offline_accessible_and_phone_width(with_errors, browser, tmp_path):
    from PIL import Image

    _open(browser, with_errors)
    # nothing but the page itself is requested, and the script raises nothing
    urls = [e["params"]["request"]["url"] for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"]
    assert all(u.startswith(("file:", "data:")) for u in urls), urls
    assert not [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]

    # keyboard: Tab reaches every button and every slider and box, in page order
    browser.js("document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = []
    for _ in range(60):
        browser.key("Tab", key_code=9)
        reached.append(browser.js("(e => e.dataset.action || e.id || e.type || e.tagName)"
                                  "(document.activeElement)"))
    for action in ("em", "gradient", "max", "draw", "reset"):
        assert action in reached
    for k in range(3):
        for kind in ("weights", "means", "sigmas"):
            assert f"bgmm-x-{kind}-{k}" in reached
    # Enter on a focused button presses it
    browser.js("document.querySelector('button[data-action=max]').focus()")
    browser.key("Enter", key_code=13)
    assert "EM maximum" in browser.js("document.querySelector('.bgmm-x-message').textContent")

    # a phone: nothing wider than the screen, sliders long enough to use
    browser.viewport(375, 800, mobile=True)
    browser.js("window.scrollTo(0, 0)")
    assert browser.js("document.documentElement.scrollWidth") <= 375
    widths = browser.js("[...document.querySelectorAll('input[type=range]')]"
                        ".map(e => e.getBoundingClientRect().width)")
    assert min(widths) > 250
    shot = tmp_path / "phone.png"
    browser.screenshot(shot)
    with Image.open(shot) as im:
        assert im.size[0] == 375
        gray = np.asarray(im.convert("L"), dtype=float)
    assert gray.std() > 20  # not a blank page
    browser.viewport(1200, 900)
    wide = tmp_path / "wide.png"
    browser.screenshot(wide)
    import os
    import shutil

    keep = os.environ.get("BAYESGMM_EXPLORER_SCREENSHOT")  # to look at it yourself
    if keep:
        shutil.copy(wide, keep)
        shutil.copy(shot, str(keep).replace(".png", "_phone.png"))
