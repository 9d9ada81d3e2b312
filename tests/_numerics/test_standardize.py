"""The one definition of constant data, shared by EM's and the model's standardizers."""

import numpy as np
import pytest

from bayesgmm import DataError
from bayesgmm._numerics.standardize import CONSTANT_RTOL, _standardizer, standardizer


@pytest.mark.parametrize("loc", [0.0, 1.0, -3e5])
@pytest.mark.parametrize(("spread", "constant"), [(0.0, True), (0.5, True), (2.0, False),
                                                  (1e3, False)])
def test_both_standardizers_agree_on_constant_data(loc, spread, constant):
    # spread in units of the threshold: CONSTANT_RTOL x |loc| (or float64's tiny at 0)
    unit = CONSTANT_RTOL * abs(loc) + np.finfo(float).tiny
    x = loc + spread * unit * np.array([-1.0, 1.0] * 5)
    if np.std(x) == 0 and spread > 0:
        pytest.skip("the spread is below float64's resolution at this location")
    if constant:
        with pytest.raises(DataError, match="the data are constant"):
            standardizer(x)
        with pytest.raises(DataError, match="feature 0 of X is constant"):
            _standardizer(x[:, None], np.ones(x.size))
    else:
        assert standardizer(x)[1] > 0
        assert _standardizer(x[:, None], np.ones(x.size))[1][0] > 0


def test_the_two_standardizers_give_the_same_units():
    # kept apart only for their rounding (np.mean vs np.average): the same units to 1e-15
    x = np.random.default_rng(0).normal(3.0, 2.0, 1001)
    loc, scale = standardizer(x)
    loc_w, scale_w = _standardizer(x[:, None], np.ones(x.size))
    assert loc == pytest.approx(loc_w[0], rel=1e-14)
    assert scale == pytest.approx(scale_w[0], rel=1e-14)
