"""The VAE module: networks, priors, losses against hand computations, MMD, training and
checkpoints. Everything runs on tiny inputs (small MLPs, a few hundred 28x28 images)."""

import gc
import itertools
import weakref

import numpy as np
import pytest

IMAGE = (28, 28, 1)


@pytest.fixture(scope="module")
def vae(tf):
    from tfpcourse import vae as module

    return module


@pytest.fixture(scope="module")
def tfd(tf):
    import tensorflow_probability as tfp

    return tfp.distributions


def _seed(tf, a=1, b=2):
    return tf.constant([a, b], tf.int32)


def _binary_images(n, seed=0):
    """``n`` 28x28 binary images drawn from 4 random prototypes with 5% of pixels flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, *IMAGE)) < 0.3
    flips = rng.random((n, *IMAGE)) < 0.05
    return np.logical_xor(prototypes[rng.integers(0, 4, n)], flips).astype(np.float32)


IMAGES = _binary_images(256)


@pytest.fixture(scope="module")
def dataset(tf):
    return tf.data.Dataset.from_tensor_slices(IMAGES).batch(64)


def _small_vae(vae, latent_dim=2, prior=None, **kwargs):
    return vae.VAE(
        vae.Encoder(latent_dim, kind="mlp", hidden=(32,)),
        vae.Decoder(latent_dim, kind="mlp", hidden=(32,)),
        vae.standard_normal_prior(latent_dim) if prior is None else prior,
        **kwargs,
    )


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _log_normal(x, loc, scale):
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((x - loc) / scale) ** 2


def _kl_to_standard_normal(mu, s):
    """KL(N(mu, diag s^2) || N(0, I)), summed over the last axis."""
    return 0.5 * np.sum(s**2 + mu**2 - 1.0 - 2.0 * np.log(s), axis=-1)


# --------------------------------------------------------------------------------------------
# Encoder and decoder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, kwargs, n_variables", [
    ("conv", {"filters": (4, 8)}, 6),  # two convolutions and a dense layer
    ("mlp", {"hidden": (16, 8)}, 6),  # two hidden dense layers and the output layer
])
def test_encoder_returns_a_diagonal_gaussian_posterior(vae, tfd, kind, kwargs, n_variables):
    encoder = vae.Encoder(3, kind=kind, **kwargs)
    q = encoder(IMAGES[:5])
    assert isinstance(q, tfd.MultivariateNormalDiag)
    assert q.batch_shape == [5] and q.event_shape == [3]
    assert q.sample(seed=(1, 2)).shape == (5, 3)
    assert np.all(np.isfinite(q.log_prob(q.mean()).numpy()))
    variables = encoder.trainable_variables
    assert len(variables) == len(encoder.net.trainable_variables) == n_variables
    assert all(a is b for a, b in zip(variables, encoder.net.trainable_variables))
    assert np.all(q.stddev().numpy() > 0)


@pytest.mark.parametrize("kind, kwargs, n_variables", [
    ("conv", {"filters": (4, 4)}, 8),  # dense, two transposed convolutions, a convolution
    ("mlp", {"hidden": (16,)}, 4),  # one hidden dense layer and the output layer
])
def test_decoder_returns_independent_bernoulli_images(vae, tfd, kind, kwargs, n_variables):
    decoder = vae.Decoder(2, kind=kind, **kwargs)
    z = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    p = decoder(z)
    assert isinstance(p, tfd.Independent) and isinstance(p.distribution, tfd.Bernoulli)
    assert p.batch_shape == [4] and p.event_shape == list(IMAGE)
    assert decoder.logits(z).shape == (4, *IMAGE)
    log_p = p.log_prob(IMAGES[:4]).numpy()
    assert log_p.shape == (4,) and np.all(np.isfinite(log_p)) and np.all(log_p < 0)
    sample = p.sample(seed=(3, 4)).numpy()
    assert sample.dtype == np.float32 and set(np.unique(sample)) <= {0.0, 1.0}
    assert len(decoder.trainable_variables) == len(decoder.net.trainable_variables) == n_variables


def test_decoder_log_prob_is_the_bernoulli_log_likelihood_of_its_logits(vae):
    decoder = vae.Decoder(2, kind="mlp", hidden=(8,))
    z = np.array([[0.3, -1.2]], np.float32)
    logits = decoder.logits(z).numpy()
    x = IMAGES[:1]
    expected = np.sum(x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits))
    assert decoder(z).log_prob(x).numpy()[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_posterior_scale_never_falls_below_the_floor(vae, kind):
    encoder = vae.Encoder(2, kind=kind, hidden=(8,), filters=(2, 2))
    kernel, bias = encoder.net.layers[-1].trainable_variables
    kernel.assign(np.zeros(kernel.shape, np.float32))
    bias.assign(np.array([0.5, -0.5, -1e4, -1e4], np.float32))  # raw scales: huge negative
    q = encoder(IMAGES[:3])
    scale = q.stddev().numpy()
    assert np.all(scale >= np.float32(vae.SCALE_FLOOR))
    np.testing.assert_allclose(scale, vae.SCALE_FLOOR, rtol=1e-3)
    np.testing.assert_allclose(q.mean().numpy(), [[0.5, -0.5]] * 3)
    assert np.all(np.isfinite(q.log_prob(q.mean()).numpy()))


def test_networks_reject_inputs_of_the_wrong_shape(vae):
    encoder = vae.Encoder(2, kind="mlp", hidden=(8,))
    with pytest.raises(ValueError,
                       match=r"x must have shape \(batch, 28, 28, 1\), got \(2, 14, 14, 1\)"):
        encoder(np.zeros((2, 14, 14, 1), np.float32))
    with pytest.raises(ValueError, match=r"x must have shape"):
        encoder(np.zeros((28, 28, 1), np.float32))  # a single image without its batch axis
    decoder = vae.Decoder(2, kind="mlp", hidden=(8,))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\), got \(4, 3\)"):
        decoder(np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("cls", ["Encoder", "Decoder"])
@pytest.mark.parametrize("args, kwargs, error, match", [
    ((0,), {}, ValueError, "latent_dim must be >= 1"),
    ((2.5,), {}, TypeError, "latent_dim must be an integer"),
    ((2,), {"kind": "rnn"}, ValueError, "kind must be one of 'conv', 'mlp'"),
    ((2,), {"filters": 32}, TypeError, "filters must be a pair"),
    ((2,), {"filters": (8, 8, 8)}, TypeError, "filters must be a pair"),
    ((2,), {"filters": (0, 8)}, ValueError, r"filters\[i\] must be >= 1"),
    ((2,), {"kind": "mlp", "hidden": ()}, TypeError, "hidden must be a non-empty sequence"),
    ((2,), {"kind": "mlp", "hidden": (8, -1)}, ValueError, r"hidden\[i\] must be >= 1"),
    ((2,), {"image_shape": 28}, TypeError, "image_shape must be a sequence"),
])
def test_networks_reject_bad_arguments(vae, cls, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(vae, cls)(*args, **kwargs)


def test_conv_decoder_only_makes_28x28_images(vae):
    with pytest.raises(ValueError, match="image_shape"):
        vae.Decoder(2, kind="conv", image_shape=(32, 32, 1))
    decoder = vae.Decoder(2, kind="mlp", hidden=(8,), image_shape=(5, 6, 1))
    assert decoder(np.zeros((3, 2), np.float32)).event_shape == [5, 6, 1]


# --------------------------------------------------------------------------------------------
# Priors and KL
# --------------------------------------------------------------------------------------------


MU = np.array([[0.5, -1.0], [0.0, 2.0]], np.float32)
S = np.array([[1.0, 0.5], [2.0, 0.1]], np.float32)


def test_analytic_kl_matches_the_closed_form(vae, tfd):
    q = tfd.MultivariateNormalDiag(MU, S)
    kl = vae.analytic_kl(q, vae.standard_normal_prior(2)).numpy()
    expected = _kl_to_standard_normal(MU.astype(np.float64), S.astype(np.float64))
    # By hand: 0.5*(1+0.25+0.25+1-2-2 log 0.5) and 0.5*(4+0.01+4-2-2 log 2-2 log 0.1).
    np.testing.assert_allclose(expected, [0.25 + np.log(2), 3.005 - np.log(2) - np.log(0.1)])
    np.testing.assert_allclose(kl, expected, rtol=1e-5)


def test_analytic_kl_against_a_mixture_points_to_sampled_kl(vae, tfd):
    q = tfd.MultivariateNormalDiag(MU, S)
    with pytest.raises(ValueError, match=r"no closed-form KL.*sampled_kl"):
        vae.analytic_kl(q, vae.mixture_prior(2, components=3))


def test_sampled_kl_averages_to_the_analytic_kl(vae, tfd):
    q = tfd.MultivariateNormalDiag(MU, S)
    prior = vae.standard_normal_prior(2)
    z = q.sample(20000, seed=(5, 6))
    estimates = vae.sampled_kl(q, prior, z).numpy()  # [samples, batch]
    assert estimates.shape == (20000, 2)
    stderr = estimates.std(axis=0) / np.sqrt(len(estimates))
    exact = vae.analytic_kl(q, prior).numpy()
    assert np.all(np.abs(estimates.mean(axis=0) - exact) < 4 * stderr), (
        estimates.mean(axis=0), exact, stderr)
    # ... and one estimate is log q(z) - log p(z), checked by hand for the first sample.
    z0 = z.numpy()[0]
    by_hand = np.sum(_log_normal(z0, MU, S) - _log_normal(z0, 0.0, 1.0), axis=-1)
    np.testing.assert_allclose(estimates[0], by_hand, rtol=1e-4, atol=1e-5)


def test_standard_normal_prior_is_fixed(vae):
    prior = vae.standard_normal_prior(3)
    assert prior.event_shape == [3] and prior.batch_shape == []
    assert prior.trainable_variables == ()
    assert prior.log_prob(np.zeros(3, np.float32)).numpy() == pytest.approx(
        -1.5 * np.log(2 * np.pi))
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        vae.standard_normal_prior(0)


def test_mixture_prior_has_three_trainable_variables_that_all_get_gradients(vae, tf):
    prior = vae.mixture_prior(2, components=5, seed=1)
    variables = prior.trainable_variables
    names = sorted(v.name.split(":")[0] for v in variables)
    assert names == ["component_locs", "component_scales", "mixture_logits"]
    assert prior.event_shape == [2] and prior.batch_shape == []
    # Equal weights and unit scales at the start; the means are spread out.
    np.testing.assert_allclose(prior.mixture_distribution.probs_parameter().numpy(), 0.2)
    np.testing.assert_allclose(prior.components_distribution.stddev().numpy(), 1.0, rtol=1e-6)
    assert np.unique(prior.components_distribution.mean().numpy(), axis=0).shape == (5, 2)
    z = np.random.default_rng(2).standard_normal((16, 2)).astype(np.float32) * 3
    with tf.GradientTape() as tape:
        log_p = prior.log_prob(z)
        loss = -tf.reduce_mean(log_p)
    assert np.all(np.isfinite(log_p.numpy()))
    grads = tape.gradient(loss, variables)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_mixture_prior_is_seeded_and_checks_its_arguments(vae):
    a, b, c = (vae.mixture_prior(2, 4, seed=s) for s in (0, 0, 1))
    locs = [p.components_distribution.mean().numpy() for p in (a, b, c)]
    np.testing.assert_array_equal(locs[0], locs[1])
    assert not np.allclose(locs[0], locs[2])
    with pytest.raises(ValueError, match="components must be >= 1"):
        vae.mixture_prior(2, 0)
    with pytest.raises(ValueError, match="spread must be >= 0"):
        vae.mixture_prior(2, spread=-1.0)


# --------------------------------------------------------------------------------------------
# ELBO and the importance-weighted bound
# --------------------------------------------------------------------------------------------

X_TOY = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], np.float32)
A_TOY = np.array([[0.5, -0.2], [1.0, 0.3], [-0.4, 0.8]], np.float32)
W_TOY = np.array([[1.5, -0.5, 0.2], [0.3, 2.0, -1.0]], np.float32)
B_TOY = np.array([0.1, -0.2, 0.3], np.float32)
SCALE_TOY = np.array([0.6, 0.9], np.float32)


@pytest.fixture(scope="module")
def toy(tf, tfd):
    """A deterministic encoder (loc = x A, fixed scales) and a linear Bernoulli decoder."""

    def encoder(x):
        return tfd.MultivariateNormalDiag(tf.matmul(x, A_TOY), SCALE_TOY)

    def decoder(z):
        return tfd.Independent(
            tfd.Bernoulli(logits=tf.matmul(z, W_TOY) + B_TOY, dtype=tf.float32), 1
        )

    return encoder, decoder


def _toy_by_hand(z):
    logits = z @ W_TOY + B_TOY
    reconstruction = np.sum(
        X_TOY * -np.logaddexp(0, -logits) + (1 - X_TOY) * -np.logaddexp(0, logits), axis=-1
    )
    mu = X_TOY @ A_TOY
    return reconstruction, mu


def test_elbo_terms_match_a_hand_computation(vae, tf, toy):
    encoder, decoder = toy
    seed = _seed(tf, 7, 8)
    z = encoder(X_TOY).sample(seed=seed).numpy()  # the same z that elbo_terms draws
    reconstruction, mu = _toy_by_hand(z)
    kl = _kl_to_standard_normal(mu, SCALE_TOY)

    terms = vae.elbo_terms(X_TOY, encoder, decoder, vae.standard_normal_prior(2), seed=seed)
    np.testing.assert_allclose(terms.reconstruction.numpy(), reconstruction, rtol=1e-5)
    np.testing.assert_allclose(terms.kl.numpy(), kl, rtol=1e-5)
    np.testing.assert_allclose(terms.elbo.numpy(), reconstruction - kl, rtol=1e-5)
    assert terms.elbo.shape == (2,)

    sampled = vae.elbo_terms(X_TOY, encoder, decoder, vae.standard_normal_prior(2),
                             seed=seed, kl="sampled")
    log_q_minus_log_p = np.sum(_log_normal(z, mu, SCALE_TOY) - _log_normal(z, 0.0, 1.0), -1)
    np.testing.assert_allclose(sampled.reconstruction.numpy(), reconstruction, rtol=1e-5)
    np.testing.assert_allclose(sampled.kl.numpy(), log_q_minus_log_p, rtol=1e-4, atol=1e-5)


def test_elbo_kl_modes_auto_and_errors(vae, tf, toy):
    encoder, decoder = toy
    seed = _seed(tf)
    normal = vae.standard_normal_prior(2)
    mixture = vae.mixture_prior(2, components=3)
    auto = vae.elbo_terms(X_TOY, encoder, decoder, normal, seed=seed, kl="auto")
    analytic = vae.elbo_terms(X_TOY, encoder, decoder, normal, seed=seed, kl="analytic")
    np.testing.assert_array_equal(auto.kl.numpy(), analytic.kl.numpy())
    # Against a mixture "auto" falls back to the sampled estimate, "analytic" refuses.
    auto_mix = vae.elbo_terms(X_TOY, encoder, decoder, mixture, seed=seed, kl="auto")
    sampled_mix = vae.elbo_terms(X_TOY, encoder, decoder, mixture, seed=seed, kl="sampled")
    np.testing.assert_array_equal(auto_mix.kl.numpy(), sampled_mix.kl.numpy())
    with pytest.raises(ValueError, match="sampled_kl"):
        vae.elbo_terms(X_TOY, encoder, decoder, mixture, seed=seed, kl="analytic")
    with pytest.raises(ValueError, match="kl must be one of"):
        vae.elbo_terms(X_TOY, encoder, decoder, normal, seed=seed, kl="exact")


def test_importance_weighted_bound_with_one_sample_is_the_sampled_elbo(vae, tf, toy):
    encoder, decoder = toy
    prior = vae.standard_normal_prior(2)
    seed = _seed(tf, 11, 12)
    bound = vae.importance_weighted_log_likelihood(X_TOY, encoder, decoder, prior, k=1,
                                                   seed=seed)
    elbo = vae.elbo_terms(X_TOY, encoder, decoder, prior, seed=seed, kl="sampled").elbo
    assert bound.shape == (2,)
    np.testing.assert_allclose(bound.numpy(), elbo.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="k must be >= 1"):
        vae.importance_weighted_log_likelihood(X_TOY, encoder, decoder, prior, k=0, seed=seed)


# A linear-Gaussian model where log p(x) and the exact posterior are known:
# z ~ N(0, 1), x | z ~ N(w z + b, sigma^2 I) in 2-D, so x ~ N(b, w w^T + sigma^2 I).
LG_W = np.array([2.0, -1.0])
LG_B = np.array([0.5, 1.0])
LG_SIGMA = 0.5
LG_PRECISION = 1.0 + LG_W @ LG_W / LG_SIGMA**2
LG_X = (LG_B + np.outer(np.random.default_rng(4).standard_normal(64), LG_W)
        + LG_SIGMA * np.random.default_rng(5).standard_normal((64, 2))).astype(np.float32)


def _lg_log_px(x):
    cov = np.outer(LG_W, LG_W) + LG_SIGMA**2 * np.eye(2)
    d = x - LG_B
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    return -0.5 * (maha + np.log(np.linalg.det(cov)) + 2 * np.log(2 * np.pi))


@pytest.fixture(scope="module")
def linear_gaussian(tf, tfd):
    def decoder(z):
        loc = tf.cast(z, tf.float32) * LG_W.astype(np.float32) + LG_B.astype(np.float32)
        return tfd.Independent(tfd.Normal(loc, LG_SIGMA), 1)

    def posterior(x, shrink=1.0, widen=1.0):
        mean = ((x - LG_B) @ LG_W / LG_SIGMA**2 / LG_PRECISION).astype(np.float32)
        std = np.full_like(mean, widen / np.sqrt(LG_PRECISION))
        return tfd.MultivariateNormalDiag(shrink * mean[:, None] + (1 - shrink) * 0.3,
                                          std[:, None])

    return decoder, posterior


def test_importance_weighted_bound_is_exact_with_the_true_posterior(vae, tf, linear_gaussian):
    decoder, posterior = linear_gaussian
    prior = vae.standard_normal_prior(1)
    for k in (1, 7):
        bound = vae.importance_weighted_log_likelihood(
            LG_X[:8], lambda x: posterior(np.asarray(x)), decoder, prior, k=k, seed=_seed(tf))
        np.testing.assert_allclose(bound.numpy(), _lg_log_px(LG_X[:8]), rtol=1e-4, atol=1e-4)


def test_importance_weighted_bound_tightens_with_k_towards_log_px(vae, tf, linear_gaussian):
    decoder, posterior = linear_gaussian
    prior = vae.standard_normal_prior(1)

    def poor_encoder(x):  # biased means, too-wide scales
        return posterior(np.asarray(x), shrink=0.7, widen=1.6)

    log_px = _lg_log_px(LG_X).mean()
    bounds = {
        k: float(np.mean(vae.importance_weighted_log_likelihood(
            LG_X, poor_encoder, decoder, prior, k=k, seed=_seed(tf, 3, k)).numpy()))
        for k in (1, 10, 1000)
    }
    gaps = {k: log_px - b for k, b in bounds.items()}
    assert gaps[1] > 0.2, gaps  # the encoder is poor enough for the test to mean something
    assert bounds[1] < bounds[10] < bounds[1000], bounds
    assert -0.01 < gaps[1000] < 0.05 * gaps[1], gaps


# --------------------------------------------------------------------------------------------
# Distances, kernel, MMD
# --------------------------------------------------------------------------------------------


def test_pairwise_squared_distances_equal_the_naive_computation(vae):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    naive = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    d2 = vae.pairwise_squared_distances(a, b).numpy()
    assert d2.shape == (5, 4)
    np.testing.assert_allclose(d2, naive, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vae.pairwise_squared_distances([[0.0, 0.0]], [[3.0, 4.0]]),
                               [[25.0]])


def test_pairwise_squared_distances_are_never_negative(vae):
    # Large, nearly equal rows: |a|^2 + |b|^2 - 2ab cancels catastrophically.
    rng = np.random.default_rng(1)
    a = (1000.0 + 1e-3 * rng.standard_normal((50, 4))).astype(np.float32)
    d2 = vae.pairwise_squared_distances(a, a).numpy()
    assert d2.min() >= 0.0
    assert d2.max() > 0.0  # the test really exercises the round-off, not an all-zero matrix


def test_pairwise_squared_distances_reject_bad_shapes(vae):
    with pytest.raises(ValueError, match=r"same d, got shapes \(5, 3\) and \(4, 2\)"):
        vae.pairwise_squared_distances(np.zeros((5, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"matrices \[n, d\]"):
        vae.pairwise_squared_distances(np.zeros(3), np.zeros((4, 3)))


def test_gaussian_kernel_matches_its_formula_and_is_one_on_the_diagonal(vae):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(vae.gaussian_kernel(a, b, bandwidth=0.7).numpy(),
                               np.exp(-d2 / (2 * 0.7**2)), rtol=1e-4)
    # Default bandwidth: s^2 = d / 2, so the exponent is the mean squared difference.
    np.testing.assert_allclose(vae.gaussian_kernel(a, b).numpy(), np.exp(-d2 / 4), rtol=1e-4)
    np.testing.assert_allclose(np.diag(vae.gaussian_kernel(a, a).numpy()), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"bandwidth must be > 0"):
        vae.gaussian_kernel(a, b, bandwidth=0.0)
    with pytest.raises(TypeError, match="bandwidth must be a real number"):
        vae.gaussian_kernel(a, b, bandwidth="1")


def test_mmd_matches_a_hand_computation(vae):
    # One point each, bandwidth 1: k(x,x) + k(y,y) - 2 k(x,y) = 2 - 2 exp(-1/2).
    assert float(vae.mmd([[0.0]], [[1.0]], bandwidth=1.0)) == pytest.approx(
        2 - 2 * np.exp(-0.5), rel=1e-6)


def test_mmd_is_zero_for_identical_samples(vae):
    x = np.random.default_rng(3).standard_normal((100, 2)).astype(np.float32)
    assert float(vae.mmd(x, x.copy())) == pytest.approx(0.0, abs=1e-6)


def test_mmd_is_positive_and_grows_with_the_shift(vae):
    x = np.random.default_rng(4).standard_normal((200, 2)).astype(np.float32)
    values = [float(vae.mmd(x, x + shift)) for shift in (0.25, 0.5, 1.0, 2.0)]
    assert values[0] > 0
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_mmd_is_small_for_two_samples_of_one_distribution(vae):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 200, 2)).astype(np.float32)
    same = float(vae.mmd(x, y))
    shifted = float(vae.mmd(x, y + 1.0))
    assert 0 <= same < 0.1 * shifted, (same, shifted)


# --------------------------------------------------------------------------------------------
# The VAE model
# --------------------------------------------------------------------------------------------


def test_vae_rejects_a_prior_of_the_wrong_event_shape(vae):
    with pytest.raises(ValueError, match=r"prior's event shape must be \[2\].*got \[3\]"):
        _small_vae(vae, 2, prior=vae.standard_normal_prior(3))
    with pytest.raises(TypeError, match="decoder must be callable"):
        vae.VAE(lambda x: x, object(), vae.standard_normal_prior(2))
    with pytest.raises(TypeError, match="prior must be a TFP distribution"):
        vae.VAE(lambda x: x, lambda z: z, object())
    with pytest.raises(ValueError, match="regularizer must be one of"):
        _small_vae(vae, regularizer="wasserstein")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        _small_vae(vae, beta=-1.0)


def test_vae_trains_the_variables_of_a_mixture_prior(vae):
    prior = vae.mixture_prior(2, components=4)
    model = _small_vae(vae, prior=prior)
    n_networks = len(model.encoder.trainable_variables) + len(model.decoder.trainable_variables)
    assert n_networks == 8
    assert len(model.trainable_variables) == n_networks + 3
    ids = {id(v) for v in model.trainable_variables}
    assert all(id(v) in ids for v in prior.trainable_variables)
    assert len(_small_vae(vae).trainable_variables) == n_networks  # N(0, I) adds nothing
    assert model.latent_dim == 2


def test_kl_vae_loss_is_the_negative_elbo_and_elbo_is_reconstruction_minus_kl(vae, tf):
    model = _small_vae(vae, kl="analytic")
    loss, metrics = model.loss(IMAGES[:8], _seed(tf))
    assert set(metrics) == {"loss", "elbo", "reconstruction", "kl"}
    m = {k: float(v) for k, v in metrics.items()}
    assert m["elbo"] == pytest.approx(m["reconstruction"] - m["kl"], rel=1e-6)
    assert float(loss) == pytest.approx(-m["elbo"], rel=1e-6) and m["loss"] == float(loss)
    assert m["kl"] > 0 and m["reconstruction"] < 0
    # The metrics are the batch means of the per-example terms at the same seed.
    terms = model.elbo(IMAGES[:8], _seed(tf))
    assert m["kl"] == pytest.approx(float(np.mean(terms.kl.numpy())), rel=1e-6)


def test_beta_weights_the_kl_in_the_loss(vae, tf):
    model = _small_vae(vae, beta=4.0)
    loss, m = model.loss(IMAGES[:8], _seed(tf))
    assert float(loss) == pytest.approx(-float(m["reconstruction"]) + 4.0 * float(m["kl"]),
                                        rel=1e-6)


def test_mmd_vae_loss_is_reconstruction_plus_weighted_mmd(vae, tf):
    model = _small_vae(vae, regularizer="mmd", mmd_weight=50.0,
                       prior=vae.mixture_prior(2, components=3))
    loss, metrics = model.loss(IMAGES[:16], _seed(tf))
    assert set(metrics) == {"loss", "elbo", "reconstruction", "kl", "mmd"}
    m = {k: float(v) for k, v in metrics.items()}
    assert m["mmd"] > 0
    assert float(loss) == pytest.approx(-m["reconstruction"] + 50.0 * m["mmd"], rel=1e-5)
    assert m["elbo"] == pytest.approx(m["reconstruction"] - m["kl"], rel=1e-6)


def test_vae_encode_decode_sample_give_images_in_the_unit_interval(vae, tf):
    model = _small_vae(vae)
    codes = model.encode(IMAGES[:3]).numpy()
    assert codes.shape == (3, 2)
    np.testing.assert_allclose(codes, model.encoder(IMAGES[:3]).mean().numpy())
    for images in (model.decode(codes), model.reconstruct(IMAGES[:3]),
                   model.sample(5, seed=_seed(tf))):
        images = images.numpy()
        assert images.shape[1:] == IMAGE and images.min() >= 0 and images.max() <= 1
    assert model.sample(5, seed=_seed(tf)).shape == (5, *IMAGE)
    with pytest.raises(ValueError, match="n must be >= 1"):
        model.sample(0, seed=_seed(tf))


# --------------------------------------------------------------------------------------------
# Training, evaluation, checkpoints
# --------------------------------------------------------------------------------------------


def test_fit_improves_the_elbo_and_traces_the_step_once(vae, dataset, capsys):
    model = _small_vae(vae)
    before = vae.evaluate(model, dataset)
    history = vae.fit(model, dataset, epochs=3, valid=dataset.take(1), learning_rate=3e-3,
                      progress=True)
    after = vae.evaluate(model, dataset)
    bar = capsys.readouterr().err
    assert "training" in bar and "3/3" in bar and "valid loss" in bar
    assert history.traces == 1
    assert history.epochs == 3 and history.steps == 3 * 4 and history.resumed_from_epoch == 0
    assert len(history.train["loss"]) == len(history.valid["elbo"]) == 3
    assert history.train["loss"][-1] < history.train["loss"][0] - 20, history.train["loss"]
    assert after["elbo"] > before["elbo"] + 30, (before, after)
    assert after["loss"] == pytest.approx(-after["elbo"], rel=1e-6)


def test_fit_resumes_from_a_checkpoint_exactly_where_it_stopped(vae, dataset, tmp_path):
    dataset = dataset.take(2)  # two steps per epoch are enough here
    first = _small_vae(vae)
    start = _weights(first)
    h2 = vae.fit(first, dataset, epochs=2, checkpoint_dir=tmp_path, learning_rate=3e-3)
    saved = _weights(first)
    assert (tmp_path / "history.json").exists() and h2.epochs == 2

    # A restore-only call: a fresh model with other weights gets the saved ones, no training.
    restored = _small_vae(vae)
    assert not all(np.array_equal(a, b) for a, b in zip(saved, _weights(restored)))
    h_restore = vae.fit(restored, dataset, epochs=2, checkpoint_dir=tmp_path)
    assert h_restore.resumed_from_epoch == 2 and h_restore.epochs == 2
    assert h_restore.traces == 0
    assert all(np.array_equal(a, b) for a, b in zip(saved, _weights(restored)))

    # Resuming to 4 epochs continues the history and the optimizer and seed streams: the
    # result equals an uninterrupted 4-epoch run from the same start.
    resumed = _small_vae(vae)
    h4 = vae.fit(resumed, dataset, epochs=4, checkpoint_dir=tmp_path, learning_rate=3e-3)
    assert h4.resumed_from_epoch == 2 and h4.epochs == 4 and h4.steps == 8
    assert set(h4.train) == {"loss", "elbo", "reconstruction", "kl"}
    assert all(len(values) == 4 for values in h4.train.values())
    assert h4.train["loss"][:2] == h2.train["loss"]
    straight = _small_vae(vae)
    for v, value in zip(straight.trainable_variables, start):
        v.assign(value)
    h_straight = vae.fit(straight, dataset, epochs=4, learning_rate=3e-3)
    np.testing.assert_allclose(h4.train["loss"], h_straight.train["loss"], rtol=1e-5)
    for a, b in zip(_weights(resumed), _weights(straight)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-3.index",
                                                                     "ckpt-4.index"]


def test_fit_refuses_a_model_whose_keras_variables_are_invisible(vae, tf, dataset):
    import keras

    class Hidden(tf.Module):  # the pitfall: tf.Module does not see Keras 3 variables
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.Input(IMAGE), keras.layers.Flatten(),
                                         keras.layers.Dense(1)])

        def loss(self, x, seed):
            loss = tf.reduce_mean(self.net(x))
            return loss, {"loss": loss}

    model = Hidden()
    assert len(model.net.trainable_variables) == 2 and model.trainable_variables == ()
    with pytest.raises(ValueError, match="has no trainable variables"):
        vae.fit(model, dataset, epochs=1)
    with pytest.raises(TypeError, match=r"model must have a loss\(batch, seed\) method"):
        vae.fit(object(), dataset, epochs=1)


def test_fit_and_evaluate_need_datasets_of_images_alone(vae, tf, dataset):
    model = _small_vae(vae)
    labelled = tf.data.Dataset.from_tensor_slices((IMAGES[:8], np.arange(8))).batch(4)
    with pytest.raises(ValueError, match="a VAE trains on batches of images alone"):
        vae.fit(model, labelled, epochs=1)
    with pytest.raises(ValueError, match="a VAE trains on batches of images alone"):
        vae.fit(model, dataset, valid=labelled, epochs=1)
    with pytest.raises(TypeError, match=r"train must be a tf\.data\.Dataset"):
        vae.fit(model, IMAGES, epochs=1)
    with pytest.raises(ValueError, match="a VAE trains on batches of images alone"):
        vae.evaluate(model, labelled)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        vae.fit(model, dataset, epochs=0)
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        vae.fit(model, dataset, epochs=1, learning_rate=0.0)
    with pytest.raises(ValueError, match="dataset is empty"):
        vae.evaluate(model, dataset.take(0))
    with pytest.raises(ValueError, match="train is empty"):
        vae.fit(model, dataset.take(0), epochs=1)


def test_evaluate_is_deterministic_for_a_fixed_seed(vae, dataset):
    model = _small_vae(vae)
    a = vae.evaluate(model, dataset, seed=5)
    b = vae.evaluate(model, dataset, seed=5)
    c = vae.evaluate(model, dataset, seed=6)
    assert a == b
    assert a["reconstruction"] != c["reconstruction"]  # the seed drives z ~ q(z | x)
    assert a["kl"] == pytest.approx(c["kl"], rel=1e-6)  # the analytic KL has no noise
    with pytest.raises(ValueError, match="seed must be <= 2147483647"):
        vae.evaluate(model, dataset, seed=2**32)  # would wrap around to seed 0 in int32


@pytest.fixture(scope="module")
def mean_pixel(tf):
    """A model class whose loss is the mean pixel of the batch (deterministic, one variable)."""

    class MeanPixel(tf.Module):
        def __init__(self):
            super().__init__()
            self.v = tf.Variable(1.0)

        def loss(self, x, seed):
            value = tf.reduce_mean(x) * self.v
            return value, {"loss": value}

    return MeanPixel


def test_evaluate_weights_batches_by_their_size(vae, tf, mean_pixel):
    data = IMAGES[:10]
    uneven = tf.data.Dataset.from_tensor_slices(data).batch(4)  # batches of 4, 4 and 2
    result = vae.evaluate(mean_pixel(), uneven)
    assert result["loss"] == pytest.approx(float(data.mean()), rel=1e-6)
    unweighted = np.mean([data[:4].mean(), data[4:8].mean(), data[8:].mean()])
    assert result["loss"] != pytest.approx(unweighted, rel=1e-6)  # the weighting matters


def test_evaluated_models_can_still_be_garbage_collected(vae, tf, mean_pixel):
    from tfpcourse import training

    model = mean_pixel()
    assert vae.evaluate(model, tf.data.Dataset.from_tensor_slices(IMAGES[:4]).batch(2))
    assert model in training._EVALUATORS  # the compiled evaluator is cached for the model ...
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # ... but does not keep it alive


def test_importance_weighted_nll_counts_images_and_is_independent_of_batching(vae, tf):
    model = _small_vae(vae)
    images = IMAGES[:10]
    result = vae.importance_weighted_nll(model, images, k=5, batch_size=4)
    assert isinstance(result, vae.IWAEResult)
    assert result.n == 10 and result.k == 5
    assert np.isfinite(result.nll) and result.nll > 0 and result.stderr > 0
    # A dataset is re-batched to batch_size, so its own batching (3) does not change the
    # result: the same batches of 4, 4 and 2 with the same seeds.
    from_dataset = vae.importance_weighted_nll(
        model, tf.data.Dataset.from_tensor_slices(images).batch(3), k=5, batch_size=4)
    assert from_dataset.n == 10
    assert from_dataset.nll == pytest.approx(result.nll, rel=1e-6)
    assert from_dataset.stderr == pytest.approx(result.stderr, rel=1e-5)
    single = vae.importance_weighted_nll(model, images[:1], k=3)
    assert single.n == 1 and single.stderr == 0.0


def test_per_image_bounds_are_what_the_nll_averages(vae, tf):
    model = _small_vae(vae)
    images = IMAGES[:10]
    per_image = vae.importance_weighted_log_likelihoods(model, images, k=5, seed=3,
                                                        batch_size=4)
    assert per_image.shape == (10,) and per_image.dtype == np.float64
    assert np.all(np.isfinite(per_image)) and np.all(per_image < 0)
    result = vae.importance_weighted_nll(model, images, k=5, seed=3, batch_size=4)
    assert result.nll == pytest.approx(-per_image.mean(), rel=1e-12)
    assert result.stderr == pytest.approx(per_image.std(ddof=1) / np.sqrt(10), rel=1e-12)
    # The same seed gives the same draws; another seed gives other draws.
    again = vae.importance_weighted_log_likelihoods(model, images, k=5, seed=3, batch_size=4)
    np.testing.assert_array_equal(again, per_image)
    other = vae.importance_weighted_log_likelihoods(model, images, k=5, seed=4, batch_size=4)
    assert not np.allclose(other, per_image)


def test_per_image_bounds_tighten_with_k_on_average(vae, tf):
    model = _small_vae(vae)
    low, high = (vae.importance_weighted_log_likelihoods(model, IMAGES[:40], k=k, seed=0)
                 for k in (1, 50))
    gain = high - low
    assert gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(len(gain))


def test_posterior_moments_encode_in_batches_like_one_call(vae, tf):
    model = _small_vae(vae, latent_dim=3)
    locs, scales = vae.posterior_moments(model, IMAGES[:25], batch_size=7)
    assert locs.shape == scales.shape == (25, 3)
    q = model.encoder(IMAGES[:25])
    np.testing.assert_allclose(locs, q.mean().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scales, q.stddev().numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(scales > 0)


def test_posterior_moments_checks_its_inputs(vae, tf):
    model = _small_vae(vae)
    with pytest.raises(ValueError, match="images must be a non-empty batch"):
        vae.posterior_moments(model, np.zeros((0, *IMAGE), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        vae.posterior_moments(model, IMAGES[:2], batch_size=0)


def test_importance_weighted_nll_checks_its_inputs(vae, tf):
    model = _small_vae(vae)
    with pytest.raises(ValueError, match="images must be a non-empty batch"):
        vae.importance_weighted_nll(model, np.zeros((0, *IMAGE), np.float32))
    labelled = tf.data.Dataset.from_tensor_slices((IMAGES[:4], np.arange(4))).batch(2)
    with pytest.raises(ValueError, match="images must yield batches of images alone"):
        vae.importance_weighted_nll(model, labelled)
    with pytest.raises(ValueError, match="k must be >= 1"):
        vae.importance_weighted_nll(model, IMAGES[:2], k=0)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def test_interpolate_walks_the_straight_line_between_the_endpoints(vae):
    path = vae.interpolate([0.0, 2.0], [1.0, -2.0], steps=5)
    assert path.shape == (5, 2) and path.dtype == np.float32
    np.testing.assert_array_equal(path[0], [0.0, 2.0])
    np.testing.assert_array_equal(path[-1], [1.0, -2.0])
    np.testing.assert_allclose(path[2], [0.5, 0.0])
    np.testing.assert_allclose(np.diff(path, axis=0), [[0.25, -1.0]] * 4, atol=1e-6)


def test_interpolate_rejects_bad_arguments(vae):
    with pytest.raises(ValueError, match="steps must be >= 2"):
        vae.interpolate([0.0], [1.0], steps=1)
    with pytest.raises(ValueError, match=r"same size, got \(2,\) and \(3,\)"):
        vae.interpolate([0.0, 1.0], [1.0, 2.0, 3.0], steps=3)
    with pytest.raises(ValueError, match="must be vectors"):
        vae.interpolate([[0.0, 1.0]], [[1.0, 2.0]], steps=3)


def test_metrics_table_aligns_the_formatted_numbers(vae):
    table = vae.metrics_table({
        "vae": {"nll": 100.126, "kl": 5.5},
        "mmd-vae": {"nll": 98.7, "mmd": 0.0123},
    })
    lines = table.splitlines()
    assert len(lines) == 3
    header = lines[0].split()
    assert header == ["nll", "kl", "mmd"]  # columns in first-seen order
    assert lines[1].split() == ["vae", "100.13", "5.50"]
    assert lines[2].split() == ["mmd-vae", "98.70", "0.01"]
    assert len({len(line) for line in lines}) == 1  # aligned: every line has the same width
    assert lines[2].index("0.01") > lines[1].index("5.50")  # the missing kl cell stays blank
    assert "0.0123" in vae.metrics_table({"m": {"mmd": 0.0123}}, digits=4)
