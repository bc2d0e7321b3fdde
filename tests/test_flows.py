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


@pytest.mark.parametrize("name, n_networks", [("maf", 2), ("iaf", 2), ("realnvp", 2)])
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
    for builder in (flows.maf, flows.iaf, flows.realnvp):
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


@pytest.mark.parametrize("name", ["maf", "iaf", "realnvp"])
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
