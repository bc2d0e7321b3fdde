"""Seeding: one call makes a notebook's randomness repeatable.

TensorFlow has two kinds of random operations:

*Stateful* ops (``tf.random.normal``, Keras initialisers, ``dataset.shuffle``) draw from a global
generator. :func:`seed_everything` seeds it, together with Python's and NumPy's, so a notebook run
twice prints the same numbers.

*Stateless* ops (``tf.random.stateless_normal``, and TFP's ``sample(seed=...)`` when given a
seed *tensor* of shape ``[2]``) are pure functions of the seed you pass: the same seed gives the
same numbers wherever and however often the call runs, including inside a ``tf.function``. They
are what TFP recommends, and what this course uses whenever a result must not depend on how many
random numbers were drawn before it::

    seed = stateless_seed(42)                      # a [2] int32 tensor
    s_prior, s_noise = split_seed(seed, 2)         # independent child seeds
    z = tfd.Normal(0.0, 1.0).sample(3, seed=s_prior)

A stateless seed is never "used up": passing the same one twice gives the same sample twice
(that is the point). Split it to get fresh randomness.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

from tfpcourse._validate import check_bool, check_int

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["fold_in", "seed_everything", "split_seed", "stateless_seed"]

_MAX_SEED = 2**31 - 1


def seed_everything(seed: int, *, deterministic_ops: bool = True) -> None:
    """Seed Python's, NumPy's and TensorFlow's global generators.

    Parameters
    ----------
    seed:
        A non-negative integer below 2**31.
    deterministic_ops:
        Also ask TensorFlow for deterministic kernels
        (``tf.config.experimental.enable_op_determinism``), so reductions on a GPU give the same
        bits every run. It is a little slower; on a CPU it costs almost nothing.

    Raises
    ------
    TypeError, ValueError
        If ``seed`` is not an integer in ``[0, 2**31)``.
    """
    seed = check_int("seed", seed, minimum=0, maximum=_MAX_SEED)
    check_bool("deterministic_ops", deterministic_ops)
    import numpy as np
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this one is already hashed
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator, for code that uses it
    tf.random.set_seed(seed)
    try:
        import keras

        keras.utils.set_random_seed(seed)
    except Exception:  # pragma: no cover - Keras missing or older
        pass
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def stateless_seed(seed: int) -> tf.Tensor:
    """Turn an integer into the ``[2]``-shaped ``int32`` seed tensor that stateless ops take.

    >>> stateless_seed(7).numpy().tolist()
    [0, 7]
    """
    seed = check_int("seed", seed, minimum=0, maximum=_MAX_SEED)
    import tensorflow as tf

    return tf.constant([0, seed], dtype=tf.int32)


def split_seed(seed: tf.Tensor | int, n: int = 2) -> list[tf.Tensor]:
    """Split a stateless seed into ``n`` independent child seeds (a thin, checked wrapper over
    ``tfp.random.split_seed``).

    Parameters
    ----------
    seed:
        A seed from :func:`stateless_seed` or an integer (which is first passed to it).
    n:
        How many child seeds, at least 1.
    """
    n = check_int("n", n, minimum=1)
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = stateless_seed(seed)
    import tensorflow as tf
    import tensorflow_probability as tfp

    if not tf.is_tensor(seed):
        raise TypeError(
            f"seed must be an int or a [2] int32 tensor from stateless_seed(), "
            f"got {type(seed).__name__}"
        )
    if seed.shape.rank != 1 or seed.shape[0] != 2:
        raise ValueError(f"seed must have shape [2], got shape {seed.shape.as_list()}")
    return list(tfp.random.split_seed(seed, n=n))


def fold_in(seed: tf.Tensor, index: Any) -> tf.Tensor:
    """A child stateless seed for ``index`` (an int, or an integer tensor such as a step
    counter), as the ``[2]`` ``int32`` pair that TFP's samplers take.

    Different indices give independent-looking seeds; the same ``(seed, index)`` always gives
    the same child. Training loops fold the step number into a base seed this way, so every step
    draws fresh noise and a rerun draws the same noise.
    """
    import tensorflow as tf

    child = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))
    return tf.cast(child, tf.int32)
