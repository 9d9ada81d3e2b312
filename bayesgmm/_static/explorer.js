/* bayesgmm's likelihood explorer: a 1-D Gaussian mixture's log-likelihood, live.
 *
 * Reads its data from the JSON block #bgmm-explorer-data (written by
 * bayesgmm.explorer): the points x (and their measurement-error sds), K, the start,
 * the EM maximum, EM's ridge on the variances (reg, data units), the histogram and,
 * when a posterior is at hand, a thinned set of its draws.
 *
 * The numbers are the package's: the log-likelihood is
 *   LL = sum_i log sum_k w_k N(x_i | mu_k, sigma_k^2 + e_i^2),
 * GaussianMixtureEM.score_samples(x, X_err=e).sum(); "EM step" is one iteration of
 * GaussianMixtureEM (extreme deconvolution with errors) with its M-step's rules
 * (bayesgmm/em/kernels.py mstep_1d): the same sums about the current means, the same
 * ridge, the same guards for an empty component. Everything stays in this page: no
 * network, no libraries.
 */
(function () {
  "use strict";
  var root = document.getElementById("bgmm-explorer");
  if (!root) { return; }
  var D = JSON.parse(document.getElementById("bgmm-explorer-data").textContent);
  var x = D.x, n = x.length, K = D.k;
  var e2 = null;
  if (D.err) {
    e2 = new Float64Array(n);
    for (var i0 = 0; i0 < n; i0++) { e2[i0] = D.err[i0] * D.err[i0]; }
  }
  var LOG2PI = Math.log(2 * Math.PI);
  var EPS = 10 * 2.220446049250313e-16;  // EM's floor on a weight, times the total
  var SVGNS = "http://www.w3.org/2000/svg";

  function $(sel) { return root.querySelector(sel); }
  function copy(p) {
    return { weights: p.weights.slice(), means: p.means.slice(), sigmas: p.sigmas.slice() };
  }

  // ------------------------------------------------------------------ the maths

  // log(w_k N(x_i | mu_k, sigma_k^2 + e_i^2)) for every k of point i, into lp
  function logComponents(p, i, lp, T) {
    for (var k = 0; k < K; k++) {
      var t = p.sigmas[k] * p.sigmas[k] + (e2 ? e2[i] : 0);
      var d = x[i] - p.means[k];
      lp[k] = Math.log(p.weights[k]) - 0.5 * (LOG2PI + Math.log(t) + d * d / t);
      if (T) { T[k] = t; }
    }
  }

  // log sum_k exp(lp_k), and lp_k turned into responsibilities r_k in place when asked
  function logSumExp(lp, toResp) {
    var m = -Infinity, k;
    for (k = 0; k < K; k++) { if (lp[k] > m) { m = lp[k]; } }
    if (m === -Infinity) { return -Infinity; }
    var s = 0;
    for (k = 0; k < K; k++) { s += Math.exp(lp[k] - m); }
    var f = m + Math.log(s);
    if (toResp) { for (k = 0; k < K; k++) { lp[k] = Math.exp(lp[k] - f); } }
    return f;
  }

  function logLik(p) {
    var lp = new Float64Array(K), ll = 0;
    for (var i = 0; i < n; i++) {
      logComponents(p, i, lp, null);
      ll += logSumExp(lp, false);
    }
    return ll;
  }

  // one EM iteration from p: the E-step's sums about the current means, then the M-step
  function emStep(p) {
    var lp = new Float64Array(K), T = new Float64Array(K);
    var nk = new Float64Array(K), s1 = new Float64Array(K), s2 = new Float64Array(K);
    var rg = new Float64Array(K);
    var k, i;
    for (i = 0; i < n; i++) {
      logComponents(p, i, lp, T);
      logSumExp(lp, true);
      for (k = 0; k < K; k++) {
        var r = lp[k], d = x[i] - p.means[k];
        if (e2) {  // the true value's posterior mean b = mu + g (x - mu), g = var / T
          var v = p.sigmas[k] * p.sigmas[k], g = v / T[k], db = g * d;
          nk[k] += r; s1[k] += r * db; s2[k] += r * db * db; rg[k] += r * g;
        } else {
          nk[k] += r; s1[k] += r * d; s2[k] += r * d * d;
        }
      }
    }
    var W = n, q = copy(p), total = 0;
    for (k = 0; k < K; k++) {
      var varK = p.sigmas[k] * p.sigmas[k];
      if (e2) { s2[k] += varK * (nk[k] - rg[k]); }  // plus sum r B, B = var (1 - g)
      var live = nk[k] > 1e-10 * W;
      if (live) {
        var delta = s1[k] / nk[k];
        var nv = s2[k] / nk[k] - delta * delta + D.reg;
        q.means[k] = p.means[k] + delta;
        q.sigmas[k] = nv > 0 ? Math.sqrt(nv) : p.sigmas[k];
      }
      q.weights[k] = Math.max(nk[k], EPS * W) / W;
      total += q.weights[k];
    }
    for (k = 0; k < K; k++) { q.weights[k] /= total; }
    return q;
  }

  // The seed's gradient, in the seed's parameters: the free weights w_1..w_{K-1}
  // (w_K = 1 - their sum; for K = 2 that is t), the means and the sds sigma_k.
  function gradient(p) {
    var lp = new Float64Array(K), T = new Float64Array(K);
    var gw = new Float64Array(K), gm = new Float64Array(K), gs = new Float64Array(K);
    for (var i = 0; i < n; i++) {
      logComponents(p, i, lp, T);
      logSumExp(lp, true);
      for (var k = 0; k < K; k++) {
        var r = lp[k], d = x[i] - p.means[k], t = T[k];
        if (k < K - 1) { gw[k] += r / p.weights[k] - lp[K - 1] / p.weights[K - 1]; }
        gm[k] += r * d / t;
        gs[k] += r * p.sigmas[k] * (d * d / (t * t) - 1 / t);
      }
    }
    return { weights: Array.from(gw.subarray(0, K - 1)), means: Array.from(gm),
             sigmas: Array.from(gs) };
  }

  function flat(p) {  // (w_1..w_{K-1}, mu, sigma) as one vector
    return p.weights.slice(0, K - 1).concat(p.means, p.sigmas);
  }

  function unflat(v) {
    var w = v.slice(0, K - 1), last = 1;
    for (var k = 0; k < K - 1; k++) { last -= w[k]; }
    w.push(last);
    return { weights: w, means: v.slice(K - 1, 2 * K - 1), sigmas: v.slice(2 * K - 1) };
  }

  function valid(p) {
    for (var k = 0; k < K; k++) {
      if (!(p.weights[k] > 0 && p.weights[k] < 1 || K === 1) || !(p.sigmas[k] > 0)
          || !isFinite(p.means[k])) { return false; }
    }
    return true;
  }

  // gradient ascent: theta + eta grad LL, eta halved until LL rises (backtracking), and
  // doubled for the next step after a success
  function gradientStep(p, eta) {
    var g = gradient(p), v = flat(p), gv = flat(g), ll0 = logLik(p), norm = 0, j;
    for (j = 0; j < gv.length; j++) { norm += gv[j] * gv[j]; }
    norm = Math.sqrt(norm);
    if (!(norm > 0)) { return null; }
    if (!(eta > 0)) { eta = 0.05 * D.scale / norm; }
    for (var tries = 0; tries < 60; tries++, eta /= 2) {
      var w = v.slice();
      for (j = 0; j < w.length; j++) { w[j] += eta * gv[j]; }
      var q = unflat(w);
      if (valid(q)) {
        var ll = logLik(q);
        if (ll > ll0) { return { p: q, eta: eta, gain: ll - ll0 }; }
      }
    }
    return null;
  }

  // ------------------------------------------------------------------ state and view

  var state = copy(D.start), best = -Infinity, steps = 0, eta = 0;
  var draws = D.draws, drawIndex = -1, rngState = D.seed >>> 0;
  var ll = NaN;

  function rand() {  // mulberry32: the posterior draws come in a reproducible order
    rngState = (rngState + 0x6D2B79F5) >>> 0;
    var t = rngState;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  function fmt(v, digits) {
    if (!isFinite(v)) { return v > 0 ? "+inf" : (v < 0 ? "-inf" : "n/a"); }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) { return v.toExponential(digits - 1); }
    return v.toFixed(Math.max(0, digits - 1 - Math.floor(Math.log10(a || 1))));
  }

  var rows = [];  // one per parameter: {kind, k, slider, number, grad}
  function buildControls() {
    var grid = $(".bgmm-x-params");
    var kinds = [["weights", "w", "weight"], ["means", "mu", "mean"],
                 ["sigmas", "sigma", "sd"]];
    for (var k = 0; k < K; k++) {
      for (var a = 0; a < kinds.length; a++) {
        var kind = kinds[a][0], id = "bgmm-x-" + kind + "-" + k;
        var name = D.labels[k];
        var row = document.createElement("div");
        row.className = "bgmm-x-row";
        var label = document.createElement("label");
        label.htmlFor = id;
        label.innerHTML = (kind === "weights" ? "w" : (kind === "means" ? "&mu;" : "&sigma;"))
          + "<sub>" + name + "</sub>";
        label.title = kinds[a][2] + " of component " + name;
        label.style.borderLeft = "4px solid " + COLORS[k % COLORS.length];
        label.style.paddingLeft = "4px";
        var slider = document.createElement("input");
        slider.type = "range"; slider.id = id;
        var lim = D.limits[kind];
        slider.min = lim[0]; slider.max = lim[1]; slider.step = lim[2];
        slider.setAttribute("aria-label", kinds[a][2] + " of component " + name);
        slider.dataset.kind = kind; slider.dataset.k = k;
        var num = document.createElement("input");
        num.type = "number"; num.step = "any"; num.id = id + "-value";
        num.setAttribute("aria-label", kinds[a][2] + " of component " + name + ", exact value");
        num.dataset.kind = kind; num.dataset.k = k;
        var grad = document.createElement("output");
        grad.className = "bgmm-x-grad";
        grad.title = "d LL / d " + kinds[a][1] + "_" + name;
        if (K === 1 && kind === "weights") { slider.disabled = true; num.disabled = true; }
        slider.addEventListener("input", onSlider);
        num.addEventListener("change", onNumber);
        row.appendChild(label); row.appendChild(slider); row.appendChild(num);
        row.appendChild(grad);
        grid.appendChild(row);
        rows.push({ kind: kind, k: k, slider: slider, number: num, grad: grad });
      }
    }
  }

  function setWeight(p, k, v) {  // move w_k to v and rescale the others to keep sum 1
    v = Math.min(Math.max(v, 1e-4), 1 - 1e-4);
    var rest = 1 - p.weights[k];
    for (var j = 0; j < K; j++) {
      if (j === k) { continue; }
      p.weights[j] = rest > 0 ? p.weights[j] * (1 - v) / rest : (1 - v) / (K - 1);
    }
    p.weights[k] = v;
  }

  function apply(kind, k, v, how) {
    if (!isFinite(v)) { return false; }
    var p = copy(state);
    if (kind === "weights") {
      if (!(v > 0 && v < 1)) { return false; }
      setWeight(p, k, v);
    } else if (kind === "sigmas") {
      if (!(v > 0)) { return false; }
      p.sigmas[k] = v;
    } else {
      p.means[k] = v;
    }
    show(p, how);
    return true;
  }

  function onSlider(ev) {
    var s = ev.target;
    apply(s.dataset.kind, +s.dataset.k, s.valueAsNumber,
          "moved " + s.getAttribute("aria-label"));
  }

  function onNumber(ev) {
    var s = ev.target;
    if (!apply(s.dataset.kind, +s.dataset.k, parseFloat(s.value),
               "typed " + s.getAttribute("aria-label"))) {
      message("Not a valid " + s.getAttribute("aria-label").split(",")[0]
              + ": weights lie between 0 and 1, sds above 0.");
      render();
    }
  }

  function message(text) { $(".bgmm-x-message").textContent = text; }

  function show(p, how) {
    state = p;
    ll = logLik(state);
    if (ll > best) { best = ll; }
    if (how) { message(how); }
    render();
  }

  function render() {
    var g = gradient(state);
    for (var r = 0; r < rows.length; r++) {
      var row = rows[r], v = state[row.kind][row.k];
      if (document.activeElement !== row.slider) { row.slider.value = v; }
      row.number.value = String(Number(v.toPrecision(8)));  // exact: state()
      var gv = row.kind === "weights" ? (row.k < K - 1 ? g.weights[row.k] : NaN)
        : g[row.kind][row.k];
      row.grad.textContent = isNaN(gv) ? "(1 - others)" : fmt(gv, 3);
      row.grad.dataset.value = String(gv);
    }
    var out = $(".bgmm-x-ll");
    out.textContent = fmt(ll, 7);
    out.dataset.value = String(ll);
    var b = $(".bgmm-x-best");
    b.textContent = fmt(best, 7);
    b.dataset.value = String(best);
    var gap = $(".bgmm-x-gap");
    // within 1e-9 (the agreement the page promises) the maximum is reached
    gap.textContent = Math.abs(D.em_loglik - ll) < 1e-9 ? "0" : fmt(D.em_loglik - ll, 4);
    gap.dataset.value = String(D.em_loglik - ll);
    $(".bgmm-x-steps").textContent = String(steps);
    draw();
  }

  // ------------------------------------------------------------------ the figure

  // the figure is drawn in CSS pixels at its shown width (so its labels keep their size
  // on a phone), redrawn when the window or a folding <details> changes it
  var W = 640, H = 260, M = { l: 8, r: 8, t: 10, b: 26 };
  var COLORS = ["#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
                "#7f7f7f", "#000000"];
  var grid = [], G = 241;
  var errSample = [];
  (function () {
    for (var j = 0; j < G; j++) { grid.push(D.view[0] + (D.view[1] - D.view[0]) * j / (G - 1)); }
    if (e2) {  // up to 200 of the error variances, evenly spaced, for the drawn density
      var m = Math.min(n, 200);
      for (var j2 = 0; j2 < m; j2++) { errSample.push(e2[Math.floor(j2 * n / m)]); }
    }
  })();
  function sx(v) { return M.l + (v - D.view[0]) / (D.view[1] - D.view[0]) * (W - M.l - M.r); }

  function pathOf(ys, ymax) {
    var s = "";
    for (var j = 0; j < G; j++) {
      var y = H - M.b - Math.min(ys[j] / ymax, 1.02) * (H - M.t - M.b);
      s += (j ? "L" : "M") + sx(grid[j]).toFixed(2) + " " + y.toFixed(2);
    }
    return s;
  }

  function normal(v, m, s2) { var d = v - m; return Math.exp(-0.5 * d * d / s2) / Math.sqrt(2 * Math.PI * s2); }

  function draw() {
    var svg = $(".bgmm-x-plot"), j, k;
    var comps = [], total = new Float64Array(G), observed = null;
    for (k = 0; k < K; k++) {
      var c = new Float64Array(G), v = state.sigmas[k] * state.sigmas[k];
      for (j = 0; j < G; j++) { c[j] = state.weights[k] * normal(grid[j], state.means[k], v); total[j] += c[j]; }
      comps.push(c);
    }
    if (e2) {  // what the histogram should follow: each point widened by its error
      observed = new Float64Array(G);
      for (var s = 0; s < errSample.length; s++) {
        for (k = 0; k < K; k++) {
          var vs = state.sigmas[k] * state.sigmas[k] + errSample[s];
          for (j = 0; j < G; j++) { observed[j] += state.weights[k] * normal(grid[j], state.means[k], vs) / errSample.length; }
        }
      }
    }
    // the vertical scale follows the curves (a narrow component rises far above the bars),
    // up to 4 times the histogram's height, beyond which the curves are cut
    var top = 0, shown = observed || total;
    for (j = 0; j < G; j++) { top = Math.max(top, shown[j], total[j]); }
    var ymax = Math.max(D.hist.ymax, Math.min(1.08 * top, 4 * D.hist.ymax));
    drawBars(ymax);
    svg.querySelector(".bgmm-x-total").setAttribute("d", pathOf(observed || total, ymax));
    svg.querySelector(".bgmm-x-intrinsic").setAttribute("d", observed ? pathOf(total, ymax) : "");
    for (k = 0; k < K; k++) {
      svg.querySelectorAll(".bgmm-x-comp")[k].setAttribute("d", pathOf(comps[k], ymax));
    }
  }

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVGNS, name);
    for (var a in attrs) { e.setAttribute(a, attrs[a]); }
    (parent || $(".bgmm-x-plot")).appendChild(e);
    return e;
  }

  function buildFigure() {
    var svg = $(".bgmm-x-plot");
    var shown = Math.round(svg.getBoundingClientRect().width);
    W = shown > 0 ? Math.max(280, Math.min(1200, shown)) : 640;
    H = Math.round(Math.max(200, Math.min(300, 0.42 * W)));
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var h = D.hist, base = H - M.b;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    var bars = el("g", { "class": "bgmm-x-hist" });
    for (var b = 0; b < h.density.length; b++) {
      var x0 = sx(h.edges[b]), x1 = sx(h.edges[b + 1]);
      el("rect", { x: x0.toFixed(2), width: Math.max(x1 - x0 - 0.5, 0.5).toFixed(2) }, bars);
    }
    var rug = "", m = Math.min(n, 5000);
    for (var i = 0; i < m; i++) {
      rug += "M" + sx(x[Math.floor(i * n / m)]).toFixed(1) + " " + (base + 2) + "v6";
    }
    el("path", { "class": "bgmm-x-rug", d: rug });
    el("line", { x1: M.l, x2: W - M.r, y1: base, y2: base, "class": "bgmm-x-axis" });
    for (var t = 0; t < D.ticks.length; t++) {
      var tx = sx(D.ticks[t]);
      el("line", { x1: tx, x2: tx, y1: base, y2: base + 4, "class": "bgmm-x-axis" });
      var lab = el("text", { x: tx, y: H - 4, "text-anchor": "middle" });
      lab.textContent = D.tick_labels[t];
    }
    for (var k = 0; k < K; k++) {
      el("path", { "class": "bgmm-x-comp", stroke: COLORS[k % COLORS.length], d: "" });
    }
    el("path", { "class": "bgmm-x-intrinsic", d: "" });
    el("path", { "class": "bgmm-x-total", d: "" });
  }

  // the bars on the current vertical scale
  function drawBars(ymax) {
    var rects = $(".bgmm-x-hist").children, base = H - M.b, scale = (H - M.t - M.b) / ymax;
    for (var b = 0; b < rects.length; b++) {
      var hh = D.hist.density[b] * scale;
      rects[b].setAttribute("y", (base - hh).toFixed(2));
      rects[b].setAttribute("height", hh.toFixed(2));
    }
  }

  // ------------------------------------------------------------------ the buttons

  var actions = {
    em: function () {
      var before = ll;
      steps += 1;
      show(emStep(state), "");  // show() scores the new state once
      message("EM step " + steps + ": log-likelihood " + (ll >= before ? "up" : "down")
              + " by " + fmt(Math.abs(ll - before), 3) + ".");
    },
    gradient: function () {
      var r = gradientStep(state, eta > 0 ? 2 * eta : 0);
      if (!r) {
        eta = 0;
        message("No gradient step raises the log-likelihood: this is a maximum "
                + "(or the step would leave the allowed values).");
        return;
      }
      eta = r.eta;
      steps += 1;
      show(r.p, "Gradient step " + steps + " (step size " + fmt(r.eta, 3)
           + "): log-likelihood up by " + fmt(r.gain, 3) + ".");
    },
    max: function () {
      show(copy(D.em), "Jumped to the EM maximum (GaussianMixtureEM's fit).");
    },
    draw: function () {
      if (!draws) { return; }
      drawIndex = Math.floor(rand() * draws.weights.length);
      show({ weights: draws.weights[drawIndex].slice(), means: draws.means[drawIndex].slice(),
             sigmas: draws.sigmas[drawIndex].slice() },
           "Posterior draw " + draws.label[drawIndex] + ".");
    },
    reset: function () {
      steps = 0; eta = 0; best = -Infinity;
      show(copy(D.start), "Back to the start; best seen cleared.");
    }
  };
  var keys = { e: "em", g: "gradient", m: "max", p: "draw", r: "reset" };

  function buildButtons() {
    var buttons = root.querySelectorAll("button[data-action]");
    for (var b = 0; b < buttons.length; b++) {
      buttons[b].addEventListener("click", function (ev) {
        actions[ev.currentTarget.dataset.action]();
      });
    }
    if (!draws) {
      var d = $("button[data-action=draw]");
      d.disabled = true;
      d.title = "no posterior at hand: write the page with a fit's draws (posterior=...)";
    }
    // the keys work anywhere on the page while the explorer is shown (in the report it
    // may be folded away), except where a key types text
    document.addEventListener("keydown", function (ev) {
      var t = ev.target, typing = t && (t.isContentEditable || t.tagName === "TEXTAREA"
        || (t.tagName === "INPUT" && t.type !== "range" && t.type !== "button"));
      if (ev.ctrlKey || ev.metaKey || ev.altKey || typing || !root.getClientRects().length) {
        return;
      }
      var a = keys[ev.key];
      if (a && !(a === "draw" && !draws)) { ev.preventDefault(); actions[a](); }
    });
  }

  buildFigure();
  buildControls();
  buildButtons();
  show(copy(D.start), "");
  var pending = false;
  function refit() {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      var w = Math.round($(".bgmm-x-plot").getBoundingClientRect().width);
      if (w > 0 && w !== W) { buildFigure(); draw(); }
    });
  }
  window.addEventListener("resize", refit);
  var fold = root.closest("details");
  if (fold) { fold.addEventListener("toggle", refit); }

  // for scripts and the browser's console: the state in full precision, and the maths
  window.bayesgmmExplorer = {
    state: function () {
      var s = copy(state);
      s.loglik = ll; s.best = best; s.steps = steps; s.draw = drawIndex;
      return s;
    },
    set: function (p) { show(copy(p), "Set from a script."); },
    logLik: logLik, emStep: emStep, gradient: gradient
  };
})();
