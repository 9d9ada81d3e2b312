import numpy as np
import pandas as pd
import pytest

from bayesgmm import DataError
from bayesgmm.io import table_columns
from bayesgmm.validation import check_errors, check_sample_weight


def test_check_errors_shapes():
    n, d = 4, 2
    sd = np.arange(1.0, 5.0)
    c = check_errors(sd, n, d)
    assert c.shape == (4, 2, 2)
    np.testing.assert_allclose(c[:, 0, 0], sd**2)
    np.testing.assert_allclose(c[:, 0, 1], 0.0)
    c2 = check_errors(np.ones((n, d)), n, d)
    assert c2.shape == (4, 2, 2)
    with pytest.raises(DataError, match="symmetric"):
        check_errors(np.array([[[1.0, 0.5], [0.0, 1.0]]] * 4), n, d)
    with pytest.raises(DataError, match="positive semi-definite"):
        check_errors(np.array([[[1.0, 2.0], [2.0, 1.0]]] * 4), n, d)


def test_sample_weight_checks():
    assert check_sample_weight(None, 3).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(DataError, match="shape"):
        check_sample_weight([1.0, 2.0], 3)
    with pytest.raises(DataError, match=">= 0"):
        check_sample_weight([1.0, -2.0, 1.0], 3)


def test_table_columns_defaults_and_errors():
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "ea": [0.1, 0.2], "s": ["x", "y"],
                       "flag": [True, False]})
    X, E, names = table_columns(df, None, ["ea"])
    assert names == ["a", "b"] and X.shape == (2, 2)
    assert E.shape == (2, 2)  # one error column applies to every feature
    with pytest.raises(DataError, match="one error column per data column"):
        table_columns(df, ["a", "b"], ["ea", "ea", "ea"])
    with pytest.raises(DataError, match="no numeric columns"):
        table_columns(pd.DataFrame({"s": ["a", "b"]}), None, None)


def test_old_faithful_is_rs_faithful():
    from bayesgmm.datasets import load_example

    df = load_example("old_faithful")
    assert list(df.columns) == ["eruptions [min]", "waiting [min]"]
    assert df.shape == (272, 2) and not df.isna().any().any()
    # R's summary(faithful): means 3.488 and 70.90, ranges 1.6-5.1 and 43-96; the sums
    # (948.677 and 19284, R's sum()) are a checksum against a changed or dropped value
    assert df.mean().tolist() == pytest.approx([3.487783, 70.897059], abs=1e-6)
    assert df["eruptions [min]"].sum() == pytest.approx(948.677, abs=1e-9)
    assert df["waiting [min]"].sum() == 19284
    assert (df.min().tolist(), df.max().tolist()) == ([1.6, 43], [5.1, 96])
    assert df.iloc[0].tolist() == [3.6, 79] and df.iloc[-1].tolist() == [4.467, 74]
