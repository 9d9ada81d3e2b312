import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def seed001():
    from bayesgmm.datasets import seed001_data

    return seed001_data()
