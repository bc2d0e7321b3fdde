"""Variational autoencoders: the model, and how to score it.

A VAE is built from parts that each live in their own module:

* :mod:`tfpcourse.networks`: :class:`Encoder` ``x -> q(z | x)`` and :class:`Decoder`
  ``z -> p(x | z)``;
* :mod:`tfpcourse.priors`: :func:`standard_normal_prior` and the learnable :func:`mixture_prior`;
* :mod:`tfpcourse.elbo`: the ELBO's terms (:func:`elbo_terms`, :func:`analytic_kl`,
  :func:`sampled_kl`) and the importance-weighted bound;
* :mod:`tfpcourse.mmd`: the maximum mean discrepancy of the MMD-VAE;
* :mod:`tfpcourse.training`: the course's one training loop, :func:`fit`, and :func:`evaluate`.

This module joins them: :class:`VAE` holds an encoder, a decoder and a prior and defines the
training loss, either the negative ELBO (``regularizer="kl"``) or the MMD-VAE / InfoVAE
objective (``regularizer="mmd"``), in the contract :func:`tfpcourse.training.fit` trains. The
rest scores a trained model: importance-weighted NLL estimates, posterior moments of many
images, and a table of metrics.

Every name above is importable from here too (``vae.Encoder``, ``vae.fit``, ...), as the
chapters use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse._validate import check_choice, check_int, check_number
from tfpcourse.elbo import (
    ElboTerms,
    _terms_at,
    analytic_kl,
    elbo_terms,
    importance_weighted_log_likelihood,
    sampled_kl,
)
from tfpcourse.mmd import gaussian_kernel, mmd, pairwise_squared_distances
from tfpcourse.networks import IMAGE_SHAPE, KINDS, SCALE_FLOOR, Decoder, Encoder
from tfpcourse.priors import mixture_prior, standard_normal_prior
from tfpcourse.seeding import fold_in
from tfpcourse.training import History, _check_dataset, evaluate, fit

tfd = tfp.distributions

__all__ = [
    "IMAGE_SHAPE",
    "KINDS",
    "SCALE_FLOOR",
    "VAE",
    "Decoder",
    "ElboTerms",
    "Encoder",
    "History",
    "IWAEResult",
    "analytic_kl",
    "elbo_terms",
    "evaluate",
    "fit",
    "gaussian_kernel",
    "importance_weighted_log_likelihood",
    "importance_weighted_log_likelihoods",
    "importance_weighted_nll",
    "interpolate",
    "metrics_table",
    "mixture_prior",
    "mmd",
    "pairwise_squared_distances",
    "posterior_moments",
    "sampled_kl",
    "standard_normal_prior",
]


def interpolate(z_start: Any, z_end: Any, steps: int) -> np.ndarray:
    """``steps`` points on the straight line from ``z_start`` to ``z_end`` (both included)."""
    steps = check_int("steps", steps, minimum=2)
    a = np.asarray(z_start, dtype=np.float32)
    b = np.asarray(z_end, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"z_start and z_end must be vectors of the same size, got {a.shape} and {b.shape}"
        )
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (1.0 - t) * a + t * b




def _check_images_alone(x: Any) -> None:
    if tf.nest.is_nested(x):
        raise ValueError(
            "a VAE trains on batches of images alone (one tensor of shape (batch, ...)), got "
            f"a {type(x).__name__} of {len(tf.nest.flatten(x))} tensors. Build the dataset "
            "without labels."
        )


def _check_image_dataset(name: str, dataset: Any) -> tf.TensorSpec:
    spec = _check_dataset(name, dataset)
    if tf.nest.is_nested(spec) or spec.shape.rank < 2:
        raise ValueError(
            f"{name} must yield batches of images alone (one tensor of shape (batch, ...)); "
            f"got elements {dataset.element_spec}. Build it without labels."
        )
    return spec


class VAE(tf.Module):
    """A variational autoencoder: encoder, decoder and prior, with its training loss.

    Parameters
    ----------
    encoder, decoder:
        :class:`Encoder` and :class:`Decoder` (or any modules returning distributions, with
        ``trainable_variables``).
    prior:
        A TFP distribution over ``z`` (its variables, if any, are trained too).
    regularizer:
        ``"kl"``: minimise the negative ELBO, ``-(reconstruction) + beta * KL``.
        ``"mmd"``: the MMD-VAE (InfoVAE) objective, ``-(reconstruction) + mmd_weight *
        MMD(q(z), p(z))``, where the MMD compares the batch's latent codes with as many prior
        samples.
    kl:
        How the KL is computed (see :func:`elbo_terms`); ``"auto"`` by default.
    beta:
        Weight of the KL (1 gives the ELBO).
    mmd_weight:
        Weight of the MMD (``regularizer="mmd"``).

    ``loss(x, seed)`` returns ``(loss, metrics)``; the metrics are batch means of ``loss``,
    ``elbo``, ``reconstruction`` (``E_q log p(x|z)``), ``kl`` and, for MMD-VAEs, ``mmd``.
    """

    def __init__(
        self,
        encoder: Any,
        decoder: Any,
        prior: tfd.Distribution,
        *,
        regularizer: str = "kl",
        kl: str = "auto",
        beta: float = 1.0,
        mmd_weight: float = 100.0,
        name: str = "vae",
    ) -> None:
        super().__init__(name=name)
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.regularizer = check_choice("regularizer", regularizer, ("kl", "mmd"))
        self.kl = check_choice("kl", kl, ("analytic", "sampled", "auto"))
        self.beta = check_number("beta", beta, minimum=0.0)
        self.mmd_weight = check_number("mmd_weight", mmd_weight, minimum=0.0)
        for part in ("encoder", "decoder"):
            if not callable(getattr(self, part)):
                raise TypeError(f"{part} must be callable, got {type(getattr(self, part))}")
        if not hasattr(prior, "log_prob"):
            raise TypeError(f"prior must be a TFP distribution, got {type(prior).__name__}")
        latent = getattr(encoder, "latent_dim", None)
        if latent is not None and tuple(prior.event_shape) != (latent,):
            raise ValueError(
                f"prior's event shape must be [{latent}] to match the encoder's latent_dim, "
                f"got {list(prior.event_shape)}"
            )

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return (
            tuple(self.encoder.trainable_variables)
            + tuple(self.decoder.trainable_variables)
            + tuple(self.prior.trainable_variables)
        )

    @property
    def latent_dim(self) -> int:
        return int(self.prior.event_shape[-1])

    def elbo(self, x: Any, seed: Any) -> ElboTerms:
        """One-sample ELBO terms per example (see :func:`elbo_terms`)."""
        return elbo_terms(x, self.encoder, self.decoder, self.prior, seed=seed, kl=self.kl)

    def loss(self, x: Any, seed: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The training loss of a batch and its metrics (batch means, in nats per image)."""
        _check_images_alone(x)
        if self.regularizer == "kl":
            terms = self.elbo(x, seed)
            loss = tf.reduce_mean(-terms.reconstruction + self.beta * terms.kl)
            metrics = {}
        else:
            seed_z, seed_prior = tfp.random.split_seed(seed, n=2)
            q = self.encoder(x)
            z = q.sample(seed=seed_z)
            terms = _terms_at(x, q, z, self.decoder, self.prior, self.kl)
            z_prior = self.prior.sample(tf.shape(z)[0], seed=seed_prior)
            penalty = mmd(z, z_prior)
            loss = tf.reduce_mean(-terms.reconstruction) + self.mmd_weight * penalty
            metrics = {"mmd": penalty}
        metrics = {
            "loss": loss,
            "elbo": tf.reduce_mean(terms.elbo),
            "reconstruction": tf.reduce_mean(terms.reconstruction),
            "kl": tf.reduce_mean(terms.kl),
            **metrics,
        }
        return loss, metrics

    def encode(self, x: Any) -> tf.Tensor:
        """The posterior means ``E[z | x]`` (a deterministic code for plots)."""
        return self.encoder(x).mean()

    def decode(self, z: Any) -> tf.Tensor:
        """Pixel probabilities ``E[x | z]`` (images to show, not binary samples)."""
        return tf.sigmoid(self.decoder.logits(z))

    def reconstruct(self, x: Any) -> tf.Tensor:
        """Pixel probabilities decoded from the posterior means of ``x``."""
        return self.decode(self.encode(x))

    def sample(self, n: int, seed: Any) -> tf.Tensor:
        """Pixel probabilities of ``n`` images decoded from ``z ~ p(z)``."""
        n = check_int("n", n, minimum=1)
        return self.decode(self.prior.sample(n, seed=seed))


class IWAEResult(NamedTuple):
    """An importance-weighted estimate of the test NLL: mean and standard error over images
    (nats), with ``k`` samples per image over ``n`` images."""

    nll: float
    stderr: float
    k: int
    n: int


def importance_weighted_log_likelihoods(
    model: VAE, images: Any, *, k: int = 100, seed: int = 0, batch_size: int = 20
) -> np.ndarray:
    """The ``k``-sample importance-weighted bound ``L_k`` of every image (nats), shape ``(n,)``.

    Keep the values per image to compare two models image by image (a paired difference has a
    much smaller standard error than either mean). ``images`` is a ``tf.data.Dataset`` of
    batches or an array ``(n, *image_shape)`` of binary images. Images are processed
    ``batch_size`` at a time (the decoder then runs on ``batch_size * k`` latent samples at
    once); the draws depend on ``seed`` and on ``batch_size``, not on how ``images`` was batched.
    """
    k = check_int("k", k, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if isinstance(images, tf.data.Dataset):
        spec = _check_image_dataset("images", images)
        # Re-batch: the decoder sees batch_size * k images at once, so the caller's (possibly
        # large) evaluation batches must not set the memory use.
        dataset = images.unbatch().batch(batch_size)
    else:
        array = np.asarray(images, dtype=np.float32)
        if array.ndim < 2 or array.shape[0] == 0:
            raise ValueError(f"images must be a non-empty batch of images, got {array.shape}")
        dataset = tf.data.Dataset.from_tensor_slices(array).batch(batch_size)
        spec = tf.TensorSpec((None, *array.shape[1:]), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([2], tf.int32)])
    def bound(x, seed_):
        return importance_weighted_log_likelihood(
            x, model.encoder, model.decoder, model.prior, k=k, seed=seed_
        )

    base = tf.constant([seed, 2], tf.int32)
    values = [bound(x, fold_in(base, i)).numpy() for i, x in enumerate(dataset)]
    return np.concatenate(values).astype(np.float64)


def importance_weighted_nll(
    model: VAE, images: Any, *, k: int = 100, seed: int = 0, batch_size: int = 20
) -> IWAEResult:
    """Estimate ``-log p(x)`` averaged over ``images`` with the ``k``-sample importance-weighted
    bound (an upper bound on the NLL that tightens as ``k`` grows).

    The mean and standard error over images of :func:`importance_weighted_log_likelihoods`
    (same arguments, same draws), with the sign flipped.
    """
    nll = -importance_weighted_log_likelihoods(
        model, images, k=k, seed=seed, batch_size=batch_size
    )
    return IWAEResult(
        float(nll.mean()), float(nll.std(ddof=1) / np.sqrt(len(nll))) if len(nll) > 1 else 0.0,
        k, len(nll),
    )


def posterior_moments(
    model: VAE, images: Any, *, batch_size: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations of ``q(z | x)`` for many images, encoded batch by batch.

    ``images`` is an array ``(n, *image_shape)``; returns two arrays ``(n, latent)``. The
    batches bound the memory use, so a whole test set can be encoded in one call.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    array = np.asarray(images, dtype=np.float32)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(f"images must be a non-empty batch of images, got {array.shape}")
    locs, scales = [], []
    for start in range(0, len(array), batch_size):
        q = model.encoder(array[start:start + batch_size])
        locs.append(q.mean().numpy())
        scales.append(q.stddev().numpy())
    return np.concatenate(locs), np.concatenate(scales)


def metrics_table(results: Mapping[str, Mapping[str, float]], digits: int = 2) -> str:
    """Format ``{model name: {metric: value}}`` as an aligned text table."""
    names = list(results)
    columns = list(dict.fromkeys(c for r in results.values() for c in r))  # first-seen order
    width = max(len(n) for n in names)
    lines = [" " * width + "  " + "  ".join(f"{c:>14}" for c in columns)]
    for n in names:
        cells = [f"{results[n][c]:>14.{digits}f}" if c in results[n] else " " * 14
                 for c in columns]
        lines.append(f"{n:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
