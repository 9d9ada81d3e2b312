"""The coordinates a sampler sees: PyMC's unconstrained space and the folded pair."""
