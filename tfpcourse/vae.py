"""Variational autoencoders: encoders, decoders, priors, losses and a compiled training loop.

The pieces follow the chapters' vocabulary:

* an **encoder** maps images ``x`` to the approximate posterior ``q(z | x)``, a
  ``tfd.MultivariateNormalDiag`` (softplus scales);
* a **decoder** maps latents ``z`` to the likelihood ``p(x | z)``, an
  ``Independent(Bernoulli(logits), 3)`` over binary images;
* a **prior** ``p(z)`` is any TFP distribution over latents: :func:`standard_normal_prior`, or
  :func:`mixture_prior` whose parameters are variables trained with the rest;
* :class:`VAE` joins them and defines the loss, either the negative ELBO (``regularizer="kl"``)
  or the MMD-VAE / InfoVAE objective (``regularizer="mmd"``);
* :func:`fit` trains any model with a ``loss(x, seed)`` method and ``trainable_variables``
  using one compiled step (traced once), per-epoch metrics, a progress bar and checkpoints
  that let an interrupted run resume where it stopped.

Loss functions work on tensors and return one value **per example** (nats), so that a test can
compare them with a hand computation and a notebook can average or sum them as it needs.

Encoders and decoders hold Keras 3 networks inside a ``tf.Module``. ``tf.Module`` does not see
Keras 3 variables by itself, so every container here defines ``trainable_variables``
explicitly (a test checks the counts).
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse._validate import check_bool, check_choice, check_int, check_number

tfd = tfp.distributions

__all__ = [
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

SCALE_FLOOR = 1e-5
"""Added to every softplus scale, so that a posterior can never collapse to a zero scale (an
infinite log-density)."""

IMAGE_SHAPE = (28, 28, 1)
KINDS = ("conv", "mlp")


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def _check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, int | str) or len(shape) == 0:
        raise TypeError(f"{name} must be a sequence of dimensions, got {shape!r}")
    return tuple(check_int(f"{name}[i]", d, minimum=1) for d in shape)


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int | str) or len(hidden) == 0:
        raise TypeError(f"hidden must be a non-empty sequence of layer widths, got {hidden!r}")
    return tuple(check_int("hidden[i]", h, minimum=1) for h in hidden)


def _check_filters(filters: Sequence[int]) -> tuple[int, int]:
    if isinstance(filters, int | str) or len(filters) != 2:
        raise TypeError(f"filters must be a pair of channel counts, got {filters!r}")
    return tuple(check_int("filters[i]", f, minimum=1) for f in filters)  # type: ignore[return-value]


def _check_inputs(name: str, x: Any, shape: tuple[int, ...]) -> tf.Tensor:
    x = tf.convert_to_tensor(x, dtype=tf.float32)
    got = tuple(x.shape[1:])
    if x.shape.rank != len(shape) + 1 or any(
        g is not None and g != s for g, s in zip(got, shape)
    ):
        raise ValueError(
            f"{name} must have shape (batch, {', '.join(map(str, shape))}), "
            f"got {tuple(x.shape)}"
        )
    return x


class Encoder(tf.Module):
    """An amortised posterior: ``x -> q(z | x) = MultivariateNormalDiag(loc, scale)``.

    Parameters
    ----------
    latent_dim:
        Size of ``z``.
    kind:
        ``"conv"`` (two stride-2 3x3 convolutions with ``filters`` channels, then a dense
        layer) or ``"mlp"`` (dense layers of widths ``hidden``).
    hidden:
        Widths of the dense hidden layers (``"mlp"``), default ``(512, 256)``.
    filters:
        Channels of the two convolutions (``"conv"``), default ``(32, 64)``.
    image_shape:
        Shape of one image, default ``(28, 28, 1)``.

    The last layer outputs ``2 * latent_dim`` numbers: the mean and an unconstrained scale that
    ``softplus(.) + SCALE_FLOOR`` makes positive.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        kind: str = "conv",
        hidden: Sequence[int] = (512, 256),
        filters: Sequence[int] = (32, 64),
        image_shape: Sequence[int] = IMAGE_SHAPE,
        name: str = "encoder",
    ) -> None:
        super().__init__(name=name)
        import keras

        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        self.kind = check_choice("kind", kind, KINDS)
        self.image_shape = _check_shape("image_shape", image_shape)
        layers: list[Any] = [keras.Input(self.image_shape)]
        if self.kind == "conv":
            layers += [
                keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")
                for f in _check_filters(filters)
            ]
            layers.append(keras.layers.Flatten())
        else:
            layers.append(keras.layers.Flatten())
            layers += [keras.layers.Dense(h, activation="relu") for h in _check_hidden(hidden)]
        layers.append(keras.layers.Dense(2 * self.latent_dim))
        self.net = keras.Sequential(layers, name=f"{name}_net")

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return tuple(self.net.trainable_variables)

    def __call__(self, x: Any) -> tfd.MultivariateNormalDiag:
        """The posterior ``q(z | x)``: batch shape ``[batch]``, event shape ``[latent_dim]``."""
        x = _check_inputs("x", x, self.image_shape)
        loc, raw_scale = tf.split(self.net(x), 2, axis=-1)
        return tfd.MultivariateNormalDiag(
            loc=loc, scale_diag=tf.nn.softplus(raw_scale) + SCALE_FLOOR
        )


class Decoder(tf.Module):
    """A likelihood: ``z -> p(x | z) = Independent(Bernoulli(logits), 3)`` over binary images.

    Parameters
    ----------
    latent_dim:
        Size of ``z``.
    kind:
        ``"conv"`` (a dense layer to 7x7x32, two stride-2 3x3 transposed convolutions with
        ``filters`` channels, and a 3x3 convolution to one logit per pixel) or ``"mlp"`` (dense
        layers of widths ``hidden``, then one logit per pixel).
    hidden:
        Widths of the dense hidden layers (``"mlp"``), default ``(256, 512)``.
    filters:
        Channels of the two transposed convolutions (``"conv"``), default ``(32, 16)`` (the
        28x28 layer dominates the cost, so it is kept narrow).
    image_shape:
        Shape of one image, default ``(28, 28, 1)``; ``"conv"`` needs 28x28.
    """

    def __init__(
        self,
        latent_dim: int,
        *,
        kind: str = "conv",
        hidden: Sequence[int] = (256, 512),
        filters: Sequence[int] = (32, 16),
        image_shape: Sequence[int] = IMAGE_SHAPE,
        name: str = "decoder",
    ) -> None:
        super().__init__(name=name)
        import keras

        self.latent_dim = check_int("latent_dim", latent_dim, minimum=1)
        self.kind = check_choice("kind", kind, KINDS)
        self.image_shape = _check_shape("image_shape", image_shape)
        layers: list[Any] = [keras.Input((self.latent_dim,))]
        if self.kind == "conv":
            if self.image_shape[:2] != (28, 28):
                raise ValueError(
                    f"the conv decoder makes 28x28 images, got image_shape {self.image_shape}"
                )
            layers += [
                keras.layers.Dense(7 * 7 * 32, activation="relu"),
                keras.layers.Reshape((7, 7, 32)),
                *(keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same",
                                               activation="relu")
                  for f in _check_filters(filters)),
                keras.layers.Conv2D(self.image_shape[-1], 3, padding="same"),
            ]
        else:
            layers += [keras.layers.Dense(h, activation="relu") for h in _check_hidden(hidden)]
            layers += [
                keras.layers.Dense(int(np.prod(self.image_shape))),
                keras.layers.Reshape(self.image_shape),
            ]
        self.net = keras.Sequential(layers, name=f"{name}_net")

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return tuple(self.net.trainable_variables)

    def logits(self, z: Any) -> tf.Tensor:
        """The Bernoulli logits, shape ``(batch, *image_shape)``."""
        z = _check_inputs("z", z, (self.latent_dim,))
        return self.net(z)

    def __call__(self, z: Any) -> tfd.Independent:
        """The likelihood ``p(x | z)``: batch shape ``[batch]``, event shape ``image_shape``."""
        return tfd.Independent(
            tfd.Bernoulli(logits=self.logits(z), dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.image_shape),
        )


# --------------------------------------------------------------------------------------------
# Priors
# --------------------------------------------------------------------------------------------


def standard_normal_prior(latent_dim: int) -> tfd.MultivariateNormalDiag:
    """The fixed prior ``N(0, I)`` over ``latent_dim`` dimensions (no trainable variables)."""
    latent_dim = check_int("latent_dim", latent_dim, minimum=1)
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros(latent_dim), scale_diag=tf.ones(latent_dim), name="standard_normal_prior"
    )


def mixture_prior(
    latent_dim: int, components: int = 16, *, seed: int = 0, spread: float = 1.0
) -> tfd.MixtureSameFamily:
    """A learnable prior: a mixture of ``components`` diagonal Gaussians.

    Its mixture logits, means and (softplus-transformed) scales are variables, so
    ``prior.trainable_variables`` lists them and training the VAE trains the prior too.

    Parameters
    ----------
    latent_dim:
        Size of ``z``.
    components:
        Number of Gaussians (>= 1).
    seed:
        Seeds the initial means, drawn from ``N(0, spread^2 I)`` so that the components start
        apart; the scales start at 1 and the weights equal.
    """
    latent_dim = check_int("latent_dim", latent_dim, minimum=1)
    components = check_int("components", components, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    spread = check_number("spread", spread, minimum=0.0)
    rng = np.random.default_rng(seed)
    locs = (spread * rng.standard_normal((components, latent_dim))).astype(np.float32)
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(
            logits=tf.Variable(tf.zeros(components), name="mixture_logits")
        ),
        components_distribution=tfd.MultivariateNormalDiag(
            loc=tf.Variable(locs, name="component_locs"),
            scale_diag=tfp.util.TransformedVariable(
                tf.ones((components, latent_dim)), tfp.bijectors.Softplus(),
                name="component_scales",
            ),
        ),
        name="mixture_prior",
    )


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def analytic_kl(q: tfd.Distribution, p: tfd.Distribution) -> tf.Tensor:
    """``KL(q || p)`` in closed form, one value per batch member.

    Raises
    ------
    ValueError
        If TFP has no closed form for this pair (e.g. a Gaussian against a mixture): use
        :func:`sampled_kl` instead.
    """
    try:
        return tfd.kl_divergence(q, p)
    except NotImplementedError as err:
        raise ValueError(
            f"no closed-form KL between {type(q).__name__} and {type(p).__name__}; "
            f"estimate it by sampling with sampled_kl(q, p, z) (or kl='sampled')"
        ) from err


def sampled_kl(q: tfd.Distribution, p: tfd.Distribution, z: Any) -> tf.Tensor:
    """The one-sample (per ``z``) Monte Carlo estimate ``log q(z) - log p(z)`` of ``KL(q || p)``.

    ``z`` must be drawn from ``q``; its leading dimensions are sample dimensions. The estimate is
    unbiased but noisy, and works for any pair of distributions with a ``log_prob``.
    """
    return q.log_prob(z) - p.log_prob(z)


class ElboTerms(NamedTuple):
    """The parts of the evidence lower bound, one value per example (nats).

    ``elbo = reconstruction - kl``, where ``reconstruction = E_q[log p(x | z)]`` (estimated with
    one sample) and ``kl = KL(q(z | x) || p(z))`` (closed form or sampled).
    """

    elbo: tf.Tensor
    reconstruction: tf.Tensor
    kl: tf.Tensor


def elbo_terms(
    x: Any,
    encoder: Callable[[Any], tfd.Distribution],
    decoder: Callable[[Any], tfd.Distribution],
    prior: tfd.Distribution,
    *,
    seed: Any,
    kl: str = "analytic",
) -> ElboTerms:
    """A one-sample estimate of the ELBO of each example in ``x``.

    Parameters
    ----------
    x:
        A batch of images.
    encoder, decoder, prior:
        ``q(z | x)``, ``p(x | z)`` and ``p(z)`` as above.
    seed:
        A stateless seed (``[2]`` int tensor) for the reparameterised sample ``z ~ q(z | x)``.
    kl:
        ``"analytic"`` (closed form; raises if there is none), ``"sampled"``
        (``log q(z) - log p(z)`` at the same ``z``), or ``"auto"`` (closed form when it exists).
    """
    check_choice("kl", kl, ("analytic", "sampled", "auto"))
    q = encoder(x)
    z = q.sample(seed=seed)
    return _terms_at(x, q, z, decoder, prior, kl)


def _terms_at(x: Any, q: Any, z: Any, decoder: Any, prior: Any, kl: str) -> ElboTerms:
    """The ELBO terms of ``x`` at the posterior sample ``z ~ q`` (``kl`` as in elbo_terms)."""
    reconstruction = decoder(z).log_prob(x)
    if kl == "sampled":
        kl_value = sampled_kl(q, prior, z)
    elif kl == "analytic":
        kl_value = analytic_kl(q, prior)
    else:
        try:
            kl_value = tfd.kl_divergence(q, prior)
        except NotImplementedError:
            kl_value = sampled_kl(q, prior, z)
    return ElboTerms(reconstruction - kl_value, reconstruction, kl_value)


def importance_weighted_log_likelihood(
    x: Any,
    encoder: Callable[[Any], tfd.Distribution],
    decoder: Callable[[Any], tfd.Distribution],
    prior: tfd.Distribution,
    *,
    k: int,
    seed: Any,
) -> tf.Tensor:
    """The importance-weighted bound ``log (1/k) sum_i p(x, z_i) / q(z_i | x)`` per example.

    With ``k = 1`` it is a one-sample ELBO estimate; it rises towards ``log p(x)`` as ``k``
    grows (Burda et al., 2015), so ``-`` its mean is the usual "IWAE NLL" estimate.
    """
    k = check_int("k", k, minimum=1)
    q = encoder(x)
    z = q.sample(k, seed=seed)  # [k, batch, latent]
    batch = tf.shape(z)[1]
    flat = tf.reshape(z, [-1, z.shape[-1]])
    x_tiled = tf.reshape(
        tf.broadcast_to(x[tf.newaxis], tf.concat([[k], tf.shape(x)], 0)),
        tf.concat([[-1], tf.shape(x)[1:]], 0),
    )
    log_px_z = tf.reshape(decoder(flat).log_prob(x_tiled), [k, batch])
    log_w = log_px_z + prior.log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


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


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` did. ``train[name][i]`` is the mean of metric ``name`` over epoch
    ``i``'s batches (measured while training); ``valid[name][i]`` the mean over the validation
    data after epoch ``i``. After a resumed run, the lists also hold the earlier epochs."""

    train: dict[str, list[float]] = field(default_factory=dict)
    valid: dict[str, list[float]] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    resumed_from_epoch: int = 0
    steps: int = 0
    seconds: float = 0.0
    traces: int = 0

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train,
            "valid": self.valid,
            "epoch_seconds": self.epoch_seconds,
            "steps": self.steps,
        }


def _check_model(model: Any) -> list[tf.Variable]:
    if not callable(getattr(model, "loss", None)):
        raise TypeError(
            f"model must have a loss(x, seed) method returning (loss, metrics), "
            f"got {type(model).__name__}"
        )
    variables = list(getattr(model, "trainable_variables", ()))
    if not variables:
        raise ValueError(
            f"model {type(model).__name__} has no trainable variables: nothing to train. "
            "Keras 3 layers inside a tf.Module are not found by tf.Module itself; the module "
            "must list them in a trainable_variables property (as Encoder and Decoder do)."
        )
    return variables


def _check_dataset(name: str, dataset: Any) -> tf.TensorSpec:
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"{name} must be a tf.data.Dataset of image batches (see "
            f"tfpcourse.pipelines.image_dataset), got {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None or spec.shape.rank < 2:
        raise ValueError(
            f"{name} must yield batches of images alone (one tensor of shape (batch, ...)); "
            f"got elements {spec}. Build it without labels."
        )
    return tf.TensorSpec((None, *spec.shape[1:]), tf.float32)


def _fold_in(seed: tf.Tensor, index: Any) -> tf.Tensor:
    """A child stateless seed for ``index`` (an int or an int64 counter), as the ``int32``
    pair that TFP's samplers take."""
    child = tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))
    return tf.cast(child, tf.int32)


# Compiled evaluators, one per (model, input spec), so repeated evaluation never retraces.
_EVALUATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _evaluator(model: Any, spec: tf.TensorSpec) -> Any:
    per_model = _EVALUATORS.setdefault(model, {})
    key = (tuple(spec.shape), spec.dtype.name)
    if key not in per_model:
        # A weak reference: a closure over the model itself would keep every evaluated model
        # alive through the WeakKeyDictionary's value (a leak).
        model_ref = weakref.ref(model)

        @tf.function(input_signature=[spec, tf.TensorSpec([2], tf.int32)])
        def evaluate_batch(x, seed):
            _, metrics = model_ref().loss(x, seed)
            return metrics

        per_model[key] = evaluate_batch
    return per_model[key]


def evaluate(model: Any, dataset: Any, *, seed: int = 0) -> dict[str, float]:
    """Mean metrics of ``model.loss`` over a dataset (weighted by batch size), compiled.

    The random draws use stateless seeds derived from ``seed`` and the batch index, so the same
    call gives the same numbers.
    """
    _check_model(model)
    spec = _check_dataset("dataset", dataset)
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    step = _evaluator(model, spec)
    base = tf.constant([seed, 1], tf.int32)
    sums: dict[str, float] = {}
    count = 0
    for i, x in enumerate(dataset):
        metrics = step(x, _fold_in(base, i))
        n = int(x.shape[0])
        for name, value in metrics.items():
            sums[name] = sums.get(name, 0.0) + float(value) * n
        count += n
    if count == 0:
        raise ValueError("dataset is empty")
    return {name: total / count for name, total in sums.items()}


def fit(
    model: Any,
    train: Any,
    *,
    epochs: int,
    valid: Any = None,
    learning_rate: float = 1e-3,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    keep_checkpoints: int = 2,
    progress: bool = False,
    jit_compile: bool = False,
) -> History:
    """Train ``model`` with Adam for ``epochs`` epochs, one compiled step per batch.

    Parameters
    ----------
    model:
        Anything with ``loss(x, seed) -> (loss, metrics)`` and ``trainable_variables``
        (e.g. :class:`VAE`).
    train, valid:
        ``tf.data.Dataset`` of image batches (see :func:`tfpcourse.pipelines.image_dataset`).
        ``valid`` is evaluated after every epoch.
    epochs:
        The total number of epochs. With a checkpoint from an earlier run, training continues
        from the saved epoch up to this number.
    learning_rate:
        Adam's step size.
    seed:
        Base of the stateless seeds of each step (``fold_in(seed, step)``), so a run is
        repeatable. The step counter is checkpointed, so a resumed run continues the same
        stream of latent noise (the data pipeline restarts its own shuffling).
    checkpoint_dir:
        Save the model, the optimizer state, the epoch counter and the history here after every
        epoch, and resume from the latest save if one exists.
    keep_checkpoints:
        How many recent checkpoints to keep.
    progress:
        Show a progress bar over epochs with the latest metrics.
    jit_compile:
        Compile the step with XLA (measure first: on small CPUs it is often no faster).

    Returns
    -------
    History
        Per-epoch metrics, timings, and how many times the step was traced (1 is expected).
    """
    import keras

    variables = _check_model(model)
    spec = _check_dataset("train", train)
    if valid is not None:
        _check_dataset("valid", valid)
    epochs = check_int("epochs", epochs, minimum=1)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0,
                                 strict_minimum=True)
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    keep_checkpoints = check_int("keep_checkpoints", keep_checkpoints, minimum=1)
    check_bool("progress", progress)
    check_bool("jit_compile", jit_compile)

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)  # slot variables exist before any restore or trace
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    epoch_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    base_seed = tf.constant([seed, 0], tf.int32)

    history = History()
    manager = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=step_counter, epoch=epoch_counter
        )
        manager = tf.train.CheckpointManager(
            checkpoint, str(checkpoint_dir), max_to_keep=keep_checkpoints
        )
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            saved = checkpoint_dir / "history.json"
            if saved.exists():
                data = json.loads(saved.read_text())
                history.train = {k: list(v) for k, v in data["train"].items()}
                history.valid = {k: list(v) for k, v in data["valid"].items()}
                history.epoch_seconds = list(data["epoch_seconds"])
                history.steps = int(data["steps"])
            history.resumed_from_epoch = int(epoch_counter.numpy())

    @tf.function(input_signature=[spec], jit_compile=jit_compile)
    def train_step(x):
        step_seed = _fold_in(base_seed, step_counter)
        with tf.GradientTape() as tape:
            loss, metrics = model.loss(x, step_seed)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        step_counter.assign_add(1)
        return metrics

    bar = None
    start_epoch = int(epoch_counter.numpy())
    if progress and start_epoch < epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch")
    start = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        batch_metrics, sizes = [], []
        for x in train:
            batch_metrics.append(train_step(x))
            sizes.append(int(x.shape[0]))
        if not sizes:
            raise ValueError("train is empty")
        weights = np.asarray(sizes, dtype=np.float64) / sum(sizes)
        for name in batch_metrics[0]:
            value = float(np.dot(weights, [float(m[name]) for m in batch_metrics]))
            history.train.setdefault(name, []).append(value)
        history.steps += len(sizes)
        history.epoch_seconds.append(time.perf_counter() - t0)
        if valid is not None:
            for name, value in evaluate(model, valid, seed=seed).items():
                history.valid.setdefault(name, []).append(value)
        epoch_counter.assign(epoch + 1)
        if manager is not None:
            manager.save(checkpoint_number=epoch + 1)
            (checkpoint_dir / "history.json").write_text(json.dumps(history.to_dict()))
        if bar is not None:
            shown = {"loss": history.train["loss"][-1]}
            if valid is not None:
                shown["valid loss"] = history.valid["loss"][-1]
            bar.set_postfix({k: f"{v:.2f}" for k, v in shown.items()})
            bar.update(1)
    if bar is not None:
        bar.close()
    history.seconds = time.perf_counter() - start
    history.traces = train_step.experimental_get_tracing_count()
    return history


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
        spec = _check_dataset("images", images)
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
    values = [bound(x, _fold_in(base, i)).numpy() for i, x in enumerate(dataset)]
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
