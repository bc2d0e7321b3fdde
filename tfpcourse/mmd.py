"""Maximum mean discrepancy (MMD) with a Gaussian kernel, the MMD-VAE's regulariser.

:func:`mmd` compares two samples; :func:`gaussian_kernel` and
:func:`pairwise_squared_distances` are its parts (one matrix product, no ``n * m * d`` tiling).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfpcourse._validate import check_number

__all__ = ["gaussian_kernel", "mmd", "pairwise_squared_distances"]


def pairwise_squared_distances(a: Any, b: Any) -> tf.Tensor:
    """All squared Euclidean distances between the rows of ``a`` ``[n, d]`` and ``b`` ``[m, d]``.

    Computed as ``|a|^2 + |b|^2 - 2 a b^T`` with one matrix product (memory ``n * m``, not
    ``n * m * d`` as tiling would need), clipped at 0 against round-off.
    """
    a = tf.convert_to_tensor(a, dtype_hint=tf.float32)
    b = tf.convert_to_tensor(b, dtype=a.dtype)
    if a.shape.rank != 2 or b.shape.rank != 2 or a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a and b must be matrices [n, d] and [m, d] with the same d, got shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )
    a2 = tf.reduce_sum(tf.square(a), axis=1)[:, tf.newaxis]
    b2 = tf.reduce_sum(tf.square(b), axis=1)[tf.newaxis, :]
    return tf.maximum(a2 + b2 - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)


def gaussian_kernel(a: Any, b: Any, bandwidth: float | None = None) -> tf.Tensor:
    """The Gaussian kernel matrix ``exp(-|a_i - b_j|^2 / (2 s^2))``.

    ``bandwidth`` is ``s``; by default ``2 s^2 = d`` (so the exponent is the *mean* squared
    difference per dimension). Then the expected kernel value between two draws of
    ``N(0, I_d)`` is ``(d / (d + 4))^(d / 2)``, which tends to ``exp(-2)`` as ``d`` grows,
    instead of to 0 (a fixed ``s``) or to 1 (``2 s^2 = d^2``), so the kernel stays informative
    whatever the latent size.
    """
    d2 = pairwise_squared_distances(a, b)
    if bandwidth is None:
        two_s2 = float(tf.convert_to_tensor(a, dtype_hint=tf.float32).shape[-1])
    else:
        two_s2 = 2.0 * check_number("bandwidth", bandwidth, minimum=0.0,
                                    strict_minimum=True) ** 2
    return tf.exp(-d2 / two_s2)


def mmd(x: Any, y: Any, bandwidth: float | None = None) -> tf.Tensor:
    """Squared maximum mean discrepancy between two samples, with a Gaussian kernel.

    The biased (V-statistic) estimate ``mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``
    (Gretton et al., 2012): it is exactly 0 for identical samples and never negative, so it can
    be used directly as a training penalty.
    """
    return (
        tf.reduce_mean(gaussian_kernel(x, x, bandwidth))
        + tf.reduce_mean(gaussian_kernel(y, y, bandwidth))
        - 2.0 * tf.reduce_mean(gaussian_kernel(x, y, bandwidth))
    )
