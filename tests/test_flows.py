"""The flow builders: correct bijections, tracked variables, and training that works."""

import numpy as np
import pytest

from tfpcourse.bijectors import check_bijector
from tfpcourse.training import fit_max_likelihood, mean_nll

POINTS = np.random.default_rng(3).normal(size=(32, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def flows(tf):
    from tfpcourse import flows as module

    return module


@pytest.fixture(scope="module")
def moons():
    from tfpcourse import toy2d

    train, _, _ = toy2d.standardize(toy2d.two_moons(1024, noise=0.05, seed=0))
    return train


BUILDERS = ["maf", "iaf", "realnvp"]


@pytest.mark.parametrize("name", BUILDERS)
def test_flow_is_a_correct_bijection_with_correct_log_det(flows, name):
    flow = getattr(flows, name)(num_layers=2, hidden_units=(16, 16), seed=1)
    # RealNVP's networks start with zero output; give every variable a generic value. The
    # change is multiplicative plus a shift only where the value is non-zero, so the zeros
    # that MADE's masks put in the autoregressive kernels stay zero.
    rng = np.random.default_rng(0)
    for v in flow.trainable_variables:
        noise = rng.standard_normal(v.shape).astype(np.float32)
        value = v.numpy()
        if np.count_nonzero(value) == 0:  # a zero-initialised layer: fill it
            v.assign(0.1 * noise)
        else:
            v.assign(value * (1.0 + 0.2 * noise))
    check = check_bijector(flow.bijector, POINTS, event_ndims=1, atol=1e-4, rtol=1e-3)
    assert check.passed, str(check)


@pytest.mark.parametrize("name, n_networks",
                         [("maf", 2), ("iaf", 2), ("realnvp", 2), ("spline", 2)])
def test_every_network_variable_is_tracked_from_the_start(flows, name, n_networks):
    flow = getattr(flows, name)(num_layers=2, hidden_units=(16, 16), seed=1)
    variables = flow.trainable_variables
    # Each network: 3 dense layers with a kernel and a bias.
    assert len(variables) == n_networks * 6
    assert len(flow.distribution.trainable_variables) == len(variables)


def test_keras3_model_does_not_track_tfp_autoregressive_network(tf):
    """The pitfall this module avoids: TFP's tf_keras layer inside a Keras 3 Model is invisible
    to it. If a release fixes this, this test fails and the chapter text must be updated."""
    import keras
    import tensorflow_probability as tfp

    class Wrapper(keras.Model):
        def __init__(self):
            super().__init__()
            self.made = tfp.bijectors.AutoregressiveNetwork(params=2, hidden_units=[8],
                                                             event_shape=[2])

        def call(self, x):
            return self.made(x)

    model = Wrapper()
    model(tf.zeros((1, 2)))
    assert len(model.made.trainable_variables) == 4  # the layer has variables ...
    assert len(model.trainable_variables) == 0  # ... that the Keras 3 model does not see


@pytest.mark.parametrize("name", ["maf", "realnvp"])
def test_training_lowers_the_nll_and_changes_every_variable(flows, moons, name):
    flow = getattr(flows, name)(num_layers=2, hidden_units=(32, 32), seed=0)
    before = [v.numpy().copy() for v in flow.trainable_variables]
    nll_before = mean_nll(flow.distribution, moons)
    history = fit_max_likelihood(flow.distribution, moons, epochs=15, batch_size=256,
                                 learning_rate=5e-3, variables=flow.trainable_variables)
    nll_after = mean_nll(flow.distribution, moons)
    assert nll_after < nll_before - 0.3, (nll_before, nll_after)
    assert history.traces == 1  # 1,024 points: every batch has the same shape
    # Training must not break the bijection (for MAF: the autoregressive masks).
    check = check_bijector(flow.bijector, moons[:32], event_ndims=1, atol=1e-4, rtol=1e-3)
    assert check.passed, str(check)
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, flow.trainable_variables)]
    assert all(changed), f"{changed.count(False)} variables did not change"


def test_flow_starts_as_the_identity_or_a_permutation(flows):
    flow = flows.realnvp(num_layers=2, hidden_units=(8,), seed=0)
    z = POINTS[:4]
    # Two coupling layers with zero-initialised outputs and one reversal between them.
    np.testing.assert_allclose(flow.bijector.forward(z), z[:, ::-1], atol=1e-6)


def test_stages_follow_the_points_layer_by_layer(flows):
    flow = flows.realnvp(num_layers=3, hidden_units=(8,), seed=0)
    for v in flow.trainable_variables:
        v.assign(v + 0.05)
    forward = flow.stages_forward(POINTS)
    assert len(forward) == len(flow.layers) + 1
    np.testing.assert_allclose(forward[-1], flow.bijector.forward(POINTS), rtol=1e-5, atol=1e-5)
    back = flow.stages_inverse(forward[-1])
    np.testing.assert_allclose(back[-1], POINTS, rtol=1e-4, atol=1e-4)


def test_leaky_relu_is_a_correct_bijector_with_a_trainable_slope(tf, flows):
    import tensorflow_probability as tfp

    alpha = tfp.util.TransformedVariable(0.3, tfp.bijectors.Softplus())
    bij = flows.LeakyReLU(alpha)
    xs = np.concatenate([np.linspace(-3, -0.1, 10), np.linspace(0.1, 3, 10)])
    assert check_bijector(bij, xs).passed
    assert len(bij.trainable_variables) == 1
    np.testing.assert_allclose(bij.forward(np.array([-2.0, 2.0], np.float32)), [-0.6, 2.0],
                               rtol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"event_size": 1}, ValueError, "event_size must be >= 2"),
    ({"num_layers": 0}, ValueError, "num_layers must be >= 1"),
    ({"hidden_units": 64}, TypeError, "hidden_units must be a non-empty sequence"),
    ({"hidden_units": ()}, TypeError, "hidden_units must be a non-empty sequence"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
])
def test_builders_reject_bad_arguments(flows, kwargs, error, match):
    for builder in (flows.maf, flows.iaf, flows.realnvp, flows.spline):
        with pytest.raises(error, match=match):
            builder(**kwargs)


@pytest.mark.parametrize("name", ["maf", "iaf", "realnvp"])
def test_density_stays_finite_far_from_the_data(flows, moons, name):
    """Bounded log-scales: after training, evaluating far outside the data gives small but
    finite log-densities, never NaN or inf (an unbounded MADE overflowed here)."""
    flow = getattr(flows, name)(num_layers=3, hidden_units=(32, 32), seed=0)
    fit_max_likelihood(flow.distribution, moons, epochs=10, batch_size=256,
                       learning_rate=1e-2, variables=flow.trainable_variables)
    far = np.stack(np.meshgrid(np.linspace(-12, 12, 25), np.linspace(-12, 12, 25)), -1)
    log_p = flow.log_prob(far.reshape(-1, 2).astype(np.float32)).numpy()
    assert np.all(np.isfinite(log_p)), f"{np.sum(~np.isfinite(log_p))} non-finite values"


@pytest.mark.parametrize("name", ["maf", "iaf", "realnvp", "spline"])
def test_a_flow_exposes_the_network_of_each_layer(name, flows):
    flow = getattr(flows, name)(num_layers=3, hidden_units=(8,), seed=0)
    assert len(flow.networks) == 3
    owned = {id(v) for v in flow.trainable_variables}
    for net in flow.networks:
        assert net.trainable_variables and all(id(v) in owned for v in net.trainable_variables)
    # The first network is the one the first transforming layer calls: perturbing it changes
    # the flow's density, perturbing nothing does not.
    x = np.array([[0.3, -0.7], [1.2, 0.4]], np.float32)
    before = flow.log_prob(x).numpy()
    for v in flow.networks[0].trainable_variables:
        v.assign(v + 0.1)
    assert not np.allclose(flow.log_prob(x).numpy(), before)


# --------------------------------------------------------------------------------------------
# Rational-quadratic spline coupling flows


def _perturb(flow, scale=0.3, seed=0):
    """Give every variable a generic value: ``scale`` times a standard normal draw."""
    rng = np.random.default_rng(seed)
    for v in flow.trainable_variables:
        v.assign(scale * rng.standard_normal(v.shape).astype(np.float32))


# Inside and outside the spline's default interval [-3, 3], where it is the identity.
SPLINE_POINTS = np.concatenate([POINTS, [[-4.5, 0.3], [0.2, 5.0], [3.5, -3.2]]]).astype(
    np.float32)


def test_a_fresh_spline_flow_is_the_identity(flows):
    flow = flows.spline(num_layers=1, hidden_units=(8,), num_bins=6, bound=3.0, seed=0)
    np.testing.assert_allclose(flow.bijector.forward(SPLINE_POINTS), SPLINE_POINTS, atol=1e-5)
    np.testing.assert_allclose(flow.log_prob(SPLINE_POINTS),
                               flow.base.log_prob(SPLINE_POINTS), atol=1e-5)
    # The zero last layer gives equal bins of width 2 * bound / num_bins and unit slopes.
    widths, heights, slopes = flow.networks[0].spline_parameters(SPLINE_POINTS[:, :1])
    np.testing.assert_allclose(widths, 1.0, rtol=1e-6)
    np.testing.assert_allclose(heights, 1.0, rtol=1e-6)
    np.testing.assert_allclose(slopes, 1.0, rtol=1e-5)


def test_one_spline_layer_is_a_correct_bijection_with_correct_log_det(flows):
    flow = flows.spline(num_layers=1, hidden_units=(16,), seed=2)
    _perturb(flow)
    layer = flow.layers[0]
    moved = np.abs(layer.forward(SPLINE_POINTS).numpy() - SPLINE_POINTS)
    assert moved.max() > 0.1  # no longer the identity: the check below is not vacuous
    np.testing.assert_array_equal(moved[:, 0], 0.0)  # the coupling keeps the first coordinate
    check = check_bijector(layer, SPLINE_POINTS, event_ndims=1, rtol=1e-3)
    assert check.passed, str(check)


def test_spline_parameters_have_the_right_shapes_sums_and_minimums(tf, flows):
    net = flows.SplineNet(2, 3, (8,), num_bins=5, bound=2.0, min_bin=0.05, min_slope=0.1,
                          seed=0)
    rng = np.random.default_rng(1)
    for v in net.trainable_variables:  # large weights: some bins and slopes hit their floor
        v.assign(3.0 * rng.standard_normal(v.shape).astype(np.float32))
    x0 = rng.normal(size=(64, 2)).astype(np.float32)
    widths, heights, slopes = (t.numpy() for t in net.spline_parameters(x0))
    assert widths.shape == heights.shape == (64, 3, 5)
    assert slopes.shape == (64, 3, 4)  # interior knots only; the end slopes are 1
    np.testing.assert_allclose(widths.sum(-1), 4.0, rtol=1e-5)
    np.testing.assert_allclose(heights.sum(-1), 4.0, rtol=1e-5)
    assert widths.min() >= 0.05 * (1 - 1e-5) and heights.min() >= 0.05 * (1 - 1e-5)
    assert slopes.min() >= 0.1 * (1 - 1e-5)
    assert widths.min() < 0.06 and slopes.min() < 0.11  # the floors are reached, not avoided
    spline = net(x0, output_units=3)
    y = spline.forward(rng.uniform(-1.9, 1.9, size=(64, 3)).astype(np.float32)).numpy()
    assert np.all(np.abs(y) <= 2.0 + 1e-5)  # [-bound, bound] maps onto itself


def test_a_perturbed_spline_flow_density_integrates_to_one(flows):
    flow = flows.spline(num_layers=2, hidden_units=(8,), seed=0)
    _perturb(flow, seed=3)
    step = 0.03
    axis = np.arange(-6.0, 6.0, step) + step / 2
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    log_p = flow.log_prob(grid).numpy().astype(np.float64)
    # Far from Gaussian, yet normalised.
    assert np.abs(log_p - flow.base.log_prob(grid).numpy()).max() > 0.5
    assert np.exp(log_p).sum() * step**2 == pytest.approx(1.0, abs=1e-3)


def test_num_parameters_counts_every_weight_and_bias(tf, flows):
    # RealNVP on 2-D: each coupling net maps 1 kept coordinate through 8 hidden units to a
    # shift and a log-scale for the other one: (1*8 + 8) + (8*2 + 2) numbers; Permute has none.
    flow = flows.realnvp(num_layers=2, hidden_units=(8,))
    assert flows.num_parameters(flow) == 2 * ((1 * 8 + 8) + (8 * 2 + 2)) == 68
    # A spline net outputs 6 widths, 6 heights and 5 interior slopes: 17 numbers.
    flow = flows.spline(num_layers=3, hidden_units=(8, 4), num_bins=6)
    expected = 3 * ((1 * 8 + 8) + (8 * 4 + 4) + (4 * 17 + 17))
    assert flows.num_parameters(flow) == expected == 411
    assert flows.num_parameters(flow.trainable_variables) == expected
    assert flows.num_parameters([tf.Variable(tf.zeros((3, 4)))]) == 12


@pytest.mark.parametrize("value", [object(), 3, None])
def test_num_parameters_rejects_what_is_not_a_flow(flows, value):
    with pytest.raises(TypeError, match="must have trainable_variables or be a list"):
        flows.num_parameters(value)


@pytest.mark.parametrize("value", ["flow", [1, 2], np.zeros((3, 2))])
def test_num_parameters_rejects_an_iterable_of_non_variables(flows, value):
    with pytest.raises(TypeError, match="must have trainable_variables or be a list"):
        flows.num_parameters(value)


@pytest.mark.parametrize("call, error, match", [
    (lambda f: f.spline(num_bins=1), ValueError, "num_bins must be >= 2"),
    (lambda f: f.spline(num_bins=4.0), TypeError, "num_bins must be an integer"),
    (lambda f: f.spline(bound=0.0), ValueError, "bound must be > 0"),
    (lambda f: f.spline(bound=-2.0), ValueError, "bound must be > 0"),
    # 8 bins of at least min_bin must fit into [-3, 3]: min_bin <= 6 / 8.
    (lambda f: f.SplineNet(1, 1, (8,), num_bins=8, bound=3.0, min_bin=0.8), ValueError,
     "min_bin must be <= 0.75"),
    (lambda f: f.SplineNet(1, 1, (8,), min_bin=0.0), ValueError, "min_bin must be > 0"),
    (lambda f: f.SplineNet(1, 1, (8,), min_slope=0.0), ValueError, "min_slope must be > 0"),
    (lambda f: f.SplineNet(1, 1, (8,), min_slope=1.5), ValueError, "min_slope must be <= 1"),
])
def test_spline_rejects_bad_arguments_naming_them(flows, call, error, match):
    with pytest.raises(error, match=match):
        call(flows)


def test_fitting_a_spline_flow_lowers_the_nll_below_the_base_distributions(flows):
    from tfpcourse import toy2d

    train, _, _ = toy2d.standardize(toy2d.checkerboard(2000, seed=0))
    flow = flows.spline(num_layers=1, hidden_units=(16,), num_bins=4, seed=0)
    nll_before = mean_nll(flow.distribution, train)
    # The flow starts as the base N(0, I): on standardised data its NLL is log(2 pi) + 1.
    assert nll_before == pytest.approx(np.log(2 * np.pi) + 1, abs=1e-3)
    # (XLA, jit_compile=True, also works here but compiling the spline takes ~5 s: the XLA
    # path is covered in test_training.py with a cheaper model.)
    history = fit_max_likelihood(flow.distribution, train, epochs=5, batch_size=500,
                                 learning_rate=1e-2)
    nll_after = mean_nll(flow.distribution, train)
    assert nll_after < nll_before - 0.1, (nll_before, nll_after)
    assert history.train_nll[-1] < history.train_nll[0]
    assert history.traces == 1 and history.steps == 5 * 4
