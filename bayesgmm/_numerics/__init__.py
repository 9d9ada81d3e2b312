"""Numerical building blocks shared by EM and the Bayesian half.

Fast exp/log, the standardizer, numba's package-stamped cache. Imports nothing from
bayesgmm but its errors.
"""
