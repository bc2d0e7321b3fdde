"""``tf.data`` input pipelines for image arrays.

One function, :func:`image_dataset`, turns the ``uint8`` arrays of :mod:`tfpcourse.data` into a
pipeline that scales, optionally binarises, shuffles (seeded), batches, caches and prefetches.

Binarisation
------------
Bernoulli likelihoods (the VAE chapters) need pixels in {0, 1}. There are two conventions, and
published numbers depend on which one was used, so chapters must say which they use:

``"dynamic"``
    Each pixel is redrawn as Bernoulli(intensity) *every time* the example is seen (every epoch).
    It acts as data augmentation and is the convention of most VAE papers' "dynamically
    binarised MNIST" results.
``"static"``
    Each pixel is drawn once, with a fixed seed, and the same binary image is used for ever.
``"threshold"``
    Deterministic: a pixel is 1 where its intensity is above 0.5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfpcourse._validate import check_bool, check_choice, check_int

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["BINARIZATIONS", "binarize_static", "image_dataset"]

BINARIZATIONS = (None, "dynamic", "static", "threshold")


def _check_images(images: object) -> np.ndarray:
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a NumPy array, got {type(images).__name__}")
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape (n, height, width) or (n, height, width, channels), "
            f"got shape {images.shape}"
        )
    if images.dtype != np.uint8:
        raise TypeError(f"images must have dtype uint8 (raw pixels 0..255), got {images.dtype}")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got 0")
    return images


def binarize_static(images: np.ndarray, *, seed: int) -> np.ndarray:
    """Draw each pixel once as Bernoulli(intensity / 255) with a fixed seed; returns ``uint8``
    0/1 values. The same ``seed`` always gives the same binary images."""
    images = _check_images(images)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images / np.float32(255.0)).astype(
        np.uint8
    )


def image_dataset(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    binarize: str | None = None,
    subset: int | None = None,
    add_channel: bool = True,
    repeat: bool = False,
    cache: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Build a batched, prefetched ``tf.data.Dataset`` from ``uint8`` images.

    Parameters
    ----------
    images:
        ``uint8`` array of shape ``(n, h, w)`` or ``(n, h, w, c)``.
    labels:
        Optional integer labels of shape ``(n,)``. With labels the dataset yields
        ``(images, labels)`` pairs, otherwise images alone.
    batch_size:
        Examples per batch (>= 1).
    shuffle:
        Reshuffle every epoch, seeded by ``seed`` (use it for training, not for evaluation).
    seed:
        Seed for shuffling, static binarisation and dynamic binarisation.
    binarize:
        ``None`` (keep intensities in [0, 1]), ``"dynamic"``, ``"static"`` or ``"threshold"``;
        see the module notes.
    subset:
        Use only the first ``subset`` examples (e.g. ``cfg.pick(full=None, smoke=512)``).
        ``None`` keeps all.
    add_channel:
        Give ``(n, h, w)`` images a trailing channel axis, as convolutions expect.
    repeat:
        Repeat for ever (then iterate with a step count instead of epochs).
    cache:
        Keep the scaled tensors in memory after the first pass.
    drop_remainder:
        Drop the last, smaller batch (gives every batch a static shape).

    Returns
    -------
    tf.data.Dataset
        Of ``float32`` images in [0, 1] (or {0, 1}), with ``int32`` labels if given.
    """
    import tensorflow as tf

    images = _check_images(images)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_bool("shuffle", shuffle)
    seed = check_int("seed", seed, minimum=0)
    check_choice("binarize", binarize, BINARIZATIONS)
    subset = check_int("subset", subset, minimum=1, allow_none=True)
    for flag in ("add_channel", "repeat", "cache", "drop_remainder"):
        check_bool(flag, locals()[flag])
    if labels is not None:
        if not isinstance(labels, np.ndarray):
            raise TypeError(f"labels must be a NumPy array or None, got {type(labels).__name__}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match images, "
                f"got {labels.shape}"
            )

    if subset is not None:
        images = images[:subset]
        labels = labels[:subset] if labels is not None else None
    if binarize == "static":
        images = binarize_static(images, seed=seed)
        scale = 1.0
    else:
        scale = 1.0 / 255.0
    if add_channel and images.ndim == 3:
        images = images[..., None]

    def to_float(x):
        x = tf.cast(x, tf.float32) * scale
        if binarize == "threshold":
            x = tf.cast(x > 0.5, tf.float32)
        return x

    if labels is None:
        ds = tf.data.Dataset.from_tensor_slices(images).map(to_float, tf.data.AUTOTUNE)
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32))).map(
            lambda x, y: (to_float(x), y), tf.data.AUTOTUNE
        )
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(
            min(len(images), 60000), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if binarize == "dynamic":
        # Each batch gets a stateless draw keyed by a number from a seeded random stream that
        # is re-randomised every epoch: fresh binarisation every time an example is seen, yet
        # the same sequence on every run with the same seed.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def resample(key, batch):
            x = batch[0] if labels is not None else batch
            pair = tf.stack([tf.constant(seed, tf.int64), key])
            noise = tf.random.stateless_uniform(tf.shape(x), seed=pair)
            binary = tf.cast(noise < x, tf.float32)
            return (binary, batch[1]) if labels is not None else binary

        ds = tf.data.Dataset.zip(keys, ds).map(resample, tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
