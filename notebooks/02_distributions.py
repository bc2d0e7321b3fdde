# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Distributions: sampling, shapes, mixtures and KL divergence
#
# A probabilistic model is made of probability distributions, and in TensorFlow Probability
# (TFP) a distribution is an object you can do two things with: *draw samples* from it and
# *evaluate the log-probability* of values under it. Everything in the later chapters, from
# normalizing flows to variational autoencoders (VAEs), is built from these two operations.
# This chapter learns them on small examples where every number can be checked by hand.
#
# **What you will learn**
#
# 1. How to build a distribution, draw repeatable samples from it with *stateless* seeds, and
#    evaluate log-probabilities; for the Normal, Bernoulli and Categorical distributions.
# 2. The three shapes of TFP: *sample* shape, *batch* shape and *event* shape, and what
#    `sample` and `log_prob` return for each combination.
# 3. How parameters broadcast into a batch of distributions.
# 4. How `tfd.Independent` turns batch dimensions into event dimensions, and why a VAE's
#    decoder needs it; how data of the wrong shape broadcasts silently into a wrong
#    log-likelihood, and what `Independent` and `validate_args=True` do and do not catch.
# 5. How to build mixtures with `Mixture` and `MixtureSameFamily`.
# 6. What the ELBO is and why it is a lower bound on the log-evidence; how to compute a KL
#    divergence exactly with `tfd.kl_divergence`, how to estimate it by Monte Carlo, and how
#    fast that estimate's error shrinks; the identity log-evidence = ELBO + KL to the
#    posterior, checked on a model whose answer is known.
# 7. Which distributions let gradients flow through their samples (*reparameterization*),
#    which a VAE relies on.
#
# **Prerequisites:** [chapter 01](01_graphs_logistic_regression.ipynb) (tensors and eager
# execution); densities, expectations and logarithms at the level of a first probability
# course.

# %% [markdown]
# ## 0. Set-up
#
# The same start as every chapter: quiet TensorFlow start-up and a device report, a seeded
# run, and the profile. TFP's distributions live in `tfp.distributions`, imported under the
# customary short name `tfd`.
#
# The first, collapsed cell matters only on Colab, Binder or a fresh Python: it installs the
# course when the kernel lacks it and stops with what to install if TensorFlow is too old.
# Everywhere else it does nothing.

# %% tags=["hide-cell"]
# Colab, Binder, a fresh Python: install the course if this kernel lacks it (else: nothing).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("tfpcourse") is None:
    source = os.environ.get("TFPCOURSE_INSTALL", "git+https://github.com/tfpcourse/tfpcourse")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"Installing the course failed:\n{pip.stderr}")
    importlib.invalidate_caches()
from tfpcourse import stack

stack.require_supported()

# %%
from tfpcourse import device

device.setup()

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse import check, config, seeding
from tfpcourse.distributions import describe_shapes, kl_monte_carlo
from tfpcourse.plot import density_1d, density_2d

tfd = tfp.distributions

cfg = config.get_config()
seeding.seed_everything(0)
print(f"Profile: {cfg.profile}")

# %% [markdown]
# ## 1. Sampling and log-probabilities
#
# ### The Normal distribution
#
# A distribution is built from its parameters. The standard Normal has mean (`loc`) 0 and
# standard deviation (`scale`) 1. Printing it shows its name, two shapes we meet in section 2,
# and the dtype of its values.

# %%
# NBVAL_CHECK_OUTPUT
normal = tfd.Normal(loc=0.0, scale=1.0)
print(normal)
print("mean:", normal.mean().numpy(), "| standard deviation:", normal.stddev().numpy())

# %% [markdown]
# `sample(n)` draws `n` independent values and returns them as one tensor of shape `(n,)`.
# The `seed` argument makes the draw repeatable. We pass TFP a *stateless* seed: a tensor of
# two integers made by `seeding.stateless_seed`. A stateless draw is a pure function of its
# seed, so the numbers do not depend on what ran before: re-running a cell or running cells
# out of order gives the same numbers.

# %%
# NBVAL_CHECK_OUTPUT
seed = seeding.stateless_seed(42)
x = normal.sample(6, seed=seed)
print("seed:", seed.numpy(), "| shape:", x.shape, "| dtype:", x.dtype.name)
print("draws:", np.round(x.numpy(), 4))
print("same seed again, same draws:", np.array_equal(normal.sample(6, seed=seed).numpy(),
                                                     x.numpy()))

# %% [markdown]
# The kind of seed matters. A plain integer passed straight to `sample`, as in
# `sample(3, seed=5)`, is a *stateful* seed: TFP feeds it to a stateful random op
# (`tf.random.uniform`) to draw a fresh seed pair, and that op's state moves on with every
# call, so the same call twice gives different draws. The stateless seed made from the same
# integer gives the same draws every time:

# %%
# NBVAL_CHECK_OUTPUT
int_a, int_b = normal.sample(3, seed=5), normal.sample(3, seed=5)
print("sample(3, seed=5) twice, same draws:", np.array_equal(int_a.numpy(), int_b.numpy()))
seed_5 = seeding.stateless_seed(5)
st_a, st_b = normal.sample(3, seed=seed_5), normal.sample(3, seed=seed_5)
print("sample(3, seed=stateless_seed(5)) twice, same draws:",
      np.array_equal(st_a.numpy(), st_b.numpy()))
assert not np.array_equal(int_a.numpy(), int_b.numpy())
assert np.array_equal(st_a.numpy(), st_b.numpy())

# %% [markdown]
# So in this course an integer never goes to TFP's `sample` directly. The course's own
# helpers that take a seed, such as `kl_monte_carlo` in section 5, accept an integer for
# convenience and turn it into a stateless seed with `seeding.stateless_seed` first.
#
# A stateless seed is never "used up": passing it twice gives the same draws twice, as we just
# saw. For *new* random numbers, split the seed into independent child seeds. The argument of
# `sample` may also be a shape, not just a number: `sample((2, 3))` draws six values arranged
# as a 2 by 3 tensor.

# %%
# NBVAL_CHECK_OUTPUT
seed_a, seed_b = seeding.split_seed(seed, 2)
print("child seed a:", np.round(normal.sample(3, seed=seed_a).numpy(), 4))
print("child seed b:", np.round(normal.sample(3, seed=seed_b).numpy(), 4))
print("sample((2, 3)) has shape", normal.sample((2, 3), seed=seed_a).shape)

# %% [markdown]
# `log_prob(x)` evaluates the logarithm of the density at `x`, for every entry of `x` at once.
# For the Normal with mean $\mu$ and standard deviation $\sigma$,
#
# $$ \log p(x) = -\tfrac12 \log(2\pi) - \log\sigma - \frac{(x-\mu)^2}{2\sigma^2}, $$
#
# so the standard Normal's log-density at 0 is $-\tfrac12\log(2\pi) = -0.9189385$. We write the
# formula once in NumPy (in float64) and check TFP against it:

# %%
# NBVAL_CHECK_OUTPUT
def normal_logpdf(x, mu, sigma):
    """log N(x; mu, sigma^2) in float64 NumPy: the formula we check TFP against."""
    x = np.asarray(x, np.float64)
    return -0.5 * np.log(2 * np.pi) - np.log(sigma) - (x - mu) ** 2 / (2 * sigma**2)


points = np.array([-1.0, 0.0, 1.0, 2.5], np.float32)
lp_tfp = normal.log_prob(points).numpy()
lp_formula = normal_logpdf(points, 0.0, 1.0)
print("x            :", points)
print("TFP log_prob :", np.round(lp_tfp, 7))
print("formula      :", np.round(lp_formula, 7))
print(f"-0.5 log(2 pi) = {-0.5 * np.log(2 * np.pi):.7f}")
np.testing.assert_allclose(lp_tfp, lp_formula, rtol=1e-6)
np.testing.assert_allclose(lp_tfp[1], -0.9189385, rtol=1e-7)
rel_diff = np.max(np.abs(lp_tfp - lp_formula) / np.abs(lp_formula))
print(f"largest relative difference: {rel_diff:.1e} "
      f"(float32 machine epsilon: {np.finfo(np.float32).eps:.1e})")
assert rel_diff < np.finfo(np.float32).eps

# %% [markdown]
# The last printed digit can differ (-4.0439386 from TFP against -4.0439385 from the formula).
# TFP computes in float32, which carries about seven significant digits; the two agree to
# float32 precision, a relative difference below float32's machine epsilon of about
# $10^{-7}$. The same holds for every printed pair in this chapter that differs only in its
# last digit.
#
# Why logarithms? The likelihood of independent observations is the *product* of their
# densities, and a product of many numbers below 1 underflows. The standard Normal's density
# is at most $1/\sqrt{2\pi} \approx 0.4$, so the product of a thousand densities is below
# $0.4^{1000} \approx 10^{-398}$, far below the smallest float32 (about $10^{-45}$). The sum of
# the log-densities is an ordinary number:

# %%
# NBVAL_CHECK_OUTPUT
draws = normal.sample(1000, seed=seeding.stateless_seed(1))
product = tf.reduce_prod(normal.prob(draws)).numpy()
log_sum = tf.reduce_sum(normal.log_prob(draws)).numpy()
by_hand = normal_logpdf(draws.numpy(), 0.0, 1.0).sum()
print(f"product of 1000 densities : {product}")
print(f"sum of 1000 log-densities : {log_sum:.2f} (formula: {by_hand:.2f})")
assert product == 0.0
np.testing.assert_allclose(log_sum, by_hand, rtol=1e-5)

# %% [markdown]
# ### The Bernoulli distribution
#
# A Bernoulli variable is 1 with probability $p$ and 0 otherwise, so
# $\log P(1) = \log p$ and $\log P(0) = \log(1-p)$. Its samples are integers (`int32`):

# %%
# NBVAL_CHECK_OUTPUT
coin = tfd.Bernoulli(probs=0.9)
flips = coin.sample(10, seed=seeding.stateless_seed(2))
print(coin)
print("ten flips:", flips.numpy(), "| dtype:", flips.dtype.name)
lp = coin.log_prob([1, 0]).numpy()
print(f"log P(1) = {lp[0]:.7f}, log 0.9 = {np.log(0.9):.7f}")
print(f"log P(0) = {lp[1]:.7f}, log 0.1 = {np.log(0.1):.7f}")
np.testing.assert_allclose(lp, np.log([0.9, 0.1]), rtol=1e-6)

# %% [markdown]
# Ten flips say little about $p$. The share of ones in $n$ flips has standard error
# $\sqrt{p(1-p)/n}$, which is 0.003 for $n = 10{,}000$. So the share in 10,000 flips should be
# within a few of these standard errors of 0.9:

# %%
# NBVAL_CHECK_OUTPUT
n_flips = 10_000
se_share = np.sqrt(0.9 * 0.1 / n_flips)
share = coin.sample(n_flips, seed=seeding.stateless_seed(3)).numpy().mean()
print(f"share of ones in {n_flips:,} flips: {share:.4f} | standard error {se_share:.4f}")
print(f"distance from 0.9 in standard errors: {abs(share - 0.9) / se_share:.2f}")

# %% [markdown]
# Is the formula for the standard error right? Repeat the 10,000 flips with 200 independent
# stateless seeds and measure how much the share actually varies from run to run:

# %%
# NBVAL_CHECK_OUTPUT
flip_seeds = seeding.split_seed(seeding.stateless_seed(30), 200)
shares = np.array([coin.sample(n_flips, seed=s).numpy().mean() for s in flip_seeds])
spread = shares.std(ddof=1)
print(f"standard deviation of the share over 200 seeds: {spread:.5f}")
print(f"standard error sqrt(p(1 - p)/n)             : {se_share:.5f}")
print(f"ratio: {spread / se_share:.3f}")
np.testing.assert_allclose(spread, se_share, rtol=0.2)

# %% [markdown]
# The measured spread matches the formula: their ratio is 1.001. (The standard deviation of
# 200 values is itself uncertain by about $1/\sqrt{2 \cdot 199} \approx 5\%$, so the assert
# allows 20%.)

# %% [markdown]
# A Bernoulli can also be given *logits* $t$ instead of probabilities, with
# $p = \sigma(t) = 1/(1+e^{-t})$. This is how neural networks output it (a network's last layer
# produces any real number, not a number in $[0, 1]$). Then
# $\log P(1) = \log \sigma(t) = -\log(1+e^{-t}) = -\mathrm{softplus}(-t)$, which is minus
# chapter 01's binary cross-entropy. TFP 0.25 does not call chapter 01's
# `sigmoid_cross_entropy_with_logits`; it evaluates an equally stable formula,
# $-\mathrm{softplus}(-t)$ (`tf.math.softplus` is computed without overflow). The naive route,
# taking the log of $\sigma(t)$, fails for a very negative logit: in float32, $\sigma(-100)$
# rounds to 0 and its log is $-\infty$, while the exact value is $-100.0$ to float32
# precision:

# %%
# NBVAL_CHECK_OUTPUT
t = np.array([-100.0, -30.0, -2.0, 0.0, 2.0], np.float32)
lp_logits = tfd.Bernoulli(logits=t).log_prob(tf.ones_like(t)).numpy()
minus_softplus = -tf.math.softplus(-t).numpy()
xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(t), logits=t).numpy()
naive = tf.math.log(tf.sigmoid(t)).numpy()
exact = -np.log1p(np.exp(-t.astype(np.float64)))
print("logit t               :", t)
print("Bernoulli log P(1)    :", np.round(lp_logits, 5))
print("-softplus(-t)         :", np.round(minus_softplus, 5))
print("minus cross-entropy   :", np.round(-xent, 5))
print("naive log(sigmoid(t)) :", np.round(naive, 5))
print("exact, float64        :", np.round(exact, 5))
np.testing.assert_array_equal(lp_logits, minus_softplus)
np.testing.assert_allclose(lp_logits, exact, rtol=1e-6)
np.testing.assert_allclose(lp_logits, -xent, rtol=1e-6)
assert naive[0] == -np.inf

# %% [markdown]
# ### The Categorical distribution
#
# A Categorical variable takes one of $K$ values $0, \dots, K-1$, value $k$ with probability
# $\pi_k$. It is the distribution of a class label, and it chooses the component of a mixture
# (section 4). Samples are `int32` class indices, and $\log P(k) = \log \pi_k$:

# %%
# NBVAL_CHECK_OUTPUT
probs = np.array([0.2, 0.5, 0.3], np.float32)
label_dist = tfd.Categorical(probs=probs)
rolls = label_dist.sample(12, seed=seeding.stateless_seed(4))
print(label_dist)
print("twelve draws:", rolls.numpy(), "| dtype:", rolls.dtype.name)
lp = label_dist.log_prob([0, 1, 2]).numpy()
print("log_prob of 0, 1, 2:", np.round(lp, 7))
print("log of the probs   :", np.round(np.log(probs.astype(np.float64)), 7))
np.testing.assert_allclose(lp, np.log(probs), rtol=1e-6)

# %% [markdown]
# The frequencies of many draws approach the probabilities:

# %%
# NBVAL_CHECK_OUTPUT
rolls = label_dist.sample(10_000, seed=seeding.stateless_seed(5)).numpy()
freq = np.bincount(rolls, minlength=3) / rolls.size
print("frequencies in 10,000 draws:", np.round(freq, 4))
print("probabilities              :", probs)
print("all within 0.01:", bool(np.all(np.abs(freq - probs) < 0.01)))

# %% [markdown]
# (shapes)=
# ## 2. Shapes: sample, batch and event
#
# A TFP distribution object can hold *many* distributions at once, and each of them can be
# over vectors rather than numbers. Three shapes keep this straight:
#
# | shape | what it counts | set by |
# |---|---|---|
# | **sample** | independent draws | the argument of `sample(...)` |
# | **batch** | distributions, each with its own parameters | parameter shapes minus event dims |
# | **event** | the dimensions of one draw | kind of distribution + last parameter dims |
#
# In words: the *batch* shape is the (broadcast) shape of the parameters minus the rightmost
# dimension(s) that one event uses, and the *event* shape is fixed by the kind of
# distribution plus, for a multivariate one, those last parameter dimension(s). A univariate
# Normal has event shape `()` whatever the shape of its parameters, so every parameter
# dimension is a batch dimension. A multivariate Normal's `loc` holds one vector per
# distribution, so the last dimension of `loc` is the event and only the dimensions before it
# are batch: `three_mvns` below has parameters of shape `(3, 2)` but batch shape `(3,)` and
# event shape `(2,)`.
#
# They combine in a fixed order:
#
# $$ \texttt{sample(s).shape} = \text{sample shape} + \text{batch shape} +
#    \text{event shape}, \qquad \texttt{log\_prob(x).shape} = \text{sample shape} +
#    \text{batch shape}. $$
#
# `log_prob` returns one number per event: the event dimensions are the ones a single
# log-probability covers. Compare three objects: a *batch* of three univariate Normals,
# *one* two-dimensional Normal with a diagonal covariance (`MultivariateNormalDiag`), and a
# batch of three such 2-D Normals.
#
# `MultivariateNormalDiag` takes the mean vector `loc` and a vector `scale_diag` of standard
# deviations, one per coordinate, not variances: its covariance matrix is
# $\mathrm{diag}(\texttt{scale\_diag}^2)$. We print `one_mvn`'s covariance to check.

# %%
# NBVAL_CHECK_OUTPUT
three_normals = tfd.Normal(loc=[-2.0, 0.0, 2.0], scale=[0.6, 1.0, 0.8])
one_mvn = tfd.MultivariateNormalDiag(loc=[0.0, 1.0], scale_diag=[1.0, 0.5])
three_mvns = tfd.MultivariateNormalDiag(
    loc=[[-2.0, 0.0], [0.0, 1.0], [2.0, 2.0]],
    scale_diag=[[0.6, 0.6], [1.0, 0.5], [0.8, 1.2]],
)
for dist in (three_normals, one_mvn, three_mvns):
    print(dist)
cov = one_mvn.covariance().numpy()
print("one_mvn.covariance():\n", cov)
np.testing.assert_allclose(cov, np.diag([1.0, 0.5]) ** 2)

# %% [markdown]
# `tfpcourse.distributions.describe_shapes` draws a sample of a given sample shape, evaluates
# `log_prob` on it, and reports every shape. With a sample shape of `(5,)`, and a fourth
# object to show the rule once more, three 5-D Normals built from `loc` of shape `(3, 5)`:

# %%
# NBVAL_CHECK_OUTPUT
examples = {
    "3 Normals": three_normals,
    "one 2-D MVN": one_mvn,
    "3 x 2-D MVN": three_mvns,
    "3 x 5-D MVN": tfd.MultivariateNormalDiag(loc=tf.zeros([3, 5])),
}
print(f"{'':12s} {'loc':>7s} {'batch':>7s} {'event':>7s} {'sample(5)':>11s} {'log_prob':>9s}")
for name, dist in examples.items():
    r = describe_shapes(dist, sample_shape=5)
    loc_shape = tuple(dist.loc.shape)
    print(f"{name:12s} {loc_shape!s:>7s} {r.batch_shape!s:>7s} {r.event_shape!s:>7s} "
          f"{r.sample!s:>11s} {r.log_prob!s:>9s}")
    assert r.sample == r.sample_shape + r.batch_shape + r.event_shape
    assert r.log_prob == r.sample_shape + r.batch_shape

# %% [markdown]
# What does `log_prob` return for each? For the batch of three Normals, `log_prob(0.0)` is
# three numbers: the log-density of 0 under each Normal (the scalar 0 is broadcast to the
# batch). We check each against the formula:

# %%
# NBVAL_CHECK_OUTPUT
lp = three_normals.log_prob(0.0).numpy()
expected = normal_logpdf(0.0, np.array([-2.0, 0.0, 2.0]), np.array([0.6, 1.0, 0.8]))
print("shape:", lp.shape, "| values:", np.round(lp, 5), "| formula:", np.round(expected, 5))
np.testing.assert_allclose(lp, expected, rtol=1e-5)

# %% [markdown]
# For the 2-D Normal, a point is a vector of length 2 and its log-density is *one* number.
# With a diagonal covariance the two coordinates are independent, so the log-density is the
# sum of two univariate log-densities:
#
# $$ \log \mathcal N\big((x_1, x_2);\ \mu, \mathrm{diag}(\sigma^2)\big) =
#    \log \mathcal N(x_1; \mu_1, \sigma_1^2) + \log \mathcal N(x_2; \mu_2, \sigma_2^2). $$

# %%
# NBVAL_CHECK_OUTPUT
point = np.array([0.0, 0.0], np.float32)
lp = one_mvn.log_prob(point).numpy()
expected = normal_logpdf(0.0, 0.0, 1.0) + normal_logpdf(0.0, 1.0, 0.5)
print("shape:", lp.shape, f"| value: {lp:.5f} | sum of the two univariate terms: {expected:.5f}")
np.testing.assert_allclose(lp, expected, rtol=1e-5)

# %% [markdown]
# For the batch of three 2-D Normals, the same point is evaluated under each of the three:
# three numbers, each a sum over the two coordinates.

# %%
# NBVAL_CHECK_OUTPUT
lp = three_mvns.log_prob(point).numpy()
locs = np.array([[-2.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
scales = np.array([[0.6, 0.6], [1.0, 0.5], [0.8, 1.2]])
expected = normal_logpdf(0.0, locs, scales).sum(axis=-1)
print("shape:", lp.shape, "| values:", np.round(lp, 5), "| formula:", np.round(expected, 5))
np.testing.assert_allclose(lp, expected, rtol=1e-5)

# %% [markdown]
# The same parameters can therefore mean different things. A batch of *two* univariate
# Normals with `one_mvn`'s parameters gives, for the same point, two numbers; their sum is
# `one_mvn`'s single log-density. Which one you want depends on the question: "how likely is
# each coordinate?" (a batch) or "how likely is the point?" (an event). Section 3 converts
# between the two.

# %%
# NBVAL_CHECK_OUTPUT
two_normals = tfd.Normal(loc=[0.0, 1.0], scale=[1.0, 0.5])
lp_batch = two_normals.log_prob(point).numpy()
print("batch of 2 Normals:", np.round(lp_batch, 5), f"-> sum {lp_batch.sum():.5f}")
print(f"one 2-D Normal    : {one_mvn.log_prob(point).numpy():.5f}")
np.testing.assert_allclose(lp_batch.sum(), one_mvn.log_prob(point).numpy(), rtol=1e-6)

# %% [markdown]
# A picture of the difference: the batch is three separate curves over one axis; the event
# is one density over the plane.

# %%
# NBVAL_CHECK_OUTPUT
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
density_1d(three_normals, (-5.0, 5.0), ax=ax1, title="batch_shape (3,), event_shape ()")
density_2d(one_mvn, (-3.5, 3.5), (-2.5, 4.5), ax=ax2,
           samples=one_mvn.sample(400, seed=seeding.stateless_seed(6)).numpy(),
           title="batch_shape (), event_shape (2,)")
fig.suptitle("A batch of three Normals versus one 2-D Normal")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 1.* Left: the three members of `three_normals`, one density curve each, labelled by
# their batch index (means -2, 0, 2), all over the same one-dimensional axis. Right: the
# density of `one_mvn` over the plane, with 400 of its samples as white dots. Its spread
# along $x_2$ is half its spread along $x_1$ (standard deviations 0.5 and 1), and it is
# centred at $(0, 1)$.

# %% [markdown]
# ### Broadcasting parameters
#
# Parameters are broadcast against each other by NumPy's rules, and the broadcast shape is the
# batch shape. A column of two means and a row of three standard deviations give a 2 by 3
# grid of Normals:

# %%
# NBVAL_CHECK_OUTPUT
grid = tfd.Normal(loc=[[0.0], [1.0]], scale=[1.0, 2.0, 3.0])
print("batch shape:", grid.batch_shape, "| event shape:", grid.event_shape)
print("means:\n", grid.mean().numpy())
print("standard deviations:\n", grid.stddev().numpy())

# %% [markdown]
# The argument of `log_prob` is broadcast too, against batch shape + event shape. One number
# is evaluated under all six Normals; a tensor of shape `(4, 1, 1)` gives four values, each
# under all six, so the result has shape `(4, 2, 3)`:

# %%
# NBVAL_CHECK_OUTPUT
print("log_prob(0.0) shape:         ", grid.log_prob(0.0).shape)
values = tf.reshape(tf.constant([-1.0, 0.0, 1.0, 2.0]), (4, 1, 1))
lp = grid.log_prob(values)
print("log_prob of a (4, 1, 1) shape:", lp.shape)
expected = normal_logpdf(values.numpy(), np.array([[0.0], [1.0]]), np.array([1.0, 2.0, 3.0]))
np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-5)
print("matches the formula entry by entry:", np.allclose(lp.numpy(), expected, rtol=1e-5))

# %% [markdown]
# Parameter shapes that do not broadcast are rejected when the distribution is built, for
# statically known shapes (shapes only known while a graph runs are checked later, when the
# values arrive), with a message that names both shapes:

# %%
# NBVAL_CHECK_OUTPUT
try:
    tfd.Normal(loc=[0.0, 1.0], scale=[1.0, 2.0, 3.0])
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 3. `tfd.Independent`: from batch to event
#
# Here is a batch of three Bernoullis with success probabilities 0.2, 0.6 and 0.9. Its
# `log_prob([1, 0, 1])` is three numbers: $\log 0.2$, $\log(1 - 0.6)$ and $\log 0.9$.

# %%
# NBVAL_CHECK_OUTPUT
three_coins = tfd.Bernoulli(probs=[0.2, 0.6, 0.9])
outcome = [1, 0, 1]
lp = three_coins.log_prob(outcome).numpy()
expected = np.log([0.2, 0.4, 0.9])
print(three_coins)
print("log_prob([1, 0, 1]):", np.round(lp, 7), "| expected:", np.round(expected, 7))
np.testing.assert_allclose(lp, expected, rtol=1e-6)

# %% [markdown]
# Often the three values are parts of *one* observation, and we want one number: the
# log-probability of the whole vector $(1, 0, 1)$. The three are independent, so that is the
# sum, $\log(0.2 \cdot 0.4 \cdot 0.9) = \log 0.072$. `tfd.Independent` declares exactly this:
# it treats the rightmost `reinterpreted_batch_ndims` batch dimensions as event dimensions.
# The result is one distribution over 3-vectors:

# %%
# NBVAL_CHECK_OUTPUT
coins_as_vector = tfd.Independent(three_coins, reinterpreted_batch_ndims=1)
lp = coins_as_vector.log_prob(outcome).numpy()
print(coins_as_vector)
print(f"log_prob([1, 0, 1]) = {lp:.7f} | log 0.072 = {np.log(0.072):.7f}")
np.testing.assert_allclose(lp, np.log(0.072), rtol=1e-6)

# %% [markdown]
# `Independent` changes how `log_prob` groups the numbers, not what a draw looks like: both
# objects draw samples of the same shape, and in TFP 0.25, given the same seed, we observe
# the same values too (this is how the class happens to be implemented, not a documented
# guarantee). `log_prob` of four draws has shape `(4, 3)` for the batch and `(4,)` for the
# `Independent` version, whose four values are the row sums of the other's.

# %%
# NBVAL_CHECK_OUTPUT
seed = seeding.stateless_seed(10)
s_batch = three_coins.sample(4, seed=seed)
s_event = coins_as_vector.sample(4, seed=seed)
print("samples (batch version):\n", s_batch.numpy())
print("identical samples:", np.array_equal(s_batch.numpy(), s_event.numpy()))
lp_batch = three_coins.log_prob(s_batch).numpy()
lp_event = coins_as_vector.log_prob(s_event).numpy()
print("log_prob shapes:", lp_batch.shape, "and", lp_event.shape)
print("Independent's log_prob:", np.round(lp_event, 5))
print("row sums of the batch's:", np.round(lp_batch.sum(axis=1), 5))
np.testing.assert_allclose(lp_event, lp_batch.sum(axis=1), rtol=1e-6)

# %% [markdown]
# `reinterpreted_batch_ndims` counts from the *right* of the batch shape. For a 2 by 3 batch
# of Normals, reinterpreting one dimension gives two distributions over 3-vectors, and
# reinterpreting both gives one distribution over 2 by 3 matrices:

# %%
# NBVAL_CHECK_OUTPUT
normals_2x3 = tfd.Normal(loc=tf.zeros([2, 3]), scale=1.0)
for ndims in (0, 1, 2):
    r = describe_shapes(tfd.Independent(normals_2x3, reinterpreted_batch_ndims=ndims), 5)
    print(f"reinterpreted_batch_ndims={ndims}: batch {r.batch_shape!s:7s} "
          f"event {r.event_shape!s:7s} log_prob of sample(5): {r.log_prob}")

# %% [markdown]
# ### Why a VAE decoder needs `Independent`
#
# A VAE for black-and-white images, such as the digits of the VAE chapters (05-07), has a
# *decoder* network that maps a code $z$ to one logit per pixel, and models each pixel as a
# Bernoulli given $z$. Its loss, which {ref}`section 5 <elbo>` derives, needs
# $\log p(x \mid z)$: the log-likelihood of the *whole image* $x$. The pixels are
# independent given $z$, so it is the sum over all $28 \times 28 = 784$ pixels:
#
# $$ \log p(x \mid z) = \sum_{i=1}^{784} \log \text{Bernoulli}(x_i;\ \text{logit}_i(z)). $$
#
# To see the shapes, stand in for a decoder's output with random logits for a batch of four
# images, and for the data with four random binary images.

# %%
# NBVAL_CHECK_OUTPUT
seed_logits, seed_images = seeding.split_seed(seeding.stateless_seed(8), 2)
logits = 2.0 * tf.random.stateless_normal([4, 28, 28, 1], seed=seed_logits)
images = tf.cast(tfd.Bernoulli(probs=0.3).sample([4, 28, 28, 1], seed=seed_images), tf.float32)

per_pixel = tfd.Bernoulli(logits=logits)
decoder_dist = tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
print("per pixel  :", per_pixel)
print("Independent:", decoder_dist)
print("log_prob shapes:", per_pixel.log_prob(images).shape, "and",
      decoder_dist.log_prob(images).shape)
assert decoder_dist.event_shape == (28, 28, 1)

# %% [markdown]
# Without `Independent`, the batch shape is `(4, 28, 28, 1)`: 3136 separate Bernoullis, and
# `log_prob` returns 3136 numbers. With `reinterpreted_batch_ndims=3`, the last three
# dimensions (height, width, channel) become the event: four distributions over images, and
# one log-likelihood per image. Each is the sum of that image's 784 per-pixel terms, and, as
# in section 1, minus the sum of chapter 01's cross-entropies:

# %%
# NBVAL_CHECK_OUTPUT
ll_image = decoder_dist.log_prob(images).numpy()
ll_summed = tf.reduce_sum(per_pixel.log_prob(images), axis=[1, 2, 3]).numpy()
xent_sum = tf.reduce_sum(
    tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits), axis=[1, 2, 3]
).numpy()
print("log p(x | z) per image     :", np.round(ll_image, 2))
print("sum of per-pixel log_probs :", np.round(ll_summed, 2))
print("minus summed cross-entropy :", np.round(-xent_sum, 2))
np.testing.assert_allclose(ll_image, ll_summed, rtol=1e-5)
np.testing.assert_allclose(ll_image, -xent_sum, rtol=1e-5)

# %% [markdown]
# Why does the grouping matter, if the numbers are the same? Because a loss averages what
# `log_prob` returns. Averaging the per-image values gives the mean log-likelihood *per
# image*, the *reconstruction term* of a VAE's loss. Averaging the per-pixel values gives a
# number 784 times smaller, the mean *per pixel*. The loss adds the reconstruction term to a
# KL divergence ({ref}`section 5 <kl-divergence>`) computed per image, so the per-pixel
# version silently weighs the KL term 784 times more than the model says it should.

# %%
# NBVAL_CHECK_OUTPUT
mean_per_image = tf.reduce_mean(decoder_dist.log_prob(images)).numpy()
mean_per_pixel = tf.reduce_mean(per_pixel.log_prob(images)).numpy()
print(f"mean log-likelihood per image: {mean_per_image:.2f}")
print(f"mean log-likelihood per pixel: {mean_per_pixel:.4f}")
print(f"ratio: {mean_per_image / mean_per_pixel:.1f}")
np.testing.assert_allclose(mean_per_image / mean_per_pixel, 784, rtol=1e-5)

# %% [markdown]
# The decoder distribution also samples whole images: `decoder_dist.sample()` has shape
# batch + event = `(4, 28, 28, 1)`, one random image per code: this is how a VAE generates
# new images.

# %%
# NBVAL_CHECK_OUTPUT
print("one sample from the decoder distribution:",
      decoder_dist.sample(seed=seeding.stateless_seed(9)).shape)

# %% [markdown]
# ### Always pass `reinterpreted_batch_ndims`
#
# The argument may be left out. In TFP 0.25 its default, `None`, reinterprets *all batch
# dimensions but the first*, treating the first as the batch of examples, and passing `None`
# is deprecated (TFP logs a deprecation warning, which we silence here to keep the output
# clean). For the decoder's `(4, 28, 28, 1)` logits the default happens to give the right
# event shape. But the same code applied to one image's logits, of shape `(28, 28, 1)`
# without a batch dimension, now takes the 28 rows for a batch, and the batch of three coins
# is left unchanged:

# %%
# NBVAL_CHECK_OUTPUT
one_image_logits = logits[0]  # shape (28, 28, 1): a single code's output
tf_logger = tf.get_logger()
previous_level = tf_logger.level
tf_logger.setLevel("ERROR")  # hide the deprecation warning that None triggers
try:
    defaults = {
        "4 images, default": tfd.Independent(tfd.Bernoulli(logits=logits)),
        "1 image, default": tfd.Independent(tfd.Bernoulli(logits=one_image_logits)),
        "3 coins, default": tfd.Independent(three_coins),
    }
finally:
    tf_logger.setLevel(previous_level)
defaults["1 image, explicit 3"] = tfd.Independent(
    tfd.Bernoulli(logits=one_image_logits), reinterpreted_batch_ndims=3
)
for name, dist in defaults.items():
    print(f"{name:20s} batch {dist.batch_shape!s:6s} event {dist.event_shape}")
assert defaults["1 image, default"].event_shape == (28, 1)
assert defaults["3 coins, default"].event_shape == ()
assert defaults["1 image, explicit 3"].event_shape == (28, 28, 1)

# %% [markdown]
# With one image the default reinterprets only 2 dimensions, and `log_prob` would return 28
# numbers, one per row, instead of the image's log-likelihood; with the three coins it
# reinterprets none, and `Independent` does nothing. An explicit `reinterpreted_batch_ndims`,
# the number of dimensions that make up *one* observation, is right whatever the batch
# looks like.

# %% [markdown]
# (shape-trap)=
# ### The shape trap: data that broadcasts against the batch
#
# Broadcasting is convenient, and it is also behind a common silent bug in likelihoods. Take
# a regression: a model predicts a mean $m_i$ for each of five examples, and the targets $y_i$
# are Normal around them with standard deviation 0.5, so the log-likelihood of the data set
# is $\sum_i \log \mathcal N(y_i;\ m_i, 0.5^2)$. The model is a batch of five Normals. Data
# often arrives as a *column* of shape `(5, 1)` (a table with one target column, or Keras
# targets), and `log_prob` broadcasts that column against the batch shape `(5,)` without a
# word. By hand, the log-likelihood is
#
# $$ \log p(y) = -\frac n2 \log(2\pi\sigma^2) - \sum_{i=1}^n \frac{(y_i - m_i)^2}{2\sigma^2}. $$

# %%
# NBVAL_CHECK_OUTPUT
pred_mean = np.array([0.5, 1.3, 2.1, 2.9, 3.7], np.float32)  # a fitted line at x = 0, ..., 4
noise_sd = 0.5
targets = np.array([0.9, 1.0, 2.6, 2.5, 4.1], np.float32)  # shape (5,)
targets_col = targets.reshape(5, 1)  # the same five targets as a column, shape (5, 1)
likelihood = tfd.Normal(loc=pred_mean, scale=noise_sd)  # batch shape (5,)

lp_right = likelihood.log_prob(targets).numpy()
lp_wrong = likelihood.log_prob(targets_col).numpy()
resid = targets.astype(np.float64) - pred_mean.astype(np.float64)
ll_by_hand = (-0.5 * targets.size * np.log(2 * np.pi * noise_sd**2)
              - np.sum(resid**2) / (2 * noise_sd**2))
print(f"targets {targets.shape}    : log_prob shape {lp_right.shape}, "
      f"total {lp_right.sum():.4f}")
print(f"targets {targets_col.shape}: log_prob shape {lp_wrong.shape}, "
      f"total {lp_wrong.sum():.4f}")
print(f"by hand               : total {ll_by_hand:.4f}")
print("the column's diagonal holds the right terms:",
      np.allclose(np.diag(lp_wrong), lp_right, rtol=1e-6))
np.testing.assert_allclose(lp_right.sum(), ll_by_hand, rtol=1e-5)
np.testing.assert_allclose(np.diag(lp_wrong), lp_right, rtol=1e-6)

# %% [markdown]
# The column gives 25 numbers instead of 5: entry $(i, j)$ is target $i$ under the mean of
# example $j$, and only the diagonal pairs each target with its own mean. Their sum,
# -140.24 instead of -2.77, is an ordinary-looking number, and no error is raised. A loss
# built from this array would pull each prediction towards all five targets, not only its
# own.
#
# `tfd.Independent` helps by stating what one observation is. With
# `reinterpreted_batch_ndims=1`, the five targets form *one* event of shape `(5,)`, and
# `log_prob` of the data set is one number: the log-likelihood itself, which matches the
# formula. Given the column, the same call returns five numbers instead. A likelihood that
# should be a scalar and is not is easy to test for, and `tf.debugging.assert_rank` turns the
# test into an error:

# %%
# NBVAL_CHECK_OUTPUT
likelihood_ind = tfd.Independent(likelihood, reinterpreted_batch_ndims=1)
ll_right = likelihood_ind.log_prob(targets)
ll_col = likelihood_ind.log_prob(targets_col)
print(f"event shape {likelihood_ind.event_shape}; log_prob(targets): shape {ll_right.shape}, "
      f"value {float(ll_right):.4f} (by hand {ll_by_hand:.4f})")
print(f"log_prob(targets_col): shape {ll_col.shape}")
np.testing.assert_allclose(float(ll_right), ll_by_hand, rtol=1e-5)
try:
    tf.debugging.assert_rank(ll_col, 0, message="one log-likelihood per data set")
except ValueError as err:
    text = " ".join(str(err).split())  # TensorFlow's message, with its spacing normalised
    print("ValueError:", text[text.index("Received"):])

# %% [markdown]
# What about `validate_args=True`? It makes a distribution check its parameters and the
# *values* it is given against its support, not their *shapes*: the Normal with
# `validate_args=True` broadcasts the column exactly as before. It does catch the sibling of
# the shape bug, data in the wrong *code*. Labels coded as $\pm 1$ instead of 1 and 0 give a
# Bernoulli a finite, even positive, "log-probability" for $-1$ (the formula
# $x \log p + (1 - x)\log(1 - p)$ is evaluated outside the support), while the validating
# Bernoulli refuses them:

# %%
# NBVAL_CHECK_OUTPUT
strict = tfd.Normal(loc=pred_mean, scale=noise_sd, validate_args=True)
print("Normal, validate_args=True, targets_col: no error, log_prob shape",
      strict.log_prob(targets_col).shape)
labels_pm = np.array([1, -1, 1], np.int32)  # labels coded as +1 / -1
clf_probs = [0.9, 0.2, 0.7]
print("Bernoulli log_prob of labels (1, -1, 1):",
      np.round(tfd.Bernoulli(probs=clf_probs).log_prob(labels_pm).numpy(), 4))
try:
    tfd.Bernoulli(probs=clf_probs, validate_args=True).log_prob(labels_pm)
except tf.errors.InvalidArgumentError as err:
    print("validate_args=True -> InvalidArgumentError:", err.message.splitlines()[0].rstrip(" ."))

# %% [markdown]
# So there are two defences, for two kinds of bug: shapes are made explicit by `Independent`
# (one `log_prob` per observation, tested for its shape), values are checked by
# `validate_args=True`. Exercise 5 practises the first.

# %% [markdown]
# ## 4. Mixtures
#
# A *mixture* first picks a component $k$ with probability $\pi_k$ (a Categorical draw), then
# draws from component $k$. Its density is the weighted sum of the components' densities,
#
# $$ p(x) = \sum_{k=1}^{K} \pi_k\, p_k(x). $$
#
# TFP has two classes for it. `tfd.Mixture` takes a Categorical and a *list* of component
# distributions, which may be of different kinds. `tfd.MixtureSameFamily` takes a Categorical
# and *one* distribution whose batch holds the components, all of the same kind. We build the
# same three-component mixture of Normals both ways:

# %%
# NBVAL_CHECK_OUTPUT
weights = np.array([0.3, 0.5, 0.2], np.float32)
mix_locs = np.array([-2.0, 0.5, 3.0], np.float32)
mix_scales = np.array([0.6, 1.0, 0.5], np.float32)

mixture = tfd.Mixture(
    cat=tfd.Categorical(probs=weights),
    components=[tfd.Normal(loc=m, scale=s) for m, s in zip(mix_locs, mix_scales)],
)
mixture_sf = tfd.MixtureSameFamily(
    mixture_distribution=tfd.Categorical(probs=weights),
    components_distribution=tfd.Normal(loc=mix_locs, scale=mix_scales),
)
print(mixture)
print(mixture_sf)
print("components of MixtureSameFamily:", mixture_sf.components_distribution)

# %% [markdown]
# In `MixtureSameFamily`, the components' batch dimension (the rightmost one) is the mixture
# index, and it is marginalised out: the weighted densities are summed, which in log space
# is a logsumexp, $\log p(x) = \log\sum_k \exp\big(\log\pi_k + \log p_k(x)\big)$. So the
# batch of three Normals becomes one mixture with batch shape `()`. Both objects compute the
# formula above, which we check at a few points (our NumPy version uses the same logsumexp):

# %%
# NBVAL_CHECK_OUTPUT
def mixture_logpdf(x, w, mu, sigma):
    """log sum_k w_k N(x; mu_k, sigma_k^2), in float64 NumPy."""
    x = np.asarray(x, np.float64)[..., None]
    terms = np.log(np.asarray(w, np.float64)) + normal_logpdf(x, mu, sigma)
    return np.logaddexp.reduce(terms, axis=-1)


x_check = np.array([-2.0, 0.0, 1.0, 3.0], np.float32)
by_formula = np.exp(mixture_logpdf(x_check, weights, mix_locs, mix_scales))
print("x                :", x_check)
print("Mixture          :", np.round(mixture.prob(x_check).numpy(), 6))
print("MixtureSameFamily:", np.round(mixture_sf.prob(x_check).numpy(), 6))
print("sum_k pi_k p_k(x):", np.round(by_formula, 6))
np.testing.assert_allclose(mixture.prob(x_check).numpy(), by_formula, rtol=1e-5)
np.testing.assert_allclose(mixture_sf.prob(x_check).numpy(), by_formula, rtol=1e-5)

# %% [markdown]
# Over a fine grid the two log-densities agree to float32 rounding. They are the same
# distribution, built two ways.

# %%
# NBVAL_CHECK_OUTPUT
x_grid = np.linspace(-6.0, 6.0, 2001, dtype=np.float32)
gap = np.abs(mixture.log_prob(x_grid).numpy() - mixture_sf.log_prob(x_grid).numpy()).max()
print("largest |log_prob difference| below 1e-5 on 2001 points:", bool(gap < 1e-5))

# %% [markdown]
# The mixture's mean and variance also have closed forms: the mean is the weighted mean of
# the component means, and the variance adds the components' variances to the spread of their
# means,
#
# $$ \mathbb E[x] = \sum_k \pi_k \mu_k, \qquad
#    \mathrm{Var}[x] = \sum_k \pi_k (\sigma_k^2 + \mu_k^2) - \mathbb E[x]^2. $$
#
# TFP's `mean()` and `variance()` agree with the formulas. The moments of 20,000 samples are
# compared with the formulas in units of their standard errors (a $z$-score):

# %%
# NBVAL_CHECK_OUTPUT
mean_formula = float(np.sum(weights * mix_locs))
var_formula = float(np.sum(weights * (mix_scales**2 + mix_locs**2)) - mean_formula**2)
mix_samples = mixture_sf.sample(20_000, seed=seeding.stateless_seed(10)).numpy()
se_mean = mix_samples.std() / np.sqrt(mix_samples.size)
se_var = ((mix_samples - mix_samples.mean()) ** 2).std() / np.sqrt(mix_samples.size)
print(f"mean:     formula {mean_formula:.4f} | TFP {mixture_sf.mean().numpy():.4f} | "
      f"samples {mix_samples.mean():.4f} (standard error {se_mean:.4f})")
print(f"variance: formula {var_formula:.4f} | TFP {mixture_sf.variance().numpy():.4f} | "
      f"samples {mix_samples.var():.4f} (standard error {se_var:.4f})")
z_mean = (mix_samples.mean() - mean_formula) / se_mean
z_var = (mix_samples.var() - var_formula) / se_var
print(f"z-scores of the sample moments: mean {z_mean:.2f}, variance {z_var:.2f}")
p_two_sided = 2 * tfd.Normal(0.0, 1.0).survival_function(abs(z_mean)).numpy()
print(f"chance of |z| >= {abs(z_mean):.2f} for a Normal z-score: {p_two_sided:.3f}")
np.testing.assert_allclose(mixture_sf.mean().numpy(), mean_formula, rtol=1e-5)
np.testing.assert_allclose(mixture_sf.variance().numpy(), var_formula, rtol=1e-5)
np.testing.assert_allclose(mixture.mean().numpy(), mean_formula, rtol=1e-5)
assert abs(z_mean) < 4 and abs(z_var) < 4

# %% [markdown]
# The sample variance is 0.74 standard errors below the formula; the sample mean is 2.14
# standard errors below it, a little more than two. That is not alarming: a Normal $z$-score
# lands that far out with probability 0.033, about once in thirty runs. Both are well inside
# the four standard errors the cell asserts.

# %%
# NBVAL_CHECK_OUTPUT
fig = density_1d(
    {
        "Mixture": mixture,
        "MixtureSameFamily": mixture_sf,
        **{
            f"{w:.1f} N({m:g}, {s:g}²)": (
                lambda x, w=w, m=m, s=s: np.log(w) + tfd.Normal(m, s).log_prob(x)
            )
            for w, m, s in zip(weights, mix_locs, mix_scales)
        },
    },
    (-5.0, 5.0),
    samples=mix_samples,
    title="A mixture of three Normals, built two ways",
)
ax = fig.axes[0]
ax.lines[0].set_linewidth(4)
ax.lines[0].set_alpha(0.4)
ax.lines[1].set_linestyle("--")
for line in ax.lines[2:]:
    line.set_linestyle(":")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# *Figure 2.* The mixture density from `Mixture` (thick, pale) and from `MixtureSameFamily`
# (dashed) lie on top of each other. The dotted curves are the three weighted components
# $\pi_k p_k(x)$, whose sum is the mixture; behind them, a normalised histogram of the 20,000
# samples follows the density. Near $x = -1$ and $x = 2$, where neighbouring components
# overlap, the mixture lies visibly above each of them.

# %% [markdown]
# `Mixture` is the more general class: its components may differ in kind. Here is an equal
# mixture of a Normal and a Laplace distribution, whose density at 0 is
# $\tfrac12 \cdot \tfrac{1}{\sqrt{2\pi}} + \tfrac12 \cdot \tfrac12$. Both classes can be
# trained, since their parameters may be variables. `MixtureSameFamily` is the convenient form
# when the components share a kind: one batched distribution evaluates all of them at once,
# and each parameter is a single tensor with one entry (or row) per component, which a
# network can output directly, instead of a Python list of separate distributions.

# %%
# NBVAL_CHECK_OUTPUT
normal_laplace = tfd.Mixture(
    cat=tfd.Categorical(probs=[0.5, 0.5]),
    components=[tfd.Normal(0.0, 1.0), tfd.Laplace(0.0, 1.0)],
)
density_at_0 = normal_laplace.prob(0.0).numpy()
expected = 0.5 / np.sqrt(2 * np.pi) + 0.5 * 0.5
print(f"density at 0: {density_at_0:.6f} | formula: {expected:.6f}")
np.testing.assert_allclose(density_at_0, expected, rtol=1e-6)

# %% [markdown]
# ### A 2-D mixture: a flexible prior
#
# With `MultivariateNormalDiag` components, `MixtureSameFamily` builds a density over the
# plane. A batch of four 2-D Normals (batch shape `(4,)`, event shape `(2,)`) becomes one
# mixture with event shape `(2,)`. This is the form of the *learned mixture prior* that can
# replace the standard Normal prior of a VAE in the VAE chapters (05-07): the means, scales
# and weights become trainable variables.

# %%
# NBVAL_CHECK_OUTPUT
prior_2d = tfd.MixtureSameFamily(
    mixture_distribution=tfd.Categorical(probs=[0.4, 0.3, 0.2, 0.1]),
    components_distribution=tfd.MultivariateNormalDiag(
        loc=[[-1.5, -1.5], [1.5, -1.5], [-1.5, 1.5], [1.5, 1.5]],
        scale_diag=[[0.5, 0.5], [0.8, 0.3], [0.3, 0.8], [0.5, 0.5]],
    ),
)
print("components:", describe_shapes(prior_2d.components_distribution, 1000))
print("mixture:   ", describe_shapes(prior_2d, 1000))

# %%
# NBVAL_CHECK_OUTPUT
fig, ax = plt.subplots(figsize=(5.6, 4.6))
density_2d(prior_2d, (-3.5, 3.5), (-3.5, 3.5), ax=ax,
           samples=prior_2d.sample(1000, seed=seeding.stateless_seed(11)).numpy(),
           title="MixtureSameFamily of four 2-D Normals")
plt.show()

# %% [markdown]
# *Figure 3.* The density of the four-component 2-D mixture, with 1000 samples as white dots.
# The lower-left component has the largest weight (0.4) and the brightest peak; the
# upper-right one has the smallest (0.1). The lower-right and upper-left components are
# stretched along $x_1$ and $x_2$ respectively, following their scales.

# %% [markdown]
# (kl-divergence)=
# ## 5. KL divergence
#
# The Kullback-Leibler divergence of $q$ from $p$ is
#
# $$ \mathrm{KL}(q \,\|\, p) = \mathbb E_{x \sim q}\big[\log q(x) - \log p(x)\big]. $$
#
# It is never negative, it is zero only when $q = p$, and it is not symmetric:
# $\mathrm{KL}(q\|p) \neq \mathrm{KL}(p\|q)$ in general.
#
# (elbo)=
# ### Where a VAE needs it: the ELBO
#
# A latent-variable model draws a hidden code $z$ from a prior $p(z)$, then the data $x$ from
# a likelihood $p(x \mid z)$. Maximum likelihood needs the *evidence*
# $p(x) = \int p(z)\,p(x \mid z)\,dz$, an integral over all codes that is rarely tractable,
# and so is the posterior $p(z \mid x) = p(z)\,p(x \mid z) / p(x)$. A VAE
# {cite:p}`kingma2013vae` works instead with a distribution $q(z)$ that it chooses (the
# encoder's output for the image $x$, often written $q(z \mid x)$) and the *evidence lower
# bound*
#
# $$ \mathrm{ELBO}(q) = \mathbb E_{z\sim q}\big[\log p(x\mid z)\big]
#    - \mathrm{KL}\big(q(z)\,\|\,p(z)\big). $$
#
# Why a lower bound? Bayes' rule gives
# $\log p(x) = \log p(x \mid z) + \log p(z) - \log p(z \mid x)$ for every $z$. Average both
# sides over $z \sim q$ (the left side does not depend on $z$) and add and subtract
# $\log q(z)$ inside the average:
#
# $$ \log p(x) = \underbrace{\mathbb E_q[\log p(x \mid z)]
#    - \mathbb E_q[\log q(z) - \log p(z)]}_{\mathrm{ELBO}(q)}
#    + \underbrace{\mathbb E_q[\log q(z) - \log p(z \mid x)]}_{\mathrm{KL}(q\,\|\,p(z \mid x))}.
# $$
#
# A KL divergence is never negative, so $\mathrm{ELBO}(q) \le \log p(x)$ for every $q$, and
# the gap is the KL divergence from $q$ to the posterior: zero exactly when $q$ *is* the
# posterior. A VAE minimises the negative ELBO,
#
# $$ -\mathrm{ELBO}(q) = -\mathbb E_{z\sim q}\big[\log p(x\mid z)\big]
#    + \mathrm{KL}\big(q(z)\,\|\,p(z)\big), $$
#
# the reconstruction term of section 3 plus a KL divergence from the prior. The rest of this
# section computes that KL term, exactly and by Monte Carlo, and its end checks the identity
# above on a model whose every term has a closed form.
#
# ### The closed form for two Normals
#
# For $q = \mathcal N(\mu_1, \sigma_1^2)$ and $p = \mathcal N(\mu_2, \sigma_2^2)$,
#
# $$ \mathrm{KL}(q\,\|\,p) = \log\frac{\sigma_2}{\sigma_1}
#    + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2} - \frac12. $$
#
# `tfd.kl_divergence` knows this formula (and many others) and picks it by the types of the
# two distributions:

# %%
# NBVAL_CHECK_OUTPUT
def normal_kl(m1, s1, m2, s2):
    """KL(N(m1, s1^2) || N(m2, s2^2)) by the closed form."""
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


q = tfd.Normal(loc=1.0, scale=0.5)
p = tfd.Normal(loc=0.0, scale=1.0)
kl_qp = tfd.kl_divergence(q, p).numpy()
kl_pq = tfd.kl_divergence(p, q).numpy()
print(f"KL(q || p): TFP {kl_qp:.6f} | formula {normal_kl(1.0, 0.5, 0.0, 1.0):.6f}")
print(f"KL(p || q): TFP {kl_pq:.6f} | formula {normal_kl(0.0, 1.0, 1.0, 0.5):.6f}")
print(f"KL(q || q): TFP {tfd.kl_divergence(q, q).numpy():.6f}")
np.testing.assert_allclose(kl_qp, normal_kl(1.0, 0.5, 0.0, 1.0), rtol=1e-6)
np.testing.assert_allclose(kl_pq, normal_kl(0.0, 1.0, 1.0, 0.5), rtol=1e-6)

# %% [markdown]
# The two directions differ by a factor of more than three: KL is not a distance.
#
# A VAE's encoder outputs a *batch* of diagonal Normals, one per image, and the prior is the
# standard Normal $\mathcal N(0, I)$. Per coordinate the formula above, with $\mu_2 = 0$ and
# $\sigma_2 = 1$, simplifies to $\tfrac12(\sigma^2 + \mu^2 - 1 - \log\sigma^2)$, and the KL of
# a diagonal Normal is the sum over its coordinates:
#
# $$ \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)\big) =
#    \frac12 \sum_j \big(\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2\big). $$
#
# With a batch of three 2-D posteriors and one prior, `kl_divergence` returns three numbers,
# one per image. The prior has batch shape `()`, yet it is compared with each of the three
# posteriors: `kl_divergence` broadcasts the two batch shapes against each other, by the same
# rules by which `log_prob` broadcasts its argument against the batch, so `(3,)` against `()`
# gives `(3,)`. A prior repeated three times, with batch shape `(3,)`, gives the same numbers:

# %%
# NBVAL_CHECK_OUTPUT
enc_loc = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 0.3]], np.float32)
enc_scale = np.array([[0.8, 1.5], [1.0, 1.0], [0.1, 0.5]], np.float32)
posterior = tfd.MultivariateNormalDiag(loc=enc_loc, scale_diag=enc_scale)
prior = tfd.MultivariateNormalDiag(loc=tf.zeros(2), scale_diag=tf.ones(2))
kl_batch = tfd.kl_divergence(posterior, prior).numpy()
s2 = enc_scale.astype(np.float64) ** 2
kl_formula = 0.5 * np.sum(s2 + enc_loc.astype(np.float64) ** 2 - 1 - np.log(s2), axis=-1)
prior_x3 = tfd.MultivariateNormalDiag(loc=tf.zeros([3, 2]), scale_diag=tf.ones([3, 2]))
kl_x3 = tfd.kl_divergence(posterior, prior_x3).numpy()
print("batch shapes: posterior", posterior.batch_shape, "| prior", prior.batch_shape,
      "| KL", kl_batch.shape)
print("TFP                 :", np.round(kl_batch, 5))
print("formula             :", np.round(kl_formula, 5))
print("prior repeated 3x   :", np.round(kl_x3, 5))
np.testing.assert_allclose(kl_batch, kl_formula, rtol=1e-5)
np.testing.assert_array_equal(kl_batch, kl_x3)

# %% [markdown]
# The second posterior equals the prior, so its KL is 0. The third has the largest KL: its
# first coordinate is both far from 0 ($\mu = 2$) and narrow ($\sigma = 0.1$), and each
# costs.
#
# ### A Monte Carlo estimate
#
# The definition is an expectation under $q$, so it can be estimated by an average over draws
# $x_1, \dots, x_n \sim q$:
#
# $$ \widehat{\mathrm{KL}}_n = \frac1n \sum_{i=1}^n \big[\log q(x_i) - \log p(x_i)\big],
#    \qquad \mathrm{SE} = \frac{s}{\sqrt n}, $$
#
# where $s$ is the standard deviation of the $n$ differences. The estimate is unbiased, and it
# needs only `sample` and `log_prob`. Two conditions come with it. $q$'s support must lie
# inside $p$'s: a draw where $p(x) = 0$ makes $\log p(x) = -\infty$ (and the KL is then
# infinite). And the standard error means something only when the variance of
# $\log q(x) - \log p(x)$ under $q$ is finite; for two Normals it is, as we compute below.
# Here is the estimate by hand with $n = 10{,}000$:

# %%
# NBVAL_CHECK_OUTPUT
n = 10_000
seed = seeding.stateless_seed(12)
z = q.sample(n, seed=seed)
diffs = (q.log_prob(z) - p.log_prob(z)).numpy().astype(np.float64)
estimate, stderr = diffs.mean(), diffs.std(ddof=1) / np.sqrt(n)
print(f"Monte Carlo: {estimate:.4f} ± {stderr:.4f} (n = {n:,})")
print(f"exact:       {kl_qp:.4f}")
print(f"error: {abs(estimate - kl_qp) / stderr:.2f} standard errors")

# %% [markdown]
# `tfpcourse.distributions.kl_monte_carlo(q, p, n, seed)` packages these lines; with the same
# seed it returns the same numbers. Its `seed` may also be an integer, as in `seed=13` below:
# the helper converts it with `seeding.stateless_seed`, so `seed=12` means
# `stateless_seed(12)` and repeats exactly, unlike an integer given to `sample`:

# %%
# NBVAL_CHECK_OUTPUT
result = kl_monte_carlo(q, p, n, seed=seed)
print(result)
print("same as by hand:", np.isclose(result.estimate, estimate, rtol=0, atol=1e-12),
      np.isclose(result.stderr, stderr, rtol=0, atol=1e-12))
print("seed=12 gives the same result:", kl_monte_carlo(q, p, n, seed=12) == result)
assert kl_monte_carlo(q, p, n, seed=12) == result

# %% [markdown]
# ### How fast the error shrinks
#
# The standard error is $s/\sqrt n$: a hundred times more draws buy one more correct digit.
# For two Normals, $s$ has a closed form too. With $u = (x - \mu_1)/\sigma_1 \sim \mathcal
# N(0, 1)$, the difference $\log q(x) - \log p(x)$ is $a u^2 + b u$ plus a constant, with
# $a = \tfrac12(\sigma_1^2/\sigma_2^2 - 1)$ and $b = \sigma_1(\mu_1 - \mu_2)/\sigma_2^2$, and
# since $\mathrm{Var}[u^2] = 2$ and $\mathrm{Cov}[u^2, u] = 0$,
#
# $$ s^2 = \mathrm{Var}_q\big[\log q(x) - \log p(x)\big] = 2a^2 + b^2. $$

# %%
# NBVAL_CHECK_OUTPUT
a = 0.5 * (0.5**2 / 1.0**2 - 1.0)
b = 0.5 * (1.0 - 0.0) / 1.0**2
sd_formula = np.sqrt(2 * a**2 + b**2)
big = kl_monte_carlo(q, p, 200_000, seed=13)
sd_sample = big.stderr * np.sqrt(big.n)
print(f"s by the formula: {sd_formula:.4f} | from 200,000 draws: {sd_sample:.4f}")
np.testing.assert_allclose(sd_sample, sd_formula, rtol=0.01)

# %% [markdown]
# To see the $1/\sqrt n$ law, repeat the estimate with many independent seeds at each $n$ and
# measure the root-mean-square error against the exact KL. On a log-log plot, $s/\sqrt n$ is
# a straight line of slope $-\tfrac12$. (The largest $n$ is smaller in the `smoke` profile.)

# %%
# TOLERANCE: rel=0.1 -- Monte Carlo errors over 100 seeded repeats, and the fitted slope
sizes = [10, 100, 1_000, 10_000, 100_000, cfg.pick(full=1_000_000, smoke=100_000)]
sizes = sorted(set(sizes))
N_REPEATS = 100
rms_error, mean_se = [], []
for i, size in enumerate(sizes):
    seeds = seeding.split_seed(seeding.stateless_seed(1000 + i), N_REPEATS)
    runs = [kl_monte_carlo(q, p, size, seed=s) for s in seeds]
    errors = np.array([r.estimate for r in runs]) - kl_qp
    rms_error.append(np.sqrt(np.mean(errors**2)))
    mean_se.append(np.mean([r.stderr for r in runs]))
slope = np.polyfit(np.log(sizes), np.log(rms_error), 1)[0]

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(sizes, rms_error, "o", label=f"RMS error of {N_REPEATS} estimates")
ax.loglog(sizes, mean_se, "x", ms=8, label="mean reported standard error")
n_line = np.logspace(1, np.log10(sizes[-1]), 50)
ax.loglog(n_line, sd_formula / np.sqrt(n_line), "k--", lw=1,
          label=r"$s/\sqrt{n}$ (slope $-1/2$)")
ax.set_xlabel("number of draws n")
ax.set_ylabel("error of the KL estimate (nats)")
ax.set_title("Monte Carlo KL: error shrinks like $1/\\sqrt{n}$")
ax.legend()
plt.show()
print(f"{'n':>9s} {'RMS error':>10s} {'mean SE':>9s} {'s/sqrt(n)':>10s}")
for size, err, se in zip(sizes, rms_error, mean_se):
    print(f"{size:9,d} {err:10.5f} {se:9.5f} {sd_formula / np.sqrt(size):10.5f}")
print(f"fitted slope of log RMS error against log n: {slope:.3f}")

# %% [markdown]
# *Figure 4.* Root-mean-square error of the Monte Carlo KL estimate (circles) and the average
# standard error it reported (crosses), against the number of draws, on log-log axes. Both
# follow the dashed line $s/\sqrt{n}$, which has slope $-1/2$; the fitted slope printed below
# the plot is close to $-0.5$. Ten draws give an error of about 0.24 nats on a KL of 0.82; a
# million give less than 0.001.

# %% [markdown]
# A VAE can use either form of the KL term. The closed form is exact. A Monte
# Carlo estimate with a single draw, $\log q(z) - \log p(z)$ at the $z$ that is decoded
# anyway, is unbiased but noisy (its standard deviation is $s$ itself). Where there is no
# closed form, the Monte Carlo estimate is the practical option in many dimensions (in one
# dimension a numerical integral also works, as the end of this section shows).
#
# ### The ELBO on a model with a known answer
#
# The identity $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$ of
# {ref}`the start of this section <elbo>` can be checked on the one latent-variable model
# whose every quantity has a closed form. Take a prior
# $z \sim \mathcal N(0, 1)$ and a likelihood $x \mid z \sim \mathcal N(z, \sigma^2)$, with
# $\sigma = 0.5$ and one observation $x = 1.2$. Then
#
# * the evidence is $p(x) = \mathcal N(x;\ 0,\ 1 + \sigma^2)$ (the sum of two independent
#   Normals),
# * the exact posterior is $p(z \mid x) = \mathcal N\big(x/(1+\sigma^2),\
#   \sigma^2/(1+\sigma^2)\big)$,
# * and for any $q = \mathcal N(m, s^2)$ the reconstruction term is
#   $\mathbb E_q[\log p(x \mid z)] = -\tfrac12\log(2\pi\sigma^2) - \big((x-m)^2 + s^2\big) /
#   (2\sigma^2)$, since $\mathbb E_q[(x - z)^2] = (x - m)^2 + s^2$.
#
# We evaluate $-\mathrm{ELBO}$ for four choices of $q$ in two ways, by the closed forms and
# with TFP (a Monte Carlo reconstruction term from 200,000 draws plus `tfd.kl_divergence`),
# and check three claims: $-\mathrm{ELBO}(q) \ge -\log p(x)$; the gap is
# $\mathrm{KL}(q \,\|\, p(z \mid x))$, so that $\mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\,
# p(z \mid x))$ is $\log p(x)$ for every $q$; and the gap is 0 for the exact posterior:

# %%
# NBVAL_CHECK_OUTPUT
sigma, x_obs = 0.5, 1.2
post_mean, post_sd = x_obs / (1 + sigma**2), np.sqrt(sigma**2 / (1 + sigma**2))
neg_log_evidence = -normal_logpdf(x_obs, 0.0, np.sqrt(1 + sigma**2))


def neg_elbo_formula(m, s):
    """-ELBO for q = N(m, s^2) in the Normal-Normal model, in float64."""
    recon = -0.5 * np.log(2 * np.pi * sigma**2) - ((x_obs - m) ** 2 + s**2) / (2 * sigma**2)
    return -recon + normal_kl(m, s, 0.0, 1.0)


z_prior = tfd.Normal(0.0, 1.0)
q_choices = {"exact posterior": (post_mean, post_sd), "the prior": (0.0, 1.0),
             "N(1.2, 0.5^2)": (1.2, 0.5), "N(0.96, 0.2^2)": (post_mean, 0.2)}
elbo_seeds = seeding.split_seed(seeding.stateless_seed(20), len(q_choices))
mc_z = []
print(f"-log p(x) = {neg_log_evidence:.6f}, log p(x) = {-neg_log_evidence:.6f}")
print(f"{'q':16s} {'-ELBO formula':>13s} {'-ELBO with TFP':>19s} {'gap':>9s} "
      f"{'KL(q || posterior)':>18s} {'ELBO + KL':>10s}")
for (name, (m, s)), elbo_seed in zip(q_choices.items(), elbo_seeds):
    q_z = tfd.Normal(np.float32(m), np.float32(s))
    z_draws = q_z.sample(200_000, seed=elbo_seed)
    recon_terms = tfd.Normal(loc=z_draws, scale=sigma).log_prob(x_obs).numpy().astype(np.float64)
    mc_value = -recon_terms.mean() + float(tfd.kl_divergence(q_z, z_prior))
    mc_se = recon_terms.std(ddof=1) / np.sqrt(recon_terms.size)
    exact_value = neg_elbo_formula(m, s)
    gap = exact_value - neg_log_evidence
    kl_to_post = normal_kl(m, s, post_mean, post_sd)
    print(f"{name:16s} {exact_value:13.6f} {mc_value:11.4f} ± {mc_se:.4f} {gap:9.6f} "
          f"{kl_to_post:18.6f} {-exact_value + kl_to_post:10.6f}")
    mc_z.append(abs(mc_value - exact_value) / mc_se)
    assert abs(mc_value - exact_value) < 4 * mc_se + 1e-6
    assert gap >= -1e-12
    np.testing.assert_allclose(gap, kl_to_post, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(-exact_value + kl_to_post, -neg_log_evidence, rtol=1e-12)
print(f"largest |TFP - formula|: {max(mc_z):.2f} Monte Carlo standard errors")
assert abs(neg_elbo_formula(post_mean, post_sd) - neg_log_evidence) < 1e-12

# %% [markdown]
# Every $q$ has $-\mathrm{ELBO} \ge -\log p(x)$, the gap equals
# $\mathrm{KL}(q \,\|\, p(z \mid x))$, so the last column, $\mathrm{ELBO} +
# \mathrm{KL}(q \,\|\, p(z \mid x))$, is $\log p(x) = -1.606510$ in every row, and for the
# exact posterior the gap is 0. The TFP values agree with the closed forms to within about
# one Monte Carlo standard error. Training a VAE pushes the encoder's $q$ towards the
# posterior by making this gap small.
#
# ### Differentiating through samples: reparameterization
#
# A VAE does not only *evaluate* this Monte Carlo ELBO: it *differentiates* it with respect to
# the encoder's parameters, and the draws $z \sim q$ depend on those parameters. For a Normal
# this works because a draw is a smooth function of the parameters and of parameter-free
# noise, $z = \mu + \sigma\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$ (the
# *reparameterization trick*). TFP samples a Normal this way, so `tf.GradientTape` sees
# through `sample`. For the mean of the draws, $\bar z = \mu + \sigma\bar\varepsilon$, the
# gradients are $\partial \bar z/\partial\mu = 1$ and
# $\partial \bar z/\partial\sigma = \bar\varepsilon = (\bar z - \mu)/\sigma$:

# %%
# NBVAL_CHECK_OUTPUT
mu_var, sigma_var = tf.Variable(1.0), tf.Variable(0.5)
with tf.GradientTape() as tape:
    z_rep = tfd.Normal(mu_var, sigma_var).sample(10_000, seed=seeding.stateless_seed(21))
    z_bar = tf.reduce_mean(z_rep)
grad_mu, grad_sigma = tape.gradient(z_bar, [mu_var, sigma_var])
eps_bar = (z_bar.numpy() - 1.0) / 0.5
print(f"d mean / d loc  : {grad_mu.numpy():.5f} (formula 1)")
print(f"d mean / d scale: {grad_sigma.numpy():.5f} (formula: mean of eps = {eps_bar:.5f})")
np.testing.assert_allclose(grad_mu.numpy(), 1.0, rtol=1e-5)  # a float32 mean of 10,000 ones
np.testing.assert_allclose(grad_sigma.numpy(), eps_bar, rtol=1e-4, atol=1e-6)

# %% [markdown]
# A distribution tells whether its samples carry gradients in its `reparameterization_type`.
# Discrete draws cannot: a Bernoulli or Categorical sample is an integer, and a small change
# of the probabilities does not move it smoothly. We ask each distribution for its type, and
# ask the tape for the gradient of the mean of 1000 draws with respect to each parameter
# (`None` means no gradient). A `MixtureSameFamily` picks its component with a Categorical
# draw, so by default it is not reparameterized either; the draw within a component still
# depends smoothly on the component means, but nothing flows to the weights.
# `MixtureSameFamily(..., reparameterize=True)` adds gradients for all parameters (by
# implicit reparameterization gradients; TFP's documentation calls the option experimental):

# %%
# NBVAL_CHECK_OUTPUT
def sample_gradients(make_dist, params, seed_int):
    """Which parameters get a gradient from the mean of 1000 draws of make_dist(*params)?"""
    with tf.GradientTape() as tape:
        dist = make_dist(*params)
        draws = tf.cast(dist.sample(1000, seed=seeding.stateless_seed(seed_int)), tf.float32)
        mean_draw = tf.reduce_mean(draws)
    grads = tape.gradient(mean_draw, params)
    return dist, ["none" if g is None else "yes" for g in grads]


rep_cases = {
    "Normal": (lambda m, s: tfd.Normal(m, s), ["loc", "scale"],
               [tf.Variable(0.0), tf.Variable(1.0)]),
    "Bernoulli": (lambda p: tfd.Bernoulli(probs=p), ["probs"], [tf.Variable(0.3)]),
    "Categorical": (lambda p: tfd.Categorical(probs=p), ["probs"],
                    [tf.Variable([0.2, 0.5, 0.3])]),
    "MixtureSameFamily": (
        lambda w, m: tfd.MixtureSameFamily(tfd.Categorical(probs=w), tfd.Normal(m, 1.0)),
        ["weights", "means"], [tf.Variable([0.5, 0.5]), tf.Variable([-1.0, 1.0])]),
    "  reparameterize=True": (
        lambda w, m: tfd.MixtureSameFamily(tfd.Categorical(probs=w), tfd.Normal(m, 1.0),
                                           reparameterize=True),
        ["weights", "means"], [tf.Variable([0.5, 0.5]), tf.Variable([-1.0, 1.0])]),
}
rep_types = {}
for name, (make_dist, names, params) in rep_cases.items():
    dist, has_grad = sample_gradients(make_dist, params, 22)
    rep_types[name] = dist.reparameterization_type
    grads_text = ", ".join(f"{n} {g}" for n, g in zip(names, has_grad))
    kind = str(dist.reparameterization_type).split(": ")[1].rstrip(">")
    print(f"{name:22s} {kind:22s} gradient w.r.t. {grads_text}")
assert rep_types["Normal"] == tfd.FULLY_REPARAMETERIZED
assert rep_types["Bernoulli"] == rep_types["Categorical"] == tfd.NOT_REPARAMETERIZED
assert rep_types["MixtureSameFamily"] == tfd.NOT_REPARAMETERIZED
assert rep_types["  reparameterize=True"] == tfd.FULLY_REPARAMETERIZED

# %% [markdown]
# This is why a VAE's latent code is continuous and its encoder outputs a Normal: the sampled
# KL and ELBO are differentiated through the samples, which needs a `FULLY_REPARAMETERIZED`
# $q$. (The closed-form KL needs no samples, but the reconstruction term always does.) The
# decoder's Bernoulli is not sampled during training, only evaluated with `log_prob`, so its
# type does not matter there.
#
# ### When `kl_divergence` raises
#
# `tfd.kl_divergence` does not derive formulas. It looks up one that was *registered for the
# pair of Python types* of its two arguments, and raises `NotImplementedError` when there is
# none. That is not the same as "no closed form exists". The pairing a VAE produces easily,
# a posterior built as `Independent(Normal(...), 1)` and a prior built as
# `MultivariateNormalDiag`, is the same pair of diagonal Normals whose KL we computed above,
# yet TFP 0.25 has no formula registered for it. Matching the types avoids the problem:
# build both as `Independent` Normals, or both as `MultivariateNormalDiag`:

# %%
# NBVAL_CHECK_OUTPUT
q_ind = tfd.Independent(tfd.Normal(loc=enc_loc, scale=enc_scale), reinterpreted_batch_ndims=1)
p_ind = tfd.Independent(tfd.Normal(loc=tf.zeros(2), scale=tf.ones(2)),
                        reinterpreted_batch_ndims=1)
try:
    tfd.kl_divergence(q_ind, prior)
except NotImplementedError as err:
    print("Independent vs MultivariateNormalDiag -> NotImplementedError:", err)
kl_both_ind = tfd.kl_divergence(q_ind, p_ind).numpy()
kl_both_mvn = tfd.kl_divergence(posterior, prior).numpy()
print("both Independent           :", np.round(kl_both_ind, 5))
print("both MultivariateNormalDiag:", np.round(kl_both_mvn, 5))
np.testing.assert_allclose(kl_both_ind, kl_formula, rtol=1e-5)
np.testing.assert_allclose(kl_both_mvn, kl_formula, rtol=1e-5)

# %% [markdown]
# Both matching pairs give the closed-form values of the diagonal-Normal formula above.
#
# ### When there is no closed form
#
# Sometimes no closed form exists at all. Replace the VAE's standard Normal prior by a
# mixture, like `prior_2d` above: the KL from a Normal posterior to a mixture of Normals has
# no closed form, and TFP has none registered. Take the 1-D mixture of section 4 as $p$:

# %%
# NBVAL_CHECK_OUTPUT
q_post = tfd.Normal(loc=0.0, scale=0.7)
try:
    tfd.kl_divergence(q_post, mixture_sf)
except NotImplementedError as err:
    print("NotImplementedError:", err)

# %% [markdown]
# The Monte Carlo estimate still works, since it only needs `log_prob` of the mixture. To
# check it, we also compute the one-dimensional integral
# $\int q(x)\,[\log q(x) - \log p(x)]\,dx$ numerically, by the trapezoidal rule on a fine
# grid, in float64 with the formulas checked above:

# %%
# NBVAL_CHECK_OUTPUT
mc = kl_monte_carlo(q_post, mixture_sf, 100_000, seed=14)
x_fine = np.linspace(-10.0, 10.0, 200_001)
log_q = normal_logpdf(x_fine, 0.0, 0.7)
log_p = mixture_logpdf(x_fine, weights, mix_locs, mix_scales)
quadrature = np.trapezoid(np.exp(log_q) * (log_q - log_p), x_fine)
print(f"Monte Carlo (n = 100,000): {mc.estimate:.4f} ± {mc.stderr:.4f}")
print(f"numerical integration:     {quadrature:.4f}")
print(f"difference: {abs(mc.estimate - quadrature) / mc.stderr:.2f} standard errors")
assert abs(mc.estimate - quadrature) < 4 * mc.stderr

# %% [markdown]
# In one dimension the integral is easy. A grid needs (points per axis)$^d$ points in $d$
# dimensions, which rules it out for the dozens of latent dimensions of larger models; the
# Monte Carlo estimate still needs only `n` draws and two `log_prob` calls, and its standard
# error still shrinks like $1/\sqrt n$.

# %% [markdown]
# ## Summary
#
# * A TFP distribution draws samples (`sample`) and evaluates log-densities (`log_prob`).
#   Pass `sample` a stateless seed from `seeding.stateless_seed` to make a draw repeatable (a
#   plain integer is a stateful seed and does not repeat), and split it with
#   `seeding.split_seed` for fresh draws. The course's helpers convert integer seeds for you.
# * Work with log-probabilities: products of densities underflow, sums of logs do not.
#   Bernoulli and Categorical samples are `int32`; a Bernoulli given logits computes minus
#   chapter 01's cross-entropy, with the equally stable $-\mathrm{softplus}(-t)$.
# * Three shapes: sample shape (how many draws), batch shape (how many distributions), event
#   shape (the shape of one draw). `sample` returns sample + batch + event, `log_prob` returns
#   sample + batch. The batch shape is the broadcast parameter shape minus the dimensions one
#   event uses; `MultivariateNormalDiag`'s `scale_diag` holds standard deviations.
# * `tfd.Independent(d, reinterpreted_batch_ndims=k)` turns the last `k` batch dimensions
#   into event dimensions, so `log_prob` sums over them. A VAE decoder needs it to return one
#   log-likelihood per image. Always pass `k`: the deprecated default depends on the batch.
# * Data of the wrong shape broadcasts silently: targets of shape `(n, 1)` against a batch of
#   `n` Normals give an `(n, n)` array and a wrong log-likelihood, with no error. Wrap the
#   per-example distributions in `Independent` and test that the data set's `log_prob` is a
#   scalar. `validate_args=True` checks values against the support (labels coded as
#   $\pm 1$), not shapes.
# * `Mixture` mixes components of any kinds; `MixtureSameFamily` mixes the members of one
#   batched distribution, with one tensor per parameter. Built from the same parts, they give
#   the same density.
# * `tfd.kl_divergence` gives exact KL divergences for pairs of types with a registered
#   formula, and broadcasts batch shapes. `NotImplementedError` means no formula is
#   registered for that pair of types, not that none exists: build both arguments with
#   matching types (`Independent` with `Independent`, `MultivariateNormalDiag` with
#   `MultivariateNormalDiag`).
# * The Monte Carlo estimate `kl_monte_carlo` works for any pair in which $q$'s support lies
#   inside $p$'s, with an error that shrinks like $1/\sqrt n$; its standard error is
#   meaningful when the variance of $\log q - \log p$ under $q$ is finite. Both forms
#   reappear as the KL term of the VAE chapters (05-07).
# * $\mathrm{ELBO}(q) = \mathbb E_q[\log p(x \mid z)] - \mathrm{KL}(q \,\|\, p(z))$ and
#   $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z \mid x))$, so
#   $-\mathrm{ELBO}(q) \ge -\log p(x)$, with a gap of zero for the exact posterior. A VAE
#   differentiates a sampled ELBO through its samples, which needs a
#   `FULLY_REPARAMETERIZED` $q$ such as a Normal; discrete distributions and the default
#   `MixtureSameFamily` are not.
#
# **Glossary:** {term}`log-probability`, {term}`stateless seed`, {term}`sample shape`,
# {term}`batch shape`, {term}`event shape`, {term}`KL divergence`, {term}`Monte Carlo estimate`,
# {term}`ELBO`, {term}`reparameterization trick`.
#
# The next chapter transforms distributions with *bijectors*.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, followed by a *check cell* that tells you whether
# the answer is right and, if not, what differs. In this copy the answer cells hold worked
# solutions; the student version of the notebook (`tfpcourse student`) replaces them by hints
# and answers set to `None`. Fill in an answer cell, run it, then run the check below it.
#
# **1 (warm-up). Predict the shapes.** Build `normals = tfd.Normal(loc=tf.zeros([4, 1]),
# scale=tf.ones([3]))` and `normals_ind`, the same distribution wrapped in `tfd.Independent`
# with `reinterpreted_batch_ndims=1`. Before running anything, write down as tuples the shape
# of `sample(2)` (`sample_shape`, the same for both) and the shapes of `log_prob` of that
# sample under each (`log_prob_shape` and `log_prob_shape_ind`). Then check them with
# `describe_shapes`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: normals, normals_ind, sample_shape, log_prob_shape, log_prob_shape_ind
# hint: loc and scale broadcast against each other; a univariate Normal's event shape is ().
# hint: sample shape + batch shape + event shape for sample; no event shape for log_prob.
# hint: Independent(..., reinterpreted_batch_ndims=1) moves the last batch dimension into
# hint: the event.
# wrong: log_prob_shape_ind = (2, 4, 3)  # forgot that Independent sums over the event
# wrong: sample_shape = (2, 3); log_prob_shape = (2, 3)  # ignored the (4, 1) loc
# wrong: normals_ind = tfd.Independent(normals, reinterpreted_batch_ndims=2)  # both dims
normals = tfd.Normal(loc=tf.zeros([4, 1]), scale=tf.ones([3]))
normals_ind = tfd.Independent(normals, reinterpreted_batch_ndims=1)
sample_shape = (2, 4, 3)  # sample (2,) + batch (4, 3) + event ()
log_prob_shape = (2, 4, 3)  # sample (2,) + batch (4, 3)
log_prob_shape_ind = (2, 4)  # sample (2,) + batch (4,): the event (3,) is summed over
print("Normal     :", describe_shapes(normals, 2))
print("Independent:", describe_shapes(normals_ind, 2))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
reference = tfd.Normal(loc=tf.zeros([4, 1]), scale=tf.ones([3]))
draw = reference.sample(2, seed=seeding.stateless_seed(0))
print(check.shapes("normals", normals, batch_shape=[4, 3], event_shape=[]))
print(check.shapes("normals_ind", normals_ind, batch_shape=[4], event_shape=[3]))
print(check.equal("sample_shape", sample_shape, draw.shape))
print(check.equal("log_prob_shape", log_prob_shape, reference.log_prob(draw).shape))
print(check.equal("log_prob_shape_ind", log_prob_shape_ind,
                  tfd.Independent(reference, 1).log_prob(draw).shape))

# %% [markdown]
# **2 (formula). Categorical logits.** A Categorical can be given logits $\ell$ instead of
# probabilities, with $\pi = \mathrm{softmax}(\ell)$, that is $\pi_k = e^{\ell_k} / \sum_j
# e^{\ell_j}$, so $\log P(k) = \ell_k - \log\sum_j e^{\ell_j}$. For $\ell = (1, 2, 3)$,
# compute with NumPy the probabilities `pi` and the log-probabilities `log_probs` of $k = 0, 1,
# 2$ (each a vector of 3), and compare them with `tfd.Categorical(logits=...)`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: pi, log_probs
# hint: np.exp, np.sum and np.log are all you need; both answers have shape (3,).
# hint: subtracting the largest logit first changes nothing in the result and keeps np.exp
# hint: from overflowing for large logits.
# wrong: pi = ell / ell.sum(); log_probs = np.log(pi)  # normalised the logits themselves
# wrong: log_probs = ell - np.sum(np.exp(ell))  # forgot the log of the normaliser
# wrong: pi = np.exp(ell); log_probs = ell  # forgot to normalise at all
ell = np.array([1.0, 2.0, 3.0])
log_norm = ell.max() + np.log(np.sum(np.exp(ell - ell.max())))  # log sum_j exp(ell_j)
log_probs = ell - log_norm
pi = np.exp(log_probs)
cat_logits = tfd.Categorical(logits=ell.astype(np.float32))
print("formula: pi", np.round(pi, 6), "| log P(k)", np.round(log_probs, 6))
print("TFP    : pi", np.round(cat_logits.probs_parameter().numpy(), 6),
      "| log P(k)", np.round(cat_logits.log_prob([0, 1, 2]).numpy(), 6))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
logits_ref = tf.constant([1.0, 2.0, 3.0])
print(check.close("pi", pi, expected=tf.nn.softmax(logits_ref), atol=1e-6))
log_probs_ref = tfd.Categorical(logits=logits_ref).log_prob([0, 1, 2])
print(check.close("log_probs", log_probs, expected=log_probs_ref, atol=1e-6))

# %% [markdown]
# **3 (Monte Carlo). The other direction.** Estimate $\mathrm{KL}(p\,\|\,q)$ for the two
# Normals of section 5 ($p = \mathcal N(0, 1)$, $q = \mathcal N(1, 0.5^2)$) with
# `kl_monte_carlo` and $n = 100{,}000$ draws: store the estimate as `kl_pq_mc` and its
# standard error as `stderr_pq`. Is the estimate within three standard errors of the closed
# form? Store as `stderr_qp` the standard error of the estimate of $\mathrm{KL}(q\,\|\,p)$ at
# the same $n$. Why is `stderr_pq` so much larger? (Think about which distribution the draws
# come from, and where $q$'s log-density changes fast.) The formula $s^2 = 2a^2 + b^2$ of
# section 5 predicts both standard errors.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: kl_pq_mc, stderr_pq, stderr_qp
# hint: kl_monte_carlo(first, second, n, seed=...) estimates KL(first || second) with draws
# hint: from `first`; its result has .estimate and .stderr.
# hint: normal_kl(m1, s1, m2, s2) from section 5 gives the closed form.
# wrong: kl_pq_mc, stderr_pq = kl_monte_carlo(q, p, 100_000, seed=15)[:2]  # KL(q || p)
# wrong: stderr_pq = res.stderr * np.sqrt(res.n)  # the standard deviation s, not s / sqrt(n)
# wrong: stderr_qp = stderr_pq  # assumed both directions are equally noisy
res = kl_monte_carlo(p, q, 100_000, seed=15)
kl_pq_mc, stderr_pq = res.estimate, res.stderr
stderr_qp = kl_monte_carlo(q, p, 100_000, seed=15).stderr
exact_pq = normal_kl(0.0, 1.0, 1.0, 0.5)
print(f"KL(p || q): Monte Carlo {kl_pq_mc:.4f} ± {stderr_pq:.4f} | exact {exact_pq:.4f}")
print("within 3 standard errors:", abs(kl_pq_mc - exact_pq) < 3 * stderr_pq)
print(f"standard error for KL(q || p) at the same n: {stderr_qp:.4f}")
# Draws from the wide p often land where the narrow q is tiny and log q(x) falls steeply, so
# the differences log p(x) - log q(x) vary much more than in the other direction: here
# a = 1.5, b = -4, s^2 = 20.5, against s^2 = 0.53 for KL(q || p).

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def se_formula(m1, s1, m2, s2, n=100_000):
    """Standard error of the Monte Carlo KL(N(m1, s1^2) || N(m2, s2^2)): s / sqrt(n)."""
    a, b = 0.5 * (s1**2 / s2**2 - 1.0), s1 * (m1 - m2) / s2**2
    return np.sqrt((2 * a**2 + b**2) / n)


se_pq = se_formula(0.0, 1.0, 1.0, 0.5)
print(check.close("kl_pq_mc", kl_pq_mc, expected=normal_kl(0.0, 1.0, 1.0, 0.5),
                  atol=4 * se_pq))
print(check.close("stderr_pq", stderr_pq, expected=se_pq, rtol=0.1))
print(check.close("stderr_qp", stderr_qp, expected=se_formula(1.0, 0.5, 0.0, 1.0), rtol=0.1))

# %% [markdown]
# **4 (explore). The best Normal for a mixture.** For the 1-D mixture `mixture_sf` of
# section 4, estimate $\mathrm{KL}(\text{mixture}\,\|\,\mathcal N(m, s^2))$, with draws from
# the mixture, for the *moment-matched* Normal ($m$ and $s^2$ the mixture's mean and
# variance) and for Normals with $m$ shifted by $\pm 0.5$ or $s$ scaled by 0.8 or 1.2. Store
# the $m$ and $s$ of the Normal with the smallest estimate as `best_m` and `best_s`, and that
# estimate as `best_kl`. Check the moment-matched estimate by numerical integration, as in
# section 5. (It is a theorem that moment matching minimises this direction of the KL over
# all Normals.)

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: best_m, best_s, best_kl
# hint: the mixture's mean and variance are mean_formula and var_formula (section 4).
# hint: kl_monte_carlo(mixture_sf, tfd.Normal(...), 100_000, seed=...) draws from the mixture;
# hint: give the Normal float32 parameters, like the mixture's.
# hint: min(d, key=d.get) is the key of a dictionary d with the smallest value.
# wrong: best_s = var_formula  # the variance, not the standard deviation
# wrong: best = max(kls, key=kls.get); best_m, best_s = candidates[best]; best_kl = kls[best]
# wrong: best_kl = kl_monte_carlo(best_normal, mixture_sf, 100_000, seed=16).estimate
m0, s0 = mean_formula, np.sqrt(var_formula)
candidates = {"moment-matched": (m0, s0), "m - 0.5": (m0 - 0.5, s0), "m + 0.5": (m0 + 0.5, s0),
              "s x 0.8": (m0, 0.8 * s0), "s x 1.2": (m0, 1.2 * s0)}
kls = {}
for name, (m, s) in candidates.items():
    r = kl_monte_carlo(mixture_sf, tfd.Normal(np.float32(m), np.float32(s)), 100_000, seed=16)
    kls[name] = r.estimate
    print(f"{name:15s} m = {m:6.3f}, s = {s:5.3f}: KL = {r.estimate:.4f} ± {r.stderr:.4f}")
log_mix = mixture_logpdf(x_fine, weights, mix_locs, mix_scales)
integral = np.trapezoid(np.exp(log_mix) * (log_mix - normal_logpdf(x_fine, m0, s0)), x_fine)
print(f"moment-matched, by numerical integration: {integral:.4f}")
best = min(kls, key=kls.get)
best_m, best_s = candidates[best]
best_kl = kls[best]
best_normal = tfd.Normal(np.float32(best_m), np.float32(best_s))
print("smallest:", best)

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: the mixture's mean and standard deviation from TFP, and the KL by integration.
m_ref, s_ref = float(mixture_sf.mean()), float(mixture_sf.stddev())
log_mix_ref = mixture_logpdf(x_fine, weights, mix_locs, mix_scales)
kl_ref = np.trapezoid(np.exp(log_mix_ref) * (log_mix_ref - normal_logpdf(x_fine, m_ref, s_ref)),
                      x_fine)
print(check.close("best_m", best_m, expected=m_ref, atol=1e-4))
print(check.close("best_s", best_s, expected=s_ref, atol=1e-4))
print(check.close("best_kl", best_kl, expected=kl_ref, atol=0.006))  # about 4 standard errors

# %% [markdown]
# **5 (debug). Find the shape bug.** A classifier gives six examples the probabilities
# 0.9, 0.2, 0.7, 0.6, 0.1 and 0.8 of being positive, and their labels arrive as a column,
# `[[1], [0], [1], [0], [0], [1]]`, of shape `(6, 1)`. A colleague sums
# `tfd.Bernoulli(probs=...).log_prob(labels)` and reports it as the log-likelihood. Print the
# shape of what they summed, then compute what they meant: the per-example log-likelihoods
# `per_example_ll` (shape `(6,)`), the data set's log-likelihood `total_ll` (one number), and
# `labels_dist`, one distribution over all six labels whose `log_prob` of the six labels is
# `total_ll`. How far off was the colleague's sum?

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: per_example_ll, total_ll, labels_dist
# hint: compare the shape log_prob returns with the batch shape of the six Bernoullis.
# hint: labels[:, 0] (or np.ravel) turns the column into a vector of shape (6,).
# hint: tfd.Independent(..., reinterpreted_batch_ndims=1) makes the six labels one event.
# wrong: per_example_ll = coins6.log_prob(ex_col).numpy()  # the broadcast (6, 6) array
# wrong: per_example_ll = coins6.log_prob(ex_col).numpy().mean(axis=1)  # averaged each row
# wrong: total_ll = float(np.mean(per_example_ll))  # the mean, not the sum
# wrong: total_ll = -total_ll  # the negative log-likelihood
# wrong: labels_dist = coins6  # no Independent: log_prob returns six numbers
ex_probs = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.8], np.float32)
ex_col = np.array([[1], [0], [1], [0], [0], [1]], np.int32)
coins6 = tfd.Bernoulli(probs=ex_probs)  # batch shape (6,)
colleague = coins6.log_prob(ex_col)
print(f"the colleague summed shape {colleague.shape}: {float(tf.reduce_sum(colleague)):.4f}")
ex_labels = ex_col[:, 0]  # shape (6,): one label per Bernoulli
per_example_ll = coins6.log_prob(ex_labels).numpy()
total_ll = float(per_example_ll.sum())
labels_dist = tfd.Independent(coins6, reinterpreted_batch_ndims=1)
print("per example:", np.round(per_example_ll, 4), f"| total {total_ll:.4f}")
print(f"Independent: event shape {labels_dist.event_shape}, "
      f"log_prob {float(labels_dist.log_prob(ex_labels)):.4f}")

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: y log p + (1 - y) log(1 - p) per example, in float64 NumPy.
probs_ref = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.8])
labels_ref = np.array([1, 0, 1, 0, 0, 1])
ll_ref = labels_ref * np.log(probs_ref) + (1 - labels_ref) * np.log1p(-probs_ref)


def scores_all_labels(dist):
    if dist is None:
        return None  # not answered yet
    return np.isclose(float(dist.log_prob(labels_ref)), ll_ref.sum(), atol=1e-5)


print(check.close("per_example_ll", per_example_ll, expected=ll_ref, atol=1e-5))
print(check.close("total_ll", total_ll, expected=ll_ref.sum(), atol=1e-5))
print(check.shapes("labels_dist", labels_dist, batch_shape=[], event_shape=[6]))
print(check.that("labels_dist", lambda: scores_all_labels(labels_dist),
                 "log_prob of the six labels is one number, their total log-likelihood"))
