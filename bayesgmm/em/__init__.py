"""Maximum likelihood: the EM estimator (plain and extreme deconvolution).

:class:`GaussianMixtureEM` is the public estimator; the iteration, the starts and the
numba kernels are private modules of this package. Never imports :mod:`bayesgmm.bayes`.
"""

from .estimator import GaussianMixtureEM, NotFittedError

__all__ = ["GaussianMixtureEM", "NotFittedError"]
