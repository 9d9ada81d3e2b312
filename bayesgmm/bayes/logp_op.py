"""Fused PyTensor Ops for the marginal log-likelihood of a 1-D Gaussian mixture.

With known measurement variance ``e2[i]`` the log-likelihood of point ``i`` is::

    log p(x_i) = logsumexp_k [log w_k + log Normal(x_i | mu_k, sqrt(sigma_k**2 + e2_i))]

As a PyTensor graph this materialises several ``(n, K)`` arrays, and the gradient
adds more passes over them. Here one compiled pass over the points computes the
log-likelihood *and* its gradient with respect to ``w``, ``mu`` and ``sigma``, in
blocks of at most 256 points with ``(K, block)`` scratch arrays that stay in cache.
The loops are written so that LLVM vectorises them (AVX2/AVX-512), with inlined
polynomial ``exp`` and ``log`` instead of libm calls.

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
includes the package's numba stamp (:mod:`bayesgmm._numerics.numba_cache`), so editing
the kernels invalidates the cache.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from pytensor.tensor import TensorLike
from pytensor.tensor.basic import Alloc
from pytensor.tensor.math import Sum
from pytensor.tensor.rewriting.basic import register_canonicalize, register_specialize
from pytensor.tensor.variable import TensorVariable

from .likelihood import _CACHE_VERSION, _pointwise_impl, _total_impl, _vjp_impl

__all__ = ["mixture_logp_pointwise", "mixture_logp_total"]

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


def _no_second_derivatives(op, inputs):
    msg = "Second derivatives of the mixture log-likelihood are not implemented."
    return [grad_not_implemented(op, i, v, msg) for i, v in enumerate(inputs)]


class MixtureLogpTotal(Op):
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

    def infer_shape(self, node, input_shapes):  # noqa: D102
        return [(), input_shapes[2], input_shapes[3], input_shapes[4]]

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        if any(not isinstance(c.type, DisconnectedType) for c in cotangents[1:]):
            return _no_second_derivatives(self, inputs)
        g = cotangents[0]
        x, e2 = inputs[:2]
        return [
            grad_not_implemented(self, 0, x, "x is data."),
            grad_not_implemented(self, 1, e2, "e2 is data."),
            *(g * out for out in outputs[1:]),
        ]


class MixtureLogpPointwise(Op):
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

    def infer_shape(self, node, input_shapes):  # noqa: D102
        return [input_shapes[0]]

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        x, e2 = inputs[:2]
        return [
            grad_not_implemented(self, 0, x, "x is data."),
            grad_not_implemented(self, 1, e2, "e2 is data."),
            *MixtureLogpVJP()(*inputs, cotangents[0]),
        ]


class MixtureLogpVJP(Op):
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

    def infer_shape(self, node, input_shapes):  # noqa: D102
        return list(input_shapes[2:5])

    def pullback(self, inputs, outputs, cotangents):  # noqa: D102
        return _no_second_derivatives(self, inputs)


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


def mixture_logp_total(
    x: TensorLike, e2: TensorLike | None, w: TensorLike, mu: TensorLike, sigma: TensorLike
) -> TensorVariable:
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


def mixture_logp_pointwise(
    x: TensorLike, e2: TensorLike | None, w: TensorLike, mu: TensorLike, sigma: TensorLike
) -> TensorVariable:
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
