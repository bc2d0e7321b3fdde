"""The evidence lower bound (ELBO) and its importance-weighted tightening, per example.

* :func:`analytic_kl` and :func:`sampled_kl`: ``KL(q || p)`` in closed form or by one sample;
* :func:`elbo_terms`: a one-sample ELBO estimate, split into reconstruction and KL;
* :func:`importance_weighted_log_likelihood`: the ``k``-sample bound of Burda et al. (2015).

Every function works on tensors and returns one value **per example** (nats), so that a test can
compare it with a hand computation and a notebook can average or sum as it needs. The encoder,
decoder and prior can be any callables returning TFP distributions
(:mod:`tfpcourse.networks` has the course's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse._validate import check_choice, check_int

tfd = tfp.distributions

__all__ = [
    "ElboTerms",
    "analytic_kl",
    "elbo_terms",
    "importance_weighted_log_likelihood",
    "sampled_kl",
]


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
