"""The coordinates a sampler sees: PyMC's unconstrained space and the folded pair.

Each supplies only its map to (w, mu, sigma), the map's log-Jacobian and the chain rule;
the model's density in (w, mu, sigma) is :mod:`bayesgmm.bayes.density`.
"""
