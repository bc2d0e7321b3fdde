import random

import numpy as np
import pytest

from tfpcourse import seeding


def test_seed_everything_makes_all_generators_repeat(tf):
    seeding.seed_everything(123)
    first = (random.random(), np.random.rand(), tf.random.normal([3]).numpy())  # noqa: NPY002
    seeding.seed_everything(123)
    second = (random.random(), np.random.rand(), tf.random.normal([3]).numpy())  # noqa: NPY002
    assert first[0] == second[0] and first[1] == second[1]
    np.testing.assert_array_equal(first[2], second[2])


def test_different_seeds_give_different_numbers(tf):
    seeding.seed_everything(1)
    a = tf.random.normal([4]).numpy()
    seeding.seed_everything(2)
    b = tf.random.normal([4]).numpy()
    assert not np.allclose(a, b)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**31, ValueError), (1.5, TypeError),
                                        ("7", TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed must"):
        seeding.seed_everything(bad)


def test_stateless_seed_is_a_two_element_int32_tensor(tf):
    seed = seeding.stateless_seed(7)
    assert seed.dtype == tf.int32 and seed.shape == (2,)
    assert seed.numpy().tolist() == [0, 7]


def test_stateless_sampling_repeats_for_the_same_seed_and_differs_after_split(tf):
    import tensorflow_probability as tfp

    normal = tfp.distributions.Normal(0.0, 1.0)
    seed = seeding.stateless_seed(42)
    a = normal.sample(5, seed=seed).numpy()
    b = normal.sample(5, seed=seed).numpy()
    np.testing.assert_array_equal(a, b)  # a stateless seed is never "used up"
    s1, s2 = seeding.split_seed(seed, 2)
    c, d = normal.sample(5, seed=s1).numpy(), normal.sample(5, seed=s2).numpy()
    assert not np.allclose(c, d) and not np.allclose(a, c)


def test_split_seed_accepts_ints_and_checks_shapes(tf):
    assert len(seeding.split_seed(3, 4)) == 4
    with pytest.raises(ValueError, match=r"seed must have shape \[2\], got shape \[3\]"):
        seeding.split_seed(tf.constant([1, 2, 3]), 2)
    with pytest.raises(TypeError, match="seed must be an int or a"):
        seeding.split_seed("seed", 2)
    with pytest.raises(ValueError, match="n must be >= 1"):
        seeding.split_seed(3, 0)
