"""Tests of :func:`tfpcourse.pipelines.image_dataset` and the binarisation conventions."""

from __future__ import annotations

import numpy as np
import pytest

from tfpcourse.pipelines import BINARIZATIONS, binarize_static, image_dataset


@pytest.fixture(scope="module", autouse=True)
def tf():
    """TensorFlow, started through the course's quiet set-up before anything else uses it."""
    from tfpcourse import device

    device.setup(verbose=False)
    import tensorflow as tf

    return tf


def random_images(n: int = 100, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def epoch(ds) -> list:
    """One pass over a dataset, as a list of NumPy batches (or (images, labels) pairs)."""
    out = []
    for batch in ds:
        if isinstance(batch, tuple):
            out.append(tuple(t.numpy() for t in batch))
        else:
            out.append(batch.numpy())
    return out


def epoch_labels(ds) -> np.ndarray:
    return np.concatenate([labels for _, labels in epoch(ds)])


def epoch_images(ds) -> np.ndarray:
    return np.concatenate([b[0] if isinstance(b, tuple) else b for b in epoch(ds)])


# --------------------------------------------------------------------------------------------
# Types, shapes, values


def test_images_are_scaled_float32_with_channel_axis_and_labels_int32(tf):
    images = random_images(50)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = np.arange(50, dtype=np.uint8) % 10
    ds = image_dataset(images, labels, batch_size=16)
    image_spec, label_spec = ds.element_spec
    assert image_spec.dtype == tf.float32
    assert image_spec.shape.as_list() == [None, 8, 8, 1]
    assert label_spec.dtype == tf.int32
    assert label_spec.shape.as_list() == [None]

    batches = epoch(ds)
    got_images = np.concatenate([x for x, _ in batches])
    got_labels = np.concatenate([y for _, y in batches])
    assert got_images.dtype == np.float32
    assert got_labels.dtype == np.int32
    assert got_images.shape == (50, 8, 8, 1)
    assert got_images.min() == 0.0
    assert got_images.max() == 1.0
    np.testing.assert_allclose(got_images[..., 0], images / 255.0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(got_labels, labels)  # unshuffled: original order


def test_without_labels_yields_images_only(tf):
    ds = image_dataset(random_images(10), batch_size=4)
    assert isinstance(ds.element_spec, tf.TensorSpec)
    assert [b.shape for b in epoch(ds)] == [(4, 8, 8, 1), (4, 8, 8, 1), (2, 8, 8, 1)]


def test_channel_axis_is_optional_and_existing_channels_are_kept():
    images = random_images(6)
    assert epoch_images(image_dataset(images, batch_size=6, add_channel=False)).shape == (6, 8, 8)
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    assert epoch_images(image_dataset(rgb, batch_size=6)).shape == (6, 8, 8, 3)


@pytest.mark.parametrize(
    ("drop_remainder", "sizes"), [(False, [32, 32, 32, 4]), (True, [32, 32, 32])]
)
def test_batch_sizes(drop_remainder, sizes):
    ds = image_dataset(random_images(100), batch_size=32, drop_remainder=drop_remainder)
    assert [len(b) for b in epoch(ds)] == sizes
    static = ds.element_spec.shape.as_list()[0]
    assert static == (32 if drop_remainder else None)


def test_subset_keeps_the_first_examples():
    images = random_images(100)
    labels = np.arange(100)
    ds = image_dataset(images, labels, batch_size=7, subset=10)
    np.testing.assert_array_equal(epoch_labels(ds), np.arange(10))
    np.testing.assert_allclose(epoch_images(ds)[..., 0], images[:10] / 255.0, rtol=1e-6)


def test_repeat_goes_on_past_one_epoch():
    labels = np.arange(10)
    ds = image_dataset(random_images(10), labels, batch_size=4, repeat=True)
    seen = np.concatenate([y.numpy() for _, y in ds.take(6)])
    assert len(seen) == 24  # six full batches from ten examples: batches span epochs
    np.testing.assert_array_equal(seen, np.tile(labels, 3)[:24])


@pytest.mark.parametrize("cache", [True, False])
def test_a_second_epoch_gives_the_same_data_without_shuffling(cache):
    images, labels = random_images(30), np.arange(30)
    ds = image_dataset(images, labels, batch_size=8, cache=cache)
    first, second = epoch(ds), epoch(ds)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


# --------------------------------------------------------------------------------------------
# Shuffling


def test_shuffle_is_seeded_reshuffles_each_epoch_and_keeps_pairs():
    images = np.repeat(np.arange(200, dtype=np.uint8)[:, None, None], 4, axis=1).repeat(4, 2)
    labels = np.arange(200)

    def build(seed):
        return image_dataset(images, labels, batch_size=32, shuffle=True, seed=seed)

    ds = build(7)
    first = epoch_labels(ds)
    second = epoch_labels(ds)
    again = epoch_labels(build(7))
    other = epoch_labels(build(8))

    assert sorted(first.tolist()) == list(range(200))  # a permutation: nothing lost or doubled
    assert not np.array_equal(first, labels)  # actually shuffled
    np.testing.assert_array_equal(again, first)  # same seed, fresh dataset: same order
    assert not np.array_equal(second, first)  # next epoch: a new order
    assert not np.array_equal(other, first)  # other seed: another order
    # Each image still travels with its own label (image i has every pixel equal to i).
    batches = epoch(ds)
    for x, y in batches:
        np.testing.assert_allclose(x[:, 0, 0, 0] * 255.0, y, atol=1e-3)


# --------------------------------------------------------------------------------------------
# Binarisation


def test_static_binarization_is_fixed_across_epochs_and_matches_binarize_static():
    images = random_images(40)
    images[0] = 0
    images[1] = 255
    ds = image_dataset(images, batch_size=16, binarize="static", seed=3)
    first, second = epoch_images(ds), epoch_images(ds)
    assert set(np.unique(first).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[..., 0], binarize_static(images, seed=3))
    assert (first[0] == 0).all()
    assert (first[1] == 1).all()
    other_seed = epoch_images(image_dataset(images, batch_size=16, binarize="static", seed=4))
    assert not np.array_equal(other_seed, first)


def test_binarize_static_draws_bernoulli_of_the_intensity():
    images = np.full((10, 20, 20), 64, np.uint8)  # intensity 64/255 ~ 0.251
    binary = binarize_static(images, seed=0)
    assert binary.dtype == np.uint8
    assert binary.shape == images.shape
    assert set(np.unique(binary).tolist()) == {0, 1}
    # 4000 draws: standard error ~0.007, so 0.03 is a > 4-sigma margin.
    assert abs(binary.mean() - 64 / 255) < 0.03
    np.testing.assert_array_equal(binarize_static(images, seed=0), binary)


def test_dynamic_binarization_redraws_every_epoch_around_the_intensity():
    images = random_images(64, size=10, seed=5)  # 6400 pixels
    images[0] = 0
    images[1] = 255
    ds = image_dataset(images, batch_size=16, binarize="dynamic", seed=11)
    first, second = epoch_images(ds), epoch_images(ds)
    assert first.dtype == np.float32
    assert set(np.unique(first).tolist()) == {0.0, 1.0}
    assert set(np.unique(second).tolist()) == {0.0, 1.0}
    assert (first[0] == 0).all() and (second[0] == 0).all()
    assert (first[1] == 1).all() and (second[1] == 1).all()
    # Fresh draws: for uniform intensities about a third of the pixels change between epochs.
    changed = (first != second).mean()
    assert 0.25 < changed < 0.42
    intensity = images.mean() / 255.0
    for draw in (first, second):
        assert abs(draw.mean() - intensity) < 0.03  # standard error ~0.006
    # Reproducible: a freshly built dataset with the same seed repeats the same draws.
    again = epoch_images(image_dataset(images, batch_size=16, binarize="dynamic", seed=11))
    np.testing.assert_array_equal(again, first)


def test_dynamic_binarization_with_labels_and_shuffle_keeps_labels():
    images = np.zeros((48, 4, 4), np.uint8)
    images[::2] = 255  # even labels: all ones; odd labels: all zeros
    labels = np.arange(48)
    ds = image_dataset(images, labels, batch_size=10, binarize="dynamic", shuffle=True)
    for x, y in epoch(ds):
        assert y.dtype == np.int32
        expected = (y % 2 == 0).astype(np.float32)
        np.testing.assert_array_equal(x.reshape(len(y), -1).mean(axis=1), expected)


def test_threshold_binarization_is_above_half():
    images = np.array([[[0, 127], [128, 255]]], np.uint8)
    ds = image_dataset(images, batch_size=1, binarize="threshold", add_channel=False)
    np.testing.assert_array_equal(epoch_images(ds)[0], [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(epoch_images(ds)[0], [[0.0, 0.0], [1.0, 1.0]])


def test_binarizations_constant_lists_the_accepted_values():
    assert BINARIZATIONS == (None, "dynamic", "static", "threshold")


# --------------------------------------------------------------------------------------------
# Bad input

IMAGES = random_images(10)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "pattern"),
    [
        ((IMAGES.astype(np.float32),), {}, TypeError, "images must have dtype uint8"),
        ((IMAGES.tolist(),), {}, TypeError, "images must be a NumPy array"),
        ((IMAGES[0],), {}, ValueError, r"images must have shape .* got shape \(8, 8\)"),
        ((IMAGES[:, None, None],), {}, ValueError, "images must have shape"),
        ((IMAGES[:0],), {}, ValueError, "images must hold at least one image"),
        ((IMAGES, np.arange(9)), {}, ValueError, r"labels must have shape \(10,\)"),
        ((IMAGES, np.zeros((10, 1))), {}, ValueError, r"labels must have shape \(10,\)"),
        ((IMAGES, list(range(10))), {}, TypeError, "labels must be a NumPy array"),
        ((IMAGES,), {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ((IMAGES,), {"batch_size": True}, TypeError, "batch_size must be an integer"),
        ((IMAGES,), {"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
        ((IMAGES,), {"batch_size": "64"}, TypeError, "batch_size must be an integer"),
        ((IMAGES,), {"binarize": "sometimes"}, ValueError, "binarize must be one of"),
        ((IMAGES,), {"binarize": True}, ValueError, "binarize must be one of"),
        ((IMAGES,), {"shuffle": 1}, TypeError, "shuffle must be True or False"),
        ((IMAGES,), {"seed": -1}, ValueError, "seed must be >= 0"),
        ((IMAGES,), {"subset": 0}, ValueError, "subset must be >= 1"),
        ((IMAGES,), {"cache": "yes"}, TypeError, "cache must be True or False"),
        ((IMAGES,), {"drop_remainder": None}, TypeError, "drop_remainder must be True or"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(args, kwargs, error, pattern):
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(error, match=pattern):
        image_dataset(*args, **kwargs)


@pytest.mark.parametrize(
    ("images", "seed", "error", "pattern"),
    [
        (IMAGES.astype(np.int16), 0, TypeError, "images must have dtype uint8"),
        (IMAGES, -3, ValueError, "seed must be >= 0"),
        (IMAGES, 1.0, TypeError, "seed must be an integer"),
    ],
)
def test_binarize_static_rejects_bad_arguments(images, seed, error, pattern):
    with pytest.raises(error, match=pattern):
        binarize_static(images, seed=seed)
