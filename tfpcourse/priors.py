"""Priors ``p(z)`` over a VAE's latent space: the fixed standard Normal and a learnable mixture.

Any TFP distribution over latents can be a prior; the two here are the ones the chapters use.
A prior's variables (if any) appear in ``prior.trainable_variables`` and are trained with the
rest of the model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse._validate import check_int, check_number

tfd = tfp.distributions

__all__ = ["mixture_prior", "standard_normal_prior"]


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
