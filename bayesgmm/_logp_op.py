"""Fused PyTensor Ops for the marginal log-likelihood of a 1-D Gaussian mixture.

With known measurement variance ``e2[i]`` the log-likelihood of point ``i`` is::

    log p(x_i) = logsumexp_k [log w_k + log Normal(x_i | mu_k, sqrt(sigma_k**2 + e2_i))]

As a PyTensor graph this materialises several ``(n, K)`` arrays, and the gradient
adds more passes over them. Here one compiled loop over the points computes the
log-likelihood *and* its gradient with respect to ``w``, ``mu`` and ``sigma``,
holding only length-``K`` scratch arrays.

- ``mixture_logp_total`` gives the scalar ``sum_i log p(x_i)``. Its Op has four
  outputs (the value and the three gradients), and the pullback of the value is
  ``g * gradients`` of the *same* node, so a compiled ``[logp, grad]`` runs the
  loop once.
- ``mixture_logp_pointwise`` gives the vector of ``log p(x_i)``, for
  ``pm.CustomDist(logp=...)`` and so for ``pm.compute_log_likelihood``. Graph
  rewrites turn ``sum(pointwise)`` and the pullback of that sum into the fused
  total, so a model written with the pointwise form samples as fast.

The weights enter as ``w`` itself, the value a simplex-transformed ``pm.Dirichlet``
gives. The kernel takes ``log w_k`` once per call and forms
``d logp / d w_k = sum_i r_ik / w_k`` once per component at the end.

Both Ops have numba implementations registered with PyTensor, so PyTensor's numba
linker and nutpie's numba backend run them in nopython mode. Their numba cache key
includes a hash of this file, so editing the kernels invalidates the cache.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from numba import njit
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from pytensor.tensor.basic import Alloc
from pytensor.tensor.math import Sum
from pytensor.tensor.rewriting.basic import register_canonicalize, register_specialize

__all__ = ["mixture_logp_pointwise", "mixture_logp_total"]

_HALF_LOG2PI = 0.5 * math.log(2.0 * math.pi)
_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}
# Salt for PyTensor's numba cache key: changes whenever this file changes.
_CACHE_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12], 16)

# --------------------------------------------------------------------------- kernels
#
# Point i, component k: v = sigma_k**2 + e2_i, rs = v**-1/2, d = x_i - mu_k,
# z2 = d**2 / v. The terms w_k rs exp(-z2 / 2) are scaled by exp(-M) with
# M = max_k (log w_k - z2 / 2): the largest exponent is 0 (its exp is skipped) and the
# sum S lies in [min_k rs, K max_k rs], so nothing under- or overflows and there is no
# log per (i, k). Then log p(x_i) = log S + M - log(2 pi) / 2, and with r_k = term_k / S:
# d/dmu_k = r_k d / v, d/dsigma_k = r_k sigma_k (z2 - 1) / v, d/dw_k = r_k / w_k.
# ``e2`` is 1-D of length n, or of length 1 for one variance shared by all points
# ("hom": then rs and 1/v are computed once per call).


@njit(**_OPTS)
def _setup(e2, w, mu, sigma, n):
    """Check shapes; return log w, sigma**2 and the rs, 1/v arrays (filled when hom)."""
    K = mu.shape[0]
    if w.shape[0] != K or sigma.shape[0] != K:
        raise ValueError("w, mu and sigma must have the same length")
    if e2.shape[0] != n and e2.shape[0] != 1:
        raise ValueError("e2 must have length 1 or the length of x")
    s2 = sigma * sigma
    rs = 1.0 / np.sqrt(s2 + e2[0])
    return np.log(w), s2, rs, rs * rs


@njit(inline="always", **_OPTS)
def _point(xi, ei, hom, logw, mu, s2, rs, iv, di, z2, r):
    """``log p(x_i) + log(2 pi) / 2``; fills di = d / v, z2 and r (responsibilities).

    When ``hom`` is false, ``rs`` and ``iv`` are overwritten with this point's values.
    """
    K = mu.shape[0]
    m = -np.inf
    kmax = 0
    for k in range(K):
        if not hom:
            rk = 1.0 / math.sqrt(s2[k] + ei)
            rs[k] = rk
            iv[k] = rk * rk
        d = xi - mu[k]
        dk = d * iv[k]
        di[k] = dk
        z = d * dk
        z2[k] = z
        a = logw[k] - 0.5 * z
        if a > m:
            m = a
            kmax = k
    s = 0.0
    for k in range(K):
        t = rs[k]
        if k != kmax:
            t *= math.exp(logw[k] - 0.5 * z2[k] - m)
        r[k] = t
        s += t
    inv = 1.0 / s
    for k in range(K):
        r[k] *= inv
    return math.log(s) + m


@njit(**_OPTS)
def _fused(x, e2, w, mu, sigma, g):
    """Return (sum_i g_i log p(x_i), d/dw, d/dmu, d/dsigma); empty ``g`` means all ones."""
    n = x.shape[0]
    K = mu.shape[0]
    logw, s2, rs, iv = _setup(e2, w, mu, sigma, n)
    hom = e2.shape[0] == 1
    weighted = g.shape[0] > 0
    if weighted and g.shape[0] != n:
        raise ValueError("the cotangent must have the length of x")
    di = np.empty(K)
    z2 = np.empty(K)
    r = np.empty(K)
    total = 0.0
    gsum = 0.0
    rsum = np.zeros(K)
    dmu = np.zeros(K)
    dsig = np.zeros(K)
    for i in range(n):
        lse = _point(x[i], e2[i if not hom else 0], hom, logw, mu, s2, rs, iv, di, z2, r)
        gi = g[i] if weighted else 1.0
        total += gi * lse
        gsum += gi
        for k in range(K):
            rk = gi * r[k]
            rsum[k] += rk
            dmu[k] += rk * di[k]
            dsig[k] += rk * (z2[k] - 1.0) * iv[k]
    dw = np.empty(K)
    for k in range(K):
        dsig[k] *= sigma[k]
        dw[k] = rsum[k] / w[k] if w[k] > 0.0 else _dw_empty(x, e2, w, mu, sigma, g, k)
    return total - _HALF_LOG2PI * gsum, dw, dmu, dsig


@njit(**_OPTS)
def _dw_empty(x, e2, w, mu, sigma, g, j):
    """d/dw_j for a component with w_j == 0, where r_ij / w_j is 0 / 0 (a second pass)."""
    n = x.shape[0]
    K = mu.shape[0]
    logw, s2, rs, iv = _setup(e2, w, mu, sigma, n)
    hom = e2.shape[0] == 1
    di = np.empty(K)
    z2 = np.empty(K)
    r = np.empty(K)
    acc = 0.0
    for i in range(n):
        lse = _point(x[i], e2[i if not hom else 0], hom, logw, mu, s2, rs, iv, di, z2, r)
        gi = g[i] if g.shape[0] > 0 else 1.0
        acc += gi * rs[j] * math.exp(-0.5 * z2[j] - lse)
    return acc


@njit(**_OPTS)
def _pointwise(x, e2, w, mu, sigma):
    """Return the vector of log p(x_i)."""
    n = x.shape[0]
    K = mu.shape[0]
    logw, s2, rs, iv = _setup(e2, w, mu, sigma, n)
    hom = e2.shape[0] == 1
    di = np.empty(K)
    z2 = np.empty(K)
    r = np.empty(K)
    out = np.empty(n)
    for i in range(n):
        lse = _point(x[i], e2[i if not hom else 0], hom, logw, mu, s2, rs, iv, di, z2, r)
        out[i] = lse - _HALF_LOG2PI
    return out


@njit(**_OPTS)
def _total_impl(x, e2, w, mu, sigma):
    total, dw, dmu, dsig = _fused(x, np.atleast_1d(e2), w, mu, sigma, np.empty(0))
    return np.asarray(total), dw, dmu, dsig


@njit(**_OPTS)
def _vjp_impl(x, e2, w, mu, sigma, g):
    _, dw, dmu, dsig = _fused(x, np.atleast_1d(e2), w, mu, sigma, g)
    return dw, dmu, dsig


@njit(**_OPTS)
def _pointwise_impl(x, e2, w, mu, sigma):
    return _pointwise(x, np.atleast_1d(e2), w, mu, sigma)


# --------------------------------------------------------------------------- Ops


def _as_inputs(x, e2, w, mu, sigma):
    """Convert to float64 tensors and check ranks."""
    ins = [pt.as_tensor_variable(v) for v in (x, e2, w, mu, sigma)]
    ins = [v if v.dtype == "float64" else pt.cast(v, "float64") for v in ins]
    names = ("x", "e2", "w", "mu", "sigma")
    for name, v, ok in zip(names, ins, [(1,), (0, 1), (1,), (1,), (1,)], strict=True):
        if v.ndim not in ok:
            raise TypeError(f"{name} must have ndim in {ok}, got a {v.ndim}-d tensor")
    return ins


def _vector_like(v):
    return pt.tensor(dtype="float64", shape=v.type.shape)


class _NoHigherOrder:
    """Mixin: second derivatives are not implemented."""

    def _null_grads(self, inputs, comment):
        return [grad_not_implemented(self, i, v, comment) for i, v in enumerate(inputs)]


class MixtureLogpTotal(_NoHigherOrder, Op):
    """Sum of mixture log-densities, with its gradient as extra outputs.

    Inputs ``(x, e2, w, mu, sigma)``; outputs ``(logp, dlogp/dw, dlogp/dmu,
    dlogp/dsigma)``. Use :func:`mixture_logp_total` rather than this class.
    """

    __props__ = ()

    def make_node(self, x, e2, w, mu, sigma):  # noqa: D102
        ins = _as_inputs(x, e2, w, mu, sigma)
        outs = [pt.dscalar(), _vector_like(ins[2]), _vector_like(ins[3]), _vector_like(ins[4])]
        return Apply(self, ins, outs)

    def perform(self, node, inputs, output_storage):  # noqa: D102
        for store, value in zip(output_storage, _total_impl(*inputs), strict=True):
            store[0] = np.asarray(value)

    def infer_shape(self, fgraph, node, input_shapes):  # noqa: D102
        return [(), input_shapes[2], input_shapes[3], input_shapes[4]]

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            return self._null_grads(inputs, "Second derivatives are not implemented.")
        g = cotangents[0]
        x, e2 = inputs[:2]
        return [
            grad_not_implemented(self, 0, x, "x is data."),
            grad_not_implemented(self, 1, e2, "e2 is data."),
            *(g * out for out in outputs[1:]),
        ]


class MixtureLogpPointwise(_NoHigherOrder, Op):
    """Vector of mixture log-densities ``log p(x_i)``.

    Inputs ``(x, e2, w, mu, sigma)``. Use :func:`mixture_logp_pointwise` rather
    than this class.
    """

    __props__ = ()

    def make_node(self, x, e2, w, mu, sigma):  # noqa: D102
        ins = _as_inputs(x, e2, w, mu, sigma)
        return Apply(self, ins, [_vector_like(ins[0])])

    def perform(self, node, inputs, output_storage):  # noqa: D102
        output_storage[0][0] = _pointwise_impl(*inputs)

    def infer_shape(self, fgraph, node, input_shapes):  # noqa: D102
        return [input_shapes[0]]

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        x, e2 = inputs[:2]
        return [
            grad_not_implemented(self, 0, x, "x is data."),
            grad_not_implemented(self, 1, e2, "e2 is data."),
            *MixtureLogpVJP()(*inputs, cotangents[0]),
        ]


class MixtureLogpVJP(_NoHigherOrder, Op):
    """Pullback of :class:`MixtureLogpPointwise` for a cotangent ``g`` of shape (n,).

    Inputs ``(x, e2, w, mu, sigma, g)``; outputs the gradients of
    ``sum_i g_i log p(x_i)`` with respect to ``w``, ``mu`` and ``sigma``.
    """

    __props__ = ()

    def make_node(self, x, e2, w, mu, sigma, g):  # noqa: D102
        ins = _as_inputs(x, e2, w, mu, sigma)
        g = pt.as_tensor_variable(g).astype("float64")
        return Apply(self, [*ins, g], [_vector_like(v) for v in ins[2:]])

    def perform(self, node, inputs, output_storage):  # noqa: D102
        for store, value in zip(output_storage, _vjp_impl(*inputs), strict=True):
            store[0] = value

    def infer_shape(self, fgraph, node, input_shapes):  # noqa: D102
        return list(input_shapes[2:5])

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        return self._null_grads(inputs, "Second derivatives are not implemented.")


@register_funcify_default_op_cache_key(MixtureLogpTotal)
def _numba_total(op, node, **kwargs):
    return _total_impl, _CACHE_VERSION


@register_funcify_default_op_cache_key(MixtureLogpPointwise)
def _numba_pointwise(op, node, **kwargs):
    return _pointwise_impl, _CACHE_VERSION


@register_funcify_default_op_cache_key(MixtureLogpVJP)
def _numba_vjp(op, node, **kwargs):
    return _vjp_impl, _CACHE_VERSION


# --------------------------------------------------------------------------- rewrites


@register_canonicalize
@register_specialize
@node_rewriter([Sum])
def local_sum_of_pointwise_to_total(fgraph, node):
    """``sum(mixture_logp_pointwise(...))`` -> ``mixture_logp_total(...)``."""
    (inp,) = node.inputs
    if inp.owner is None or not isinstance(inp.owner.op, MixtureLogpPointwise):
        return None
    return [MixtureLogpTotal()(*inp.owner.inputs)[0].astype(node.outputs[0].dtype)]


def _scalar_fill(g):
    """The scalar ``c`` if ``g`` is known to be ``c`` broadcast to a vector, else None."""
    if isinstance(g, Constant):
        data = np.asarray(g.data)
        if data.size and np.all(data == data.flat[0]):
            return pt.as_tensor_variable(np.float64(data.flat[0]))
        return None
    if g.owner is not None and isinstance(g.owner.op, Alloc):
        value = g.owner.inputs[0]
        if all(value.type.broadcastable):
            return value.squeeze() if value.ndim else value
    return None


@register_canonicalize
@register_specialize
@node_rewriter([MixtureLogpVJP])
def local_uniform_vjp_to_total(fgraph, node):
    """The pullback of ``sum(pointwise)`` (a constant cotangent) reuses the fused total."""
    c = _scalar_fill(node.inputs[-1])
    if c is None:
        return None
    outs = MixtureLogpTotal()(*node.inputs[:-1])
    return [c * out for out in outs[1:]]


# --------------------------------------------------------------------------- public


def _drop_leading(v, name):
    """Squeeze the size-1 leading axes ``pm.CustomDist`` adds to core parameters."""
    v = pt.as_tensor_variable(v)
    if v.ndim > 1:
        if not all(v.type.broadcastable[:-1]):
            raise ValueError(
                f"{name} must be 1-D (one value per component); got {v.ndim}-d with "
                f"static shape {v.type.shape}. Batched mixtures are not supported."
            )
        v = v.squeeze(axis=tuple(range(v.ndim - 1)))
    return v


def _broadcast_args(x, e2, w, mu, sigma):
    e2 = pt.constant(0.0) if e2 is None else e2
    w, mu, sigma = (_drop_leading(v, n) for v, n in ((w, "w"), (mu, "mu"), (sigma, "sigma")))
    if sigma.ndim == 0:
        sigma = pt.broadcast_to(sigma, mu.shape)
    return x, e2, w, mu, sigma


def mixture_logp_total(x, e2, w, mu, sigma) -> pt.TensorVariable:
    """Total log-likelihood of a 1-D Gaussian mixture with known per-point errors.

    Computes ``sum_i logsumexp_k [log w_k + log N(x_i | mu_k, sqrt(sigma_k**2 + e2_i))]``
    and, in the same compiled pass, its gradient, which PyTensor reuses when the
    graph is differentiated.

    Parameters
    ----------
    x : array-like or TensorVariable of shape (n_samples,)
        Data. Not differentiable.
    e2 : array-like or TensorVariable of shape (n_samples,) or (), or None
        Known measurement variances (squared errors), ``>= 0``. A scalar is shared
        by all points; None means no errors. Not differentiable.
    w : TensorVariable of shape (n_components,)
        Mixture weights on the simplex (e.g. a ``pm.Dirichlet``), not log weights.
    mu : TensorVariable of shape (n_components,)
        Component means.
    sigma : TensorVariable of shape (n_components,) or ()
        Component standard deviations, ``> 0``; a scalar is shared.

    Returns
    -------
    TensorVariable
        Scalar log-likelihood.
    """
    return MixtureLogpTotal()(*_broadcast_args(x, e2, w, mu, sigma))[0]


def mixture_logp_pointwise(x, e2, w, mu, sigma) -> pt.TensorVariable:
    """Per-point log-likelihood of a 1-D Gaussian mixture with known per-point errors.

    Use it as the ``logp`` of a ``pm.CustomDist`` so that ``pm.compute_log_likelihood``
    gives the pointwise values. When summed (as in a model's joint log-density),
    graph rewrites replace it and its gradient by the fused :func:`mixture_logp_total`.

    Parameters
    ----------
    x : array-like or TensorVariable of shape (n_samples,)
        Data. Not differentiable.
    e2 : array-like or TensorVariable of shape (n_samples,) or (), or None
        Known measurement variances (squared errors), ``>= 0``. A scalar is shared
        by all points; None means no errors. Not differentiable.
    w : TensorVariable of shape (n_components,)
        Mixture weights on the simplex, not log weights.
    mu : TensorVariable of shape (n_components,)
        Component means.
    sigma : TensorVariable of shape (n_components,) or ()
        Component standard deviations, ``> 0``; a scalar is shared.

    Returns
    -------
    TensorVariable of shape (n_samples,)
        ``log p(x_i)`` for each point.
    """
    return MixtureLogpPointwise()(*_broadcast_args(x, e2, w, mu, sigma))
