"""Maximum likelihood: the EM estimator (plain and extreme deconvolution).

The public API is :class:`GaussianMixtureEM` and :class:`NotFittedError`, nothing else.
The modules inside have an interface of their own for this package (names without an
underscore; the benchmarks use it too), which may change without notice:

- :mod:`~bayesgmm.em.estimator`: the estimator (checks, standardization, the best of
  several starts, predictions);
- :mod:`~bayesgmm.em.init`: the starts (``starts``, ``initialize``, ``density_layers``,
  ``given_start``);
- :mod:`~bayesgmm.em.iteration`: ``Params``, ``Stepper`` (one iteration), ``run`` (the
  loop from one start) and its ``Run``;
- :mod:`~bayesgmm.em.kernels`, :mod:`~bayesgmm.em.kernels_md`: the numba E-passes and
  the multi-D M-step.

Never imports :mod:`bayesgmm.bayes` or :mod:`bayesgmm.selection`.
"""

from .estimator import GaussianMixtureEM, NotFittedError

__all__ = ["GaussianMixtureEM", "NotFittedError"]
