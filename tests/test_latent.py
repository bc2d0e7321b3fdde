"""Latent-space measures: k-NN accuracy, silhouette, aggregate samples, mutual information,
against brute-force definitions and cases with known answers."""

import itertools

import numpy as np
import pytest


@pytest.fixture(scope="module")
def latent(tf):
    from tfpcourse import latent as module

    return module


RNG = np.random.default_rng(0)
BLOBS = np.concatenate([RNG.normal(size=(20, 2)) * 0.3 + centre
                        for centre in ([0, 0], [5, 0], [0, 5])]).astype(np.float32)
BLOB_LABELS = np.repeat(np.arange(3), 20)


def _silhouette_by_definition(points, labels):
    """The textbook definition, one point at a time with Python loops."""
    values = []
    for i, p in enumerate(points):
        dists = {c: [np.linalg.norm(p - q) for j, q in enumerate(points)
                     if labels[j] == c and j != i] for c in set(labels.tolist())}
        a = np.mean(dists[labels[i]])
        b = min(np.mean(d) for c, d in dists.items() if c != labels[i])
        values.append((b - a) / max(a, b))
    return float(np.mean(values))


def test_knn_accuracy_is_one_for_separated_blobs_and_near_chance_for_shuffled_labels(latent):
    assert latent.knn_accuracy(BLOBS, BLOB_LABELS, BLOBS + 0.01, BLOB_LABELS, k=5) == 1.0
    shuffled = np.random.default_rng(1).permutation(BLOB_LABELS)
    query = np.random.default_rng(2).normal(size=(300, 2)).astype(np.float32) * 3
    query_labels = np.random.default_rng(3).integers(0, 3, 300)
    accuracy = latent.knn_accuracy(BLOBS, shuffled, query, query_labels, k=5)
    assert abs(accuracy - 1 / 3) < 0.1  # labels unrelated to position: chance level


def test_knn_accuracy_matches_a_brute_force_vote(latent):
    rng = np.random.default_rng(4)
    ref, ref_labels = rng.normal(size=(40, 3)), rng.integers(0, 4, 40)
    query, query_labels = rng.normal(size=(25, 3)), rng.integers(0, 4, 25)
    expected = np.mean([
        np.bincount(ref_labels[np.argsort(np.linalg.norm(ref - q, axis=1))[:7]],
                    minlength=4).argmax() == label
        for q, label in zip(query, query_labels)
    ])
    got = latent.knn_accuracy(ref, ref_labels, query, query_labels, k=7, chunk=4)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k must be >= 1"),
    ({"k": 60}, "k must be <= 59"),
    ({"query": np.zeros((3, 5))}, "same latent size"),
    ({"reference_labels": np.zeros(60)}, "non-negative integer class labels"),
    ({"query_labels": np.arange(3)}, r"shape \(60,\)"),
])
def test_knn_accuracy_checks_its_inputs(latent, kwargs, match):
    args = {"reference": BLOBS, "reference_labels": BLOB_LABELS, "query": BLOBS,
            "query_labels": BLOB_LABELS, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        latent.knn_accuracy(args.pop("reference"), args.pop("reference_labels"),
                            args.pop("query"), args.pop("query_labels"), **args)


def test_silhouette_matches_the_definition_and_a_hand_value(latent):
    rng = np.random.default_rng(5)
    points, labels = rng.normal(size=(30, 2)), rng.integers(0, 3, 30)
    assert latent.silhouette(points, labels) == pytest.approx(
        _silhouette_by_definition(points, labels), rel=1e-4)  # float32 distances
    # Two pairs 1 apart, 10 apart from each other: a = 1, b = (10 + sqrt(101)) / 2.
    pts = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], np.float32)
    b = (10 + np.sqrt(101)) / 2
    assert latent.silhouette(pts, np.array([0, 0, 1, 1])) == pytest.approx((b - 1) / b, rel=1e-6)
    assert latent.silhouette(BLOBS, BLOB_LABELS) > 0.8


def test_silhouette_needs_two_classes_of_two_points(latent):
    with pytest.raises(ValueError, match="at least two classes"):
        latent.silhouette(BLOBS, np.zeros(60, int))
    with pytest.raises(ValueError, match="class sizes"):
        latent.silhouette(BLOBS[:3], np.array([0, 0, 1]))


def test_aggregate_sample_is_seeded_and_follows_the_posteriors(latent):
    locs = np.repeat(np.array([[1.0, -2.0]], np.float32), 20_000, axis=0)
    scales = np.full_like(locs, 0.5)
    z = latent.aggregate_sample(locs, scales, seed=3)
    assert z.shape == locs.shape
    np.testing.assert_array_equal(z, latent.aggregate_sample(locs, scales, seed=3))
    assert not np.allclose(z, latent.aggregate_sample(locs, scales, seed=4))
    np.testing.assert_allclose(z.mean(axis=0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 0.5], rtol=0.03)
    with pytest.raises(ValueError, match="scales must be positive"):
        latent.aggregate_sample(locs, -scales, seed=0)


def test_mutual_information_is_log_n_for_distinguishable_codes_and_0_for_identical_ones(latent):
    pts = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], np.float32)
    terms, log_agg = latent.mutual_information(pts, np.full_like(pts, 0.01), pts, chunk=3)
    assert terms.shape == log_agg.shape == (4,)
    assert terms.mean() == pytest.approx(np.log(4), abs=1e-4)
    same = np.zeros((6, 2), np.float32)
    z = latent.aggregate_sample(same, np.ones_like(same), seed=0)
    terms, _ = latent.mutual_information(same, np.ones_like(same), z)
    np.testing.assert_allclose(terms, 0.0, atol=1e-5)


def test_mutual_information_aggregate_density_matches_a_mixture(latent, tf):
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    rng = np.random.default_rng(6)
    locs = rng.normal(size=(5, 2)).astype(np.float32)
    scales = rng.uniform(0.3, 1.0, size=(5, 2)).astype(np.float32)
    z = latent.aggregate_sample(locs, scales, seed=1)
    _, log_agg = latent.mutual_information(locs, scales, z, chunk=2)
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=tf.zeros(5)),
                                    tfd.MultivariateNormalDiag(locs, scales))
    np.testing.assert_allclose(log_agg, mixture.log_prob(z).numpy(), rtol=1e-5, atol=1e-5)


def test_mutual_information_checks_shapes(latent):
    locs = np.zeros((4, 2), np.float32)
    for scales, z in itertools.product([np.ones((4, 2)), np.ones((3, 2))],
                                       [np.zeros((4, 2)), np.zeros((4, 3))]):
        if scales.shape == (4, 2) and z.shape == (4, 2):
            continue
        with pytest.raises(ValueError, match="same shape"):
            latent.mutual_information(locs, scales, z)
