"""Normalizing flows: builders, and a container that keeps every trainable part tracked.

A flow here is a base distribution (a standard Normal in ``event_size`` dimensions) pushed
through a list of bijectors, the *layers*, applied in order from the base to the data. The
:class:`Flow` container is a ``tf.Module``: it holds the layers, so ``flow.trainable_variables``
finds every network inside them (TFP's ``AutoregressiveNetwork`` is a ``tf_keras`` layer, which
a Keras 3 ``Model`` would silently not track), and it builds them at construction, so the
variables exist before training starts.

Builders:

:func:`maf`       masked autoregressive flow (Papamakarios et al., 2017): fast density, slow
                  sampling.
:func:`iaf`       inverse autoregressive flow (Kingma et al., 2016): the inverse of a MAF,
                  fast sampling, slow density.
:func:`realnvp`   affine coupling layers (Dinh et al., 2017): fast in both directions.
:func:`spline`    rational-quadratic spline coupling layers (neural spline flows, Durkan et
                  al., 2019): coupling layers whose per-coordinate map is a monotone spline.

:func:`num_parameters` counts a flow's trainable numbers.

Train a flow with :func:`tfpcourse.training.fit_max_likelihood` on ``flow.distribution`` (it
runs the course's one training loop, :func:`tfpcourse.training.fit`).

This module imports TensorFlow (import it after ``tfpcourse.device.setup()``); the top-level
``tfpcourse`` package does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfpcourse._validate import check_int, check_number

__all__ = [
    "MLP",
    "BoundedMADE",
    "CouplingNet",
    "Flow",
    "LeakyReLU",
    "SplineNet",
    "iaf",
    "maf",
    "num_parameters",
    "realnvp",
    "spline",
]

tfb = tfp.bijectors


def _check_hidden(hidden_units: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden_units, int | str) or not hidden_units:
        raise TypeError(
            f"hidden_units must be a non-empty sequence of layer widths, got {hidden_units!r}"
        )
    return tuple(check_int("hidden_units[i]", h, minimum=1) for h in hidden_units)


def _compute_dtype() -> str:
    """The compute dtype of the Keras policy in force (``device.setup(mixed_precision=...)``)."""
    import keras

    return keras.mixed_precision.global_policy().compute_dtype


class MLP(tf.Module):
    """A small fully connected network made of plain variables.

    The last layer starts at zero, so a flow built from these networks starts as the
    identity map (or a fixed permutation): training begins from the base distribution
    itself, which is stable, instead of from a random warp.

    Built under a mixed-precision Keras policy, it multiplies in that policy's 16-bit type
    (float32 inputs are cast down, its float32 variables too) and returns float32.
    """

    def __init__(self, in_dim, hidden_units, out_dim, *, seed=0, zero_last=True,
                 name="mlp"):
        super().__init__(name=name)
        sizes = [in_dim, *hidden_units, out_dim]
        rng = np.random.default_rng(seed)
        self.weights, self.biases = [], []
        with self.name_scope:
            for i, (n_in, n_out) in enumerate(pairwise(sizes)):
                last = i == len(sizes) - 2
                limit = np.sqrt(6.0 / (n_in + n_out))  # Glorot uniform
                w = (np.zeros((n_in, n_out)) if last and zero_last
                     else rng.uniform(-limit, limit, (n_in, n_out)))
                self.weights.append(tf.Variable(w.astype(np.float32), name=f"w{i}"))
                self.biases.append(tf.Variable(tf.zeros(n_out), name=f"b{i}"))
        self.compute_dtype = _compute_dtype()

    def __call__(self, x):
        x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
        out_dtype = x.dtype
        low = self.compute_dtype != "float32" and out_dtype == tf.float32
        if low:
            x = tf.cast(x, self.compute_dtype)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if low:
                w, b = tf.cast(w, self.compute_dtype), tf.cast(b, self.compute_dtype)
            x = tf.matmul(x, w) + b
            if i < len(self.weights) - 1:
                x = tf.nn.relu(x)
        return tf.cast(x, out_dtype)

class CouplingNet(tf.Module):
    """``shift_and_log_scale_fn`` for ``tfb.RealNVP``: an MLP from the masked half to a
    shift and a log-scale for the other half. The log-scale is squashed by ``tanh`` (times
    ``max_log_scale``) so that no single layer can blow a density up or down by more than
    a factor ``exp(max_log_scale)`` per dimension: a standard trick for stable training."""

    def __init__(self, num_masked, num_out, hidden_units, *, seed=0, max_log_scale=2.0,
                 name="coupling"):
        super().__init__(name=name)
        self.net = MLP(num_masked, hidden_units, 2 * num_out, seed=seed)
        self.max_log_scale = float(max_log_scale)

    def __call__(self, x0, output_units, **kwargs):
        out = self.net(x0)
        shift, raw = tf.split(out, 2, axis=-1)
        return shift, self.max_log_scale * tf.tanh(raw / self.max_log_scale)

class SplineNet(tf.Module):
    """``bijector_fn`` for ``tfb.RealNVP``: an MLP from the kept coordinates to a
    ``tfb.RationalQuadraticSpline`` for each transformed coordinate.

    The spline maps ``[-bound, bound]`` onto itself through ``num_bins`` monotone
    rational-quadratic pieces and is the identity outside (linear tails). Per coordinate the
    network outputs ``num_bins`` widths and heights (through a softmax, each at least
    ``min_bin``) and ``num_bins - 1`` interior knot slopes (through a softplus, each at least
    ``min_slope``). Its last layer starts at zero, which gives equal bins and unit slopes: the
    identity map.
    """

    def __init__(self, num_masked, num_out, hidden_units, *, num_bins=8, bound=3.0, seed=0,
                 min_bin=1e-3, min_slope=1e-3, name="spline_net"):
        super().__init__(name=name)
        self.num_bins = check_int("num_bins", num_bins, minimum=2)
        self.bound = check_number("bound", bound, minimum=0.0, strict_minimum=True)
        self.min_bin = check_number("min_bin", min_bin, minimum=0.0, strict_minimum=True,
                                    maximum=2 * self.bound / self.num_bins)
        self.min_slope = check_number("min_slope", min_slope, minimum=0.0, strict_minimum=True,
                                      maximum=1.0)
        self.num_out = int(num_out)
        self.net = MLP(num_masked, hidden_units, num_out * (3 * self.num_bins - 1), seed=seed)
        # softplus(raw + offset) = 1 - min_slope at raw = 0: unit slopes at the start
        self._slope_offset = float(np.log(np.expm1(1.0 - self.min_slope)))

    def _bins(self, raw):
        span = 2 * self.bound - self.num_bins * self.min_bin
        return self.min_bin + span * tf.nn.softmax(raw, axis=-1)

    def spline_parameters(self, x0):
        """Bin widths, bin heights and knot slopes for the points ``x0`` (the kept part)."""
        out = self.net(x0)
        out = tf.reshape(out, tf.concat([tf.shape(out)[:-1],
                                         [self.num_out, 3 * self.num_bins - 1]], axis=0))
        k = self.num_bins
        widths, heights = self._bins(out[..., :k]), self._bins(out[..., k : 2 * k])
        slopes = self.min_slope + tf.nn.softplus(out[..., 2 * k :] + self._slope_offset)
        return widths, heights, slopes

    def __call__(self, x0, output_units, **kwargs):
        widths, heights, slopes = self.spline_parameters(x0)
        return tfb.RationalQuadraticSpline(bin_widths=widths, bin_heights=heights,
                                           knot_slopes=slopes, range_min=-self.bound)


class BoundedMADE(tf.Module):
    """``shift_and_log_scale_fn`` for ``tfb.MaskedAutoregressiveFlow``: TFP's MADE network with
    its log-scale squashed by ``tanh`` (times ``max_log_scale``), as :class:`CouplingNet` does.

    Without the bound, a MAF evaluated far from its training data can produce log-scales so
    large that ``exp`` overflows and the density becomes NaN. Holding the network in a
    ``tf.Module`` (not a lambda) keeps its variables tracked. It always computes in float32:
    TFP's ``AutoregressiveNetwork`` (a ``tf_keras`` layer) rejects the 16-bit inputs a
    mixed-precision policy would give it (checked with TFP 0.25).
    """

    def __init__(self, event_size, hidden_units, *, seed=0, max_log_scale=3.0, name="made"):
        super().__init__(name=name)
        self.made = tfb.AutoregressiveNetwork(
            params=2,
            hidden_units=list(hidden_units),
            event_shape=[event_size],
            activation="relu",
            kernel_initializer=tf_keras.initializers.GlorotUniform(seed=seed),
            name=name,
        )
        self.max_log_scale = float(max_log_scale)

    def __call__(self, x):
        out = self.made(x)
        shift, raw = tf.unstack(out, num=2, axis=-1)
        return shift, self.max_log_scale * tf.tanh(raw / self.max_log_scale)


class LeakyReLU(tfb.Bijector):
    """y = x for x >= 0 and alpha * x for x < 0, with alpha > 0 (element-wise).

    ``alpha`` may be a ``tfp.util.TransformedVariable`` (e.g. through ``Softplus``) to
    learn it while keeping it positive.
    """

    def __init__(self, alpha, validate_args=False, name="leaky_relu"):
        self.alpha = alpha if hasattr(alpha, "dtype") else tf.constant(alpha, tf.float32)
        super().__init__(forward_min_event_ndims=0, validate_args=validate_args, name=name)

    def _forward(self, x):
        return tf.where(x >= 0.0, x, self.alpha * x)

    def _inverse(self, y):
        return tf.where(y >= 0.0, y, y / self.alpha)

    def _forward_log_det_jacobian(self, x):
        alpha = tf.convert_to_tensor(self.alpha)
        return tf.where(x >= 0.0, tf.zeros_like(x), tf.math.log(alpha) * tf.ones_like(x))

class Flow(tf.Module):
    """A base standard Normal pushed through ``layers`` (applied base -> data, in order).

    Attributes
    ----------
    layers : list of bijectors, base to data.
    networks : the shift-and-log-scale network of each transforming layer, in the same order
        (``networks[0]`` is the first MAF, IAF or coupling layer's), to inspect or call.
    distribution : the ``TransformedDistribution`` to train and evaluate.
    bijector : the composed map, base -> data.
    """

    def __init__(self, layers, event_size, name="flow", networks=()):
        super().__init__(name=name)
        self.event_size = int(event_size)
        self.layers = list(layers)
        self.networks = list(networks)
        self.base = tfp.distributions.MultivariateNormalDiag(
            loc=tf.zeros(self.event_size), name="base"
        )
        self.bijector = tfb.Chain(list(reversed(self.layers)), name=f"{name}_chain")
        self.distribution = tfp.distributions.TransformedDistribution(
            self.base, self.bijector, name=name
        )
        # Build lazily created networks now, so their variables exist before training.
        self.distribution.log_prob(tf.zeros((1, self.event_size)))

    def log_prob(self, x):
        return self.distribution.log_prob(x)

    def sample(self, n, seed=None):
        return self.distribution.sample(n, seed=seed)

    def stages_forward(self, z):
        """The points after each layer, base -> data: ``[z, l1(z), l2(l1(z)), ...]``."""
        stages = [np.asarray(z)]
        x = tf.convert_to_tensor(z, tf.float32)
        for layer in self.layers:
            x = layer.forward(x)
            stages.append(x.numpy())
        return stages

    def stages_inverse(self, x):
        """The points after undoing each layer, data -> base: ``[x, ..., z]``."""
        stages = [np.asarray(x)]
        y = tf.convert_to_tensor(x, tf.float32)
        for layer in reversed(self.layers):
            y = layer.inverse(tf.constant(y.numpy()))  # fresh tensor: no bijector cache
            stages.append(y.numpy())
        return stages


def _check_common(event_size: int, num_layers: int, hidden_units: Sequence[int], seed: int):
    event_size = check_int("event_size", event_size, minimum=2)
    num_layers = check_int("num_layers", num_layers, minimum=1)
    hidden = _check_hidden(hidden_units)
    seed = check_int("seed", seed, minimum=0)
    return event_size, num_layers, hidden, seed


def _reverse(event_size: int):
    return tfb.Permute(permutation=list(range(event_size))[::-1])


def _autoregressive(kind, event_size, num_layers, hidden_units, permute, seed) -> Flow:
    """MAF layers (``kind="maf"``) or their inverses (``"iaf"``), reversed in between."""
    event_size, num_layers, hidden, seed = _check_common(event_size, num_layers, hidden_units,
                                                         seed)
    layers, networks = [], []
    for i in range(num_layers):
        made = BoundedMADE(event_size, hidden, seed=seed + i, name=f"made_{i}")
        networks.append(made)
        layer = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made, name=f"maf_{i}")
        layers.append(tfb.Invert(layer, name=f"iaf_{i}") if kind == "iaf" else layer)
        if permute and i < num_layers - 1:
            layers.append(_reverse(event_size))
    return Flow(layers, event_size, name=kind, networks=networks)


def maf(
    event_size: int = 2,
    num_layers: int = 4,
    hidden_units: Sequence[int] = (64, 64),
    *,
    permute: bool = True,
    seed: int = 0,
) -> Flow:
    """A masked autoregressive flow: ``num_layers`` MAF bijectors, each with its own MADE
    network (:class:`BoundedMADE`, TFP's ``AutoregressiveNetwork`` with a bounded log-scale),
    with the dimensions reversed between layers
    (``permute=True``) so every dimension gets to depend on every other.

    Density evaluation is one network pass per layer; sampling needs ``event_size`` sequential
    passes per layer.
    """
    return _autoregressive("maf", event_size, num_layers, hidden_units, permute, seed)


def iaf(
    event_size: int = 2,
    num_layers: int = 4,
    hidden_units: Sequence[int] = (64, 64),
    *,
    permute: bool = True,
    seed: int = 0,
) -> Flow:
    """An inverse autoregressive flow: each layer is ``Invert(MaskedAutoregressiveFlow)``.

    Sampling is one network pass per layer; density evaluation of a *new* point needs
    ``event_size`` sequential passes per layer (the cost MAF pays for sampling).
    """
    return _autoregressive("iaf", event_size, num_layers, hidden_units, permute, seed)


def _coupling_flow(name, event_size, num_layers, make_layer) -> Flow:
    """Coupling layers ``make_layer(i, num_masked, num_out) -> (network, bijector)`` that
    keep the first ``event_size // 2`` dimensions, with the dimensions reversed in between."""
    num_masked = event_size // 2
    layers, networks = [], []
    for i in range(num_layers):
        net, layer = make_layer(i, num_masked, event_size - num_masked)
        networks.append(net)
        layers.append(layer)
        if i < num_layers - 1:
            layers.append(_reverse(event_size))
    return Flow(layers, event_size, name=name, networks=networks)


def realnvp(
    event_size: int = 2,
    num_layers: int = 6,
    hidden_units: Sequence[int] = (64, 64),
    *,
    max_log_scale: float = 2.0,
    seed: int = 0,
) -> Flow:
    """Affine coupling layers (RealNVP): each layer keeps the first ``event_size // 2``
    dimensions and shifts and scales the others by functions of them; the dimensions are
    reversed between layers so each half gets transformed in turn."""
    event_size, num_layers, hidden, seed = _check_common(event_size, num_layers, hidden_units,
                                                         seed)
    max_log_scale = check_number("max_log_scale", max_log_scale, minimum=0.0,
                                 strict_minimum=True)
    def layer(i, num_masked, num_out):
        net = CouplingNet(num_masked, num_out, hidden, seed=seed + i,
                          max_log_scale=max_log_scale, name=f"coupling_{i}")
        return net, tfb.RealNVP(num_masked=num_masked, shift_and_log_scale_fn=net,
                                name=f"realnvp_{i}")

    return _coupling_flow("realnvp", event_size, num_layers, layer)


def spline(
    event_size: int = 2,
    num_layers: int = 4,
    hidden_units: Sequence[int] = (32, 32),
    *,
    num_bins: int = 8,
    bound: float = 3.0,
    seed: int = 0,
) -> Flow:
    """Rational-quadratic spline coupling layers (a coupling neural spline flow): like
    :func:`realnvp`, but each layer maps the other half through a monotone spline
    (:class:`SplineNet`) instead of a shift and a scale, reversed between layers.

    Inside ``[-bound, bound]`` a spline can bend a coordinate far more than an affine map can
    (many bumps, sharp edges); outside it, the layer is the identity, so data should be
    standardised to lie mostly inside.
    """
    event_size, num_layers, hidden, seed = _check_common(event_size, num_layers, hidden_units,
                                                         seed)
    def layer(i, num_masked, num_out):
        net = SplineNet(num_masked, num_out, hidden, num_bins=num_bins, bound=bound,
                        seed=seed + i, name=f"spline_net_{i}")
        return net, tfb.RealNVP(num_masked=num_masked, bijector_fn=net, name=f"spline_{i}")

    return _coupling_flow("spline", event_size, num_layers, layer)


def num_parameters(flow_or_variables) -> int:
    """The number of trainable numbers of a flow (anything with ``trainable_variables``) or of
    a list of variables.

    TFP's MADE stores full weight matrices and keeps the masked entries at zero; they are
    counted too (they are stored, not free).
    """
    variables = getattr(flow_or_variables, "trainable_variables", flow_or_variables)
    message = (f"flow_or_variables must have trainable_variables or be a list of variables, "
               f"got {type(flow_or_variables).__name__}")
    if isinstance(variables, str | bytes | np.ndarray):
        raise TypeError(message)
    try:
        variables = list(variables)
    except TypeError:
        raise TypeError(message) from None
    if not all(isinstance(v, tf.Variable) for v in variables):
        raise TypeError(message)
    return int(sum(int(np.prod(v.shape)) for v in variables))
