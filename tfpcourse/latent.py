"""Measures of a latent space: how well codes separate classes, and how much they say about x.

Chapter 07 compares the latent spaces of two VAEs with these. scikit-learn is not part of the
course environment, so each measure is a few lines of NumPy (plus a matrix of squared
distances from :func:`tfpcourse.vae.pairwise_squared_distances`), small enough to read:

* :func:`knn_accuracy`: the share of query codes whose ``k`` nearest reference codes vote for
  their true class (cluster separation that may follow curved boundaries);
* :func:`silhouette`: the mean silhouette ``(b - a) / max(a, b)``, with the classes as clusters;
* :func:`aggregate_sample`: one draw ``z ~ q(z | x)`` per image, a sample of the aggregate
  posterior ``q(z)``;
* :func:`mutual_information`: the Monte Carlo estimate of ``I(x; z)`` under ``q``, with a finite
  set of images as the data distribution.

All take NumPy arrays (or anything ``np.asarray`` accepts) and return NumPy values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfpcourse._validate import check_int

__all__ = ["aggregate_sample", "knn_accuracy", "mutual_information", "silhouette"]


def _codes(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, latent) with n >= 1, got {array.shape}")
    return array


def _labels(name: str, value: Any, n: int) -> np.ndarray:
    labels = np.asarray(value)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(
            f"{name} must be {n} non-negative integer class labels (shape ({n},)), got an array "
            f"of shape {labels.shape} and dtype {labels.dtype}"
        )
    return labels


def knn_accuracy(
    reference: Any,
    reference_labels: Any,
    query: Any,
    query_labels: Any,
    *,
    k: int = 15,
    chunk: int = 1000,
) -> float:
    """Share of ``query`` codes whose ``k`` nearest ``reference`` codes (Euclidean) vote, by
    majority, for the query's true class. Ties go to the smallest class label.

    ``chunk`` query codes are compared with all reference codes at a time, which bounds the
    memory use at ``chunk * len(reference)`` distances.
    """
    from tfpcourse.mmd import pairwise_squared_distances

    reference = _codes("reference", reference)
    query = _codes("query", query)
    if query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"query and reference must have the same latent size, got {query.shape[1]} and "
            f"{reference.shape[1]}"
        )
    reference_labels = _labels("reference_labels", reference_labels, len(reference))
    query_labels = _labels("query_labels", query_labels, len(query))
    if len(reference) < 2:
        raise ValueError(f"reference needs at least 2 codes, got {len(reference)}")
    k = check_int("k", k, minimum=1, maximum=len(reference) - 1)
    chunk = check_int("chunk", chunk, minimum=1)
    n_classes = int(max(reference_labels.max(), query_labels.max())) + 1
    correct = 0
    for start in range(0, len(query), chunk):
        d2 = pairwise_squared_distances(query[start:start + chunk], reference).numpy()
        nearest = np.argpartition(d2, k, axis=1)[:, :k]  # the k smallest, in any order
        votes = np.apply_along_axis(np.bincount, 1, reference_labels[nearest],
                                    minlength=n_classes)
        correct += int(np.sum(votes.argmax(axis=1) == query_labels[start:start + chunk]))
    return correct / len(query)


def silhouette(points: Any, labels: Any) -> float:
    """Mean silhouette ``(b - a) / max(a, b)`` of ``points`` with the classes as clusters.

    For each point, ``a`` is its mean Euclidean distance to the other points of its class and
    ``b`` the smallest mean distance to the points of another class. The mean is 1 for tight,
    well-separated classes and near 0 for overlapping ones. Every class needs at least two
    points, and there must be at least two classes.
    """
    from tfpcourse.mmd import pairwise_squared_distances

    points = _codes("points", points)
    labels = _labels("labels", labels, len(points))
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(
            f"silhouette needs at least two classes of at least two points each, got class "
            f"sizes {dict(zip(classes.tolist(), counts.tolist()))}"
        )
    dist = np.sqrt(pairwise_squared_distances(points, points).numpy().astype(np.float64))
    mean_to = np.stack([dist[:, labels == c].mean(axis=1) for c in classes], axis=1)
    own = np.searchsorted(classes, labels)
    rows = np.arange(len(points))
    a = mean_to[rows, own] * counts[own] / (counts[own] - 1)  # leave the point itself out
    mean_to[rows, own] = np.inf
    b = mean_to.min(axis=1)
    return float(np.mean((b - a) / np.maximum(a, b)))


def aggregate_sample(locs: Any, scales: Any, seed: int) -> np.ndarray:
    """One draw ``z = loc + scale * noise`` per row: a sample of the aggregate posterior.

    ``locs`` and ``scales`` are the means and standard deviations of ``q(z | x)`` for a set of
    images, shape ``(n, latent)`` (see :func:`tfpcourse.vae.posterior_moments`); the noise is
    a stateless standard Normal draw from ``seed``, so the sample is reproducible.
    """
    import tensorflow as tf

    from tfpcourse import seeding

    locs = _codes("locs", locs)
    scales = np.asarray(scales, dtype=np.float32)
    if scales.shape != locs.shape or np.any(scales <= 0):
        raise ValueError(
            f"scales must be positive, with the shape of locs {locs.shape}, got shape "
            f"{scales.shape}"
        )
    noise = tf.random.stateless_normal(locs.shape, seed=seeding.stateless_seed(seed))
    return locs + scales * noise.numpy()


def mutual_information(
    locs: Any, scales: Any, z: Any, *, chunk: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo terms of ``I(x; z)`` under ``q``, with the ``n`` images as the data.

    ``locs`` and ``scales`` ``(n, latent)`` describe the diagonal Gaussian posteriors
    ``q(z | x_j)``; ``z`` ``(n, latent)`` holds one draw per image, ``z_i ~ q(z | x_i)`` (e.g.
    from :func:`aggregate_sample`). Returns two arrays of shape ``(n,)``: the terms
    ``log q(z_i | x_i) - log q(z_i)``, whose mean estimates ``I(x; z)`` (at most ``log n``), and
    ``log q(z_i) = log (1/n) sum_j q(z_i | x_j)``, the aggregate posterior's log-density.
    """
    import tensorflow as tf
    import tensorflow_probability as tfp

    locs = _codes("locs", locs)
    scales = np.asarray(scales, dtype=np.float32)
    z = np.asarray(z, dtype=np.float32)
    if scales.shape != locs.shape or z.shape != locs.shape:
        raise ValueError(
            f"locs, scales and z must have the same shape (n, latent), got {locs.shape}, "
            f"{scales.shape} and {z.shape}"
        )
    chunk = check_int("chunk", chunk, minimum=1)
    q_all = tfp.distributions.MultivariateNormalDiag(locs, scales)  # a batch of n posteriors
    own = q_all.log_prob(z).numpy()
    log_agg = np.concatenate([
        (tf.reduce_logsumexp(q_all.log_prob(z[i:i + chunk, None, :]), axis=1)
         - np.log(len(locs))).numpy()
        for i in range(0, len(z), chunk)
    ])
    return own - log_agg, log_agg
