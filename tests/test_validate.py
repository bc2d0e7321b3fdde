import numpy as np
import pytest

from tfpcourse._validate import check_bool, check_choice, check_int, check_number


def test_check_int_accepts_numpy_integers_and_returns_python_int():
    value = check_int("batch_size", np.int64(64), minimum=1)
    assert value == 64 and type(value) is int


@pytest.mark.parametrize("bad", [True, 2.0, "64", None])
def test_check_int_rejects_non_integers_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"batch_size must be an integer, got"):
        check_int("batch_size", bad)


def test_check_int_range_errors_give_expected_and_received():
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        check_int("batch_size", 0, minimum=1)
    with pytest.raises(ValueError, match=r"seed must be <= 10, got 11"):
        check_int("seed", 11, maximum=10)


def test_check_int_allows_none_only_when_asked():
    assert check_int("subset", None, allow_none=True) is None
    with pytest.raises(TypeError, match="an integer or None"):
        check_int("subset", "all", allow_none=True)


def test_check_number_rejects_nan_and_strict_minimum():
    with pytest.raises(ValueError, match="noise must not be NaN"):
        check_number("noise", float("nan"))
    with pytest.raises(ValueError, match=r"factor must be > 0.0, got 0.0"):
        check_number("factor", 0.0, minimum=0.0, strict_minimum=True)
    assert check_number("factor", 0.5, minimum=0.0, strict_minimum=True) == 0.5


def test_check_choice_lists_the_choices():
    with pytest.raises(ValueError, match=r"binarize must be one of None, 'dynamic'; got 'x'"):
        check_choice("binarize", "x", (None, "dynamic"))


def test_check_bool_rejects_truthy_non_bools():
    with pytest.raises(TypeError, match="shuffle must be True or False, got 1"):
        check_bool("shuffle", 1)
