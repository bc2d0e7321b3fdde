"""The networks of a variational autoencoder: an encoder ``x -> q(z | x)`` and a decoder
``z -> p(x | z)``.

* :class:`Encoder` maps images to the approximate posterior, a ``tfd.MultivariateNormalDiag``
  (softplus scales, never below :data:`SCALE_FLOOR`);
* :class:`Decoder` maps latents to the likelihood, an ``Independent(Bernoulli(logits), 3)`` over
  binary images.

Both hold a Keras 3 network inside a ``tf.Module``. ``tf.Module`` does not see Keras 3 variables
by itself, so each defines ``trainable_variables`` explicitly (a test checks the counts).

**Mixed precision.** The networks follow the Keras dtype policy in force when they are built
(``device.setup(mixed_precision=True)`` sets ``mixed_bfloat16`` on CPUs that have bfloat16
hardware, ``mixed_float16`` on GPUs): their layers then compute in 16 bits while their variables
stay float32. Their outputs are cast to float32 *before* any distribution is built, so
log-densities, KLs and the ELBO are always float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse._validate import check_choice, check_int

tfd = tfp.distributions

__all__ = ["IMAGE_SHAPE", "KINDS", "SCALE_FLOOR", "Decoder", "Encoder"]

SCALE_FLOOR = 1e-5
"""Added to every softplus scale, so that a posterior can never collapse to a zero scale (an
infinite log-density)."""

IMAGE_SHAPE = (28, 28, 1)
KINDS = ("conv", "mlp")


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
        # float32 whatever the layers compute in (see the module notes on mixed precision).
        loc, raw_scale = tf.split(tf.cast(self.net(x), tf.float32), 2, axis=-1)
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
        return tf.cast(self.net(z), tf.float32)

    def __call__(self, z: Any) -> tfd.Independent:
        """The likelihood ``p(x | z)``: batch shape ``[batch]``, event shape ``image_shape``."""
        return tfd.Independent(
            tfd.Bernoulli(logits=self.logits(z), dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.image_shape),
        )
