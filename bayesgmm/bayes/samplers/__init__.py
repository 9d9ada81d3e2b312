"""Sampler drivers: nutpie through a compiled callback, nutpie through Python, PyMC."""
