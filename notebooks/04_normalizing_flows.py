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
# # 04 · Normalizing flows: from a two-layer flow to MAF, IAF and RealNVP
#
# Chapter 03 trained a single bijector and ran into its limits: one monotone map of a Normal
# could not put unequal mass on two bumps. A *normalizing flow* {cite:p}`rezende2015flows`
# stacks many trainable bijectors, each simple enough to invert and to differentiate, so that
# together they can bend a Gaussian into almost any shape, while keeping both an exact density
# and cheap sampling.
#
# **What you will learn**
#
# 1. What flows offer that VAEs and GANs do not, and the log-likelihood of data under a flow.
# 2. How to build and train a first flow (an affine map and a learnable leaky ReLU), and why
#    parameterisation, initialisation and learning rate decide whether it trains in seconds or
#    not at all.
# 3. Autoregressive flows: MADE masks, the masked autoregressive flow (MAF), its inverse
#    (IAF), and their speed trade-off, measured.
# 4. Coupling flows (RealNVP) with permutations between layers.
# 5. How MAF and RealNVP fit four 2-D densities, scored on held-out data and, where the true
#    density is known, against the truth.
#
# **Prerequisites:** chapters [02](02_distributions.ipynb) and [03](03_bijectors.ipynb)
# (distributions, bijectors, change of variables, `check_bijector`, `fit_max_likelihood`).

# %% [markdown]
# ## 0. Set-up
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

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse import check, config, flows, plot, seeding, timing, toy2d
from tfpcourse.bijectors import check_bijector
from tfpcourse.training import fit_max_likelihood, mean_nll

tfd, tfb = tfp.distributions, tfp.bijectors
cfg = config.get_config()
seeding.seed_everything(0)
print(f"Profile: {cfg.profile}")

# %% [markdown]
# ## 1. Why flows
#
# Three families of deep generative models answer different questions:
#
# * A **GAN** learns to *sample*: it turns noise into data, but gives no density, so you
#   cannot ask how likely a point is.
# * A **VAE** (chapters 05-07) gives samples and a *lower bound* on the log-likelihood (the
#   ELBO of {ref}`chapter 02 <elbo>`); the exact likelihood needs an integral over the latent
#   variables that we can only estimate.
# * A **flow** gives both, exactly. Data $x$ is modelled as $x = f(z)$ with
#   $z \sim \mathcal{N}(0, I)$ and $f = f_K \circ \dots \circ f_1$ a chain of bijectors. Then,
#   with $z_K = x$ and $z_{k-1} = f_k^{-1}(z_k)$,
#
# $$ \log p(x) = \log \mathcal{N}(z_0; 0, I) + \sum_{k=1}^{K} \log\Big|\det
#    \frac{\partial f_k^{-1}}{\partial z_k}(z_k)\Big|. $$
#
# The price: every layer must be invertible with a tractable Jacobian determinant, which
# restricts what each layer can do. The art of flow design is choosing layers that are
# restricted individually but expressive together.
#
# TFP evaluates this sum for us. Check it once by hand, on a small random flow: undo the
# layers one at a time, adding each layer's inverse log-det:

# %%
# NBVAL_CHECK_OUTPUT
small = flows.realnvp(num_layers=3, hidden_units=(8,), seed=0)
rng = np.random.default_rng(0)
for v in small.trainable_variables:  # give the zero-initialised networks some weights
    v.assign(0.3 * rng.standard_normal(v.shape).astype(np.float32))
x_check = rng.standard_normal((4, 2)).astype(np.float32)

total, z = 0.0, tf.constant(x_check)
for layer in reversed(small.layers):
    total += layer.inverse_log_det_jacobian(z, event_ndims=1)
    z = tf.constant(layer.inverse(z).numpy())
by_hand = small.base.log_prob(z) + total
print("sum over layers:", np.round(by_hand.numpy(), 5))
print("flow.log_prob  :", np.round(small.log_prob(x_check).numpy(), 5))
np.testing.assert_allclose(by_hand, small.log_prob(x_check), rtol=1e-5)

# %% [markdown]
# ## 2. A first trainable flow
#
# We start where the answer is known. The data come from $\mathcal{N}(\mu, 2^2 I)$ with
# $\mu = (1, 1)$: a Gaussian, so an affine map of the base distribution fits it exactly. The
# best achievable negative log-likelihood is the data distribution's entropy,
# $H = \tfrac{d}{2}\log(2\pi e) + \tfrac12 \log\det\Sigma = \log(2\pi e) + \log 4$ in two
# dimensions; no model can do better on average.

# %%
# NBVAL_CHECK_OUTPUT
mu_true, sigma_true = np.array([1.0, 1.0], np.float32), 2.0
target = tfd.MultivariateNormalDiag(loc=mu_true, scale_diag=[sigma_true, sigma_true])
entropy = np.log(2 * np.pi * np.e) + np.log(sigma_true**2)
print(f"entropy: {entropy:.5f} nats (TFP: {float(target.entropy()):.5f})")
s_train, s_valid = seeding.split_seed(seeding.stateless_seed(11), 2)
x_gauss = target.sample(10_000, seed=s_train).numpy()
x_gauss_valid = target.sample(20_000, seed=s_valid).numpy()
exact_valid_nll = float(-tf.reduce_mean(target.log_prob(x_gauss_valid)))
print(f"train {x_gauss.shape}, valid {x_gauss_valid.shape}, "
      f"sample mean {np.round(x_gauss.mean(axis=0), 3)}")
print(f"NLL of the exact density on the validation points: {exact_valid_nll:.4f} nats")

# %% [markdown]
# The entropy is an *average* over all possible data; on a finite validation set even the
# true density scores a little above or below it (here by about 0.01 nats, with 20,000
# points). So we judge a model by its gap to the exact density's NLL *on the same
# points*.

# %% [markdown]
# ### The layers
#
# The flow has two layers, applied to base samples in this order:
#
# 1. a **leaky ReLU** with a learnable slope $\alpha > 0$ for negative inputs:
#    $y = x$ for $x \ge 0$ and $\alpha x$ for $x < 0$ (log-det $\log \alpha$ per negative
#    coordinate);
# 2. an **affine map** $y = Sx + b$ whose scale is $S = L(I + uu^\top)$: a lower-triangular
#    $L$ times a rank-one update of the identity. Multiplied out, $S = L + (Lu)u^\top$, a
#    lower-triangular matrix plus a rank-one matrix. TFP's linear operators compute its
#    log-determinant, $\log|\det L| + \log(1 + u^\top u)$ by the matrix determinant lemma,
#    without forming $S$.
#
# A bijector can be written from plain functions with `tfb.Inline`. It is quick, but it has a
# trap for training: the variable the functions use is hidden inside a closure, so the bijector
# cannot report it as trainable.

# %%
# NBVAL_CHECK_OUTPUT
alpha_hidden = tf.Variable(0.5)
inline_leaky = tfb.Inline(
    forward_fn=lambda x: tf.where(x >= 0, x, alpha_hidden * x),
    inverse_fn=lambda y: tf.where(y >= 0, y, y / alpha_hidden),
    inverse_log_det_jacobian_fn=lambda y: tf.where(y >= 0, 0.0, -tf.math.log(alpha_hidden)),
    forward_min_event_ndims=0,
    name="inline_leaky_relu",
)
grid = np.concatenate([np.linspace(-3, -0.1, 10), np.linspace(0.1, 3, 10)]).astype(np.float32)
print("Inline leaky ReLU checker:", check_bijector(inline_leaky, grid).passed)
print("trainable variables it reports:", len(inline_leaky.trainable_variables))

# %% [markdown]
# `tfpcourse.flows.LeakyReLU` is the same map written as a subclass (as in chapter 03), which
# stores $\alpha$ as an attribute, so TensorFlow finds it. We keep $\alpha$ positive by
# storing it as a `TransformedVariable`: an unconstrained variable passed through `Softplus`.

# %%
# NBVAL_CHECK_OUTPUT
alpha = tfp.util.TransformedVariable(0.5, tfb.Softplus(), name="alpha")
leaky = flows.LeakyReLU(alpha)
print("subclass checker:", check_bijector(leaky, grid).passed,
      "| trainable variables:", len(leaky.trainable_variables))
np.testing.assert_allclose(leaky.forward(grid), inline_leaky.forward(grid))
print("same values as the Inline version:", True)

# %% [markdown]
# ### Parameterisation, initialisation, learning rate
#
# Written naively, this flow trains slowly or not at all. Three choices fix that.
#
# * **Parameterise so every value is valid.** $S$ must stay invertible, or
#   $\log|\det S| \to -\infty$. With $L$'s diagonal stored through `Softplus` (always
#   positive) and $1 + u^\top u \ge 1$, $\det S > 0$ whatever the optimiser does. (The
#   tempting $S = L + uv^\top$ is not safe: its determinant $\det L\,(1 + v^\top L^{-1}u)$
#   can pass through zero.) $\alpha$ is kept positive the same way.
# * **Start at (almost) the identity.** With $L = I$, $b = 0$, $\alpha = 1$ and a tiny $u$, the
#   initial model is nearly the base distribution: a finite, sensible loss with well-scaled
#   gradients. A random start can place most data where the model's density is tiny. ($u$
#   starts small but not at zero: at $u = 0$ its gradient is exactly zero and it never moves.)
# * **Use a learning rate the problem can take.** Each parameter only has to move by about one
#   unit (the shift from 0 to 1, the scale from 1 to 2). With large, almost exact gradient
#   estimates (batches of 1,000 points), a step size of 0.05 can get there in tens of steps.
#
# Below we measure how much each choice matters, one at a time.
#
# A function builds the flow either way, so the two can be compared fairly:

# %%
# NBVAL_CHECK_OUTPUT
def first_flow(careful: bool, seed: int = 0):
    """Leaky ReLU, then the affine map S x + b with S = L (I + u u^T) (base -> data).

    careful=True: identity start, positive values through Softplus. careful=False: a random
    start with unconstrained values, as in many tutorials.
    """
    rng = np.random.default_rng(seed)
    if careful:
        alpha = tfp.util.TransformedVariable(1.0, tfb.Softplus(), name="alpha")
        tril = tfp.util.TransformedVariable(np.eye(2, dtype=np.float32),
                                            tfb.FillScaleTriL(diag_bijector=tfb.Softplus()),
                                            name="tril")
    else:
        alpha = tf.Variable(0.2, name="alpha")
        tril = tf.Variable(np.tril(rng.normal(0.0, 0.7, (2, 2))).astype(np.float32), name="tril")
    u = tf.Variable(0.01 * rng.standard_normal((2, 1)).astype(np.float32), name="u")
    shift = tf.Variable([0.0, 0.0], name="shift")
    scale = tf.linalg.LinearOperatorComposition([
        tf.linalg.LinearOperatorLowerTriangular(tril),
        tf.linalg.LinearOperatorLowRankUpdate(
            tf.linalg.LinearOperatorIdentity(2), u=u, is_self_adjoint=True,
            is_positive_definite=True),
    ])
    affine = tfb.Chain([tfb.Shift(shift), tfb.ScaleMatvecLinearOperator(scale)], name="affine")
    return flows.Flow([flows.LeakyReLU(alpha), affine], event_size=2,
                      name="careful" if careful else "naive")


careful_flow = first_flow(careful=True)
print("variables:", [v.name for v in careful_flow.trainable_variables])

# %% [markdown]
# At its careful start the flow is a valid bijector, as chapter 03's checker confirms:

# %%
# TOLERANCE: abs=1e-5 -- round-off errors of a map near the identity (the checker's atol)
print(check_bijector(careful_flow.bijector, x_gauss[:50], event_ndims=1, rtol=1e-3))

# %% [markdown]
# Before any training the two starts are far apart: on the validation points, the careful
# start is a few nats above the exact density's NLL, the naive one hundreds of thousands.

# %%
# NBVAL_CHECK_OUTPUT
for label, careful in [("careful", True), ("naive", False)]:
    start_nll = mean_nll(first_flow(careful=careful).distribution, x_gauss_valid)
    print(f"{label:7s} start: {start_nll - exact_valid_nll:10.2f} nats above the exact density")

# %% [markdown]
# Train the careful flow with `fit_max_likelihood` from chapter 03, and then variants that
# each change *one* of the three choices: a naive start (random, unconstrained values), a
# small learning rate (0.001), and small batches (100 points). We record the validation NLL
# before training (epoch 0) and after every epoch, and measure the wall time.

# %%
# TOLERANCE: abs=0.01 rel=0.05 -- end gaps in nats; steps to get within 0.01 exact
variants = [  # name, careful start, learning rate, batch size
    ("careful", True, 0.05, 1000),
    ("naive start", False, 0.05, 1000),
    ("small learning rate", True, 1e-3, 1000),
    ("small batches", True, 0.05, 100),
]
runs = {}
for name, careful, lr, batch in variants:
    flow = first_flow(careful=careful)
    nll_0 = mean_nll(flow.distribution, x_gauss_valid)
    history = fit_max_likelihood(flow.distribution, x_gauss, valid=x_gauss_valid,
                                 epochs=cfg.pick(full=40, smoke=2), batch_size=batch,
                                 learning_rate=lr, variables=flow.trainable_variables)
    curve = np.array([nll_0, *history.valid_nll]) - exact_valid_nll
    steps_per_epoch = history.steps // history.epochs
    within = np.nonzero(curve < 0.01)[0]
    reached = f"after {within[0] * steps_per_epoch} steps" if len(within) else "not reached"
    runs[name] = (flow, curve, history.seconds)
    print(f"{name:20s} end {curve[-1]:+.4f} nats from the exact density; "
          f"within 0.01: {reached} ({history.seconds:.1f} s)")

# %%
# NBVAL_CHECK_OUTPUT
fig, ax = plt.subplots(figsize=(6.8, 3.8))
for name, (_flow, curve, seconds) in runs.items():
    ax.semilogy(np.arange(len(curve)), np.maximum(curve, 1e-4), label=f"{name} ({seconds:.0f} s)")
ax.axhline(0.01, color="k", ls="--", lw=1, label="0.01 nats")
ax.set_xlabel("epoch (10,000 training points each; 0 = before training)")
ax.set_ylabel("validation NLL minus exact (nats)")
ax.set_title("First flow: the careful set-up and one change at a time")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# *Figure 1.* How far each set-up's validation NLL is above that of the exact density on the
# same 20,000 points, per epoch, on a log scale (values below $10^{-4}$, including slightly
# negative ones from sampling noise, are drawn at $10^{-4}$); the dashed line marks 0.01
# nats. Counted in optimiser steps, the careful set-up gets within 0.01 nats first (60
# steps). Small batches need 100 steps, which is the first epoch (10 times as many steps per
# epoch), cost three times the wall time, and stay noisier afterwards. With the small learning
# rate the curve is still half a nat above after 40 epochs. The naive start is by far the
# most harmful: it begins more than 200,000 nats away and stalls about 17 nats above.
#
# What did the careful flow learn? The scale should be $2I$ (up to a rotation: any $S$ with
# $SS^\top = 4I$ gives the same Gaussian), the shift $(1, 1)$, and the leaky ReLU should
# have become (almost) the identity, $\alpha \approx 1$, because a Gaussian needs no kink:

# %%
# TOLERANCE: abs=0.02 -- learned alpha, S S^T and shift
leaky_layer, affine = runs["careful"][0].layers
b_learned = affine.forward(tf.zeros(2)).numpy()  # the affine map at 0 is its shift
S = (affine.forward(tf.eye(2)).numpy() - b_learned).T  # column j is S e_j
print(f"alpha = {float(tf.convert_to_tensor(leaky_layer.alpha)):.3f} (target 1)")
print("S S^T =", np.round((S @ S.T).astype(np.float64), 2).tolist(), "(target [[4, 0], [0, 4]])")
print("shift =", np.round(b_learned, 3), "(target [1, 1])")

# %% [markdown]
# ## 3. Autoregressive flows
#
# An affine map and a kink are not enough for data with curved structure. Autoregressive flows
# make each coordinate an affine function of a base value, with a shift and scale that depend
# on *all previous coordinates*:
#
# $$ x_i = z_i \, e^{\alpha_i(x_{<i})} + \mu_i(x_{<i}). $$
#
# The Jacobian $\partial x / \partial z$ is triangular (coordinate $i$ depends only on $z_{\le
# i}$), so its log-determinant is just $\sum_i \alpha_i$, however complicated the functions
# $\mu_i, \alpha_i$ are. They are computed by one neural network whose connections are
# *masked* so that output $i$ sees only inputs $< i$: MADE, the masked autoencoder for
# distribution estimation {cite:p}`germain2015made`.
#
# ### MADE masks
#
# Input $j$ and output $j$ get the number (*degree*) $j$, from 1 to $D$; each hidden unit
# gets a degree from 1 to $D-1$. A connection into a hidden unit is kept only if the source's
# degree is $\le$ the unit's; a connection into an output only if it is strictly $<$. Then
# every path from input $j$ to output $i$ has $j < i$. TFP's `AutoregressiveNetwork` builds
# the masks and keeps every masked weight at zero, so the masks can be read off its kernels
# (its public `trainable_variables`): nonzero means connected. Here they are for 3 inputs and
# one hidden layer of 6 units (numbered 1 to 6).

# %%
# NBVAL_CHECK_OUTPUT
made = tfb.AutoregressiveNetwork(params=2, hidden_units=[6], event_shape=[3], activation="tanh",
                                 kernel_initializer="glorot_normal")
made(tf.zeros((1, 3)))  # build
kernels = [v.numpy() for v in made.trainable_variables if "kernel" in v.name]
mask_in, mask_out = [kernel != 0 for kernel in kernels]
print("input -> hidden mask (rows: inputs 1-3, columns: hidden units):")
print(mask_in.astype(int))
print("hidden -> output mask (rows: hidden units 1-6, columns: outputs 1-3; the network has")
print("two outputs per dimension, shift and log-scale, with identical masks: one is shown)")
print(mask_out.astype(int)[:, ::2])

# %%
# NBVAL_CHECK_OUTPUT
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8))
axes[0].imshow(mask_in.T, cmap="Greys", vmin=0, vmax=1)
axes[0].set_xlabel("input dimension")
axes[0].set_ylabel("hidden unit")
axes[0].set_xticks(range(3), ["1", "2", "3"])
axes[0].set_yticks(range(6), [str(i) for i in range(1, 7)])
axes[0].set_title("input -> hidden (black: connected)")
axes[1].imshow(mask_out[:, ::2], cmap="Greys", vmin=0, vmax=1)
axes[1].set_xlabel("output dimension")
axes[1].set_ylabel("hidden unit")
axes[1].set_xticks(range(3), ["1", "2", "3"])
axes[1].set_yticks(range(6), [str(i) for i in range(1, 7)])
axes[1].set_title("hidden -> output")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.* The two masks of a MADE network with 3 inputs and 6 hidden units (black:
# connection kept). No path leads from input 3 to any output, and output 1 receives no
# hidden unit at all: it depends on nothing.
#
# The masks are a claim; the Jacobian of the network's output with respect to its input tests
# it. For the autoregressive property it must be *strictly* lower triangular: output $i$ may
# depend on inputs $j < i$ only.

# %%
# NBVAL_CHECK_OUTPUT
x_in = tf.constant(np.random.default_rng(1).normal(size=(1, 3)).astype(np.float32))
with tf.GradientTape() as tape:
    tape.watch(x_in)
    shift_out = made(x_in)[..., 0]  # the shift parameter of each output dimension
jac = tape.batch_jacobian(shift_out, x_in)[0].numpy()
print("d(output i) / d(input j) is non-zero at:")
print((np.abs(jac) > 1e-12).astype(int))
assert np.allclose(np.triu(jac), 0.0)

# %% [markdown]
# ### MAF and IAF
#
# A **masked autoregressive flow** (MAF) {cite:p}`papamakarios2017maf` uses MADE as $x \to (\mu,
# \alpha)$. Given data $x$, all the shifts and scales come out of *one* network pass, so the
# density is fast. Sampling is slow: $x_1$ must be computed before $x_2$'s parameters are
# known, and so on, $D$ passes in sequence, per layer.
#
# An **inverse autoregressive flow** (IAF) {cite:p}`kingma2016iaf` is the same layer turned
# around (`tfb.Invert`): $x_i = (z_i - \mu_i(z_{<i}))\,e^{-\alpha_i(z_{<i})}$, where the network
# reads the *base* values. Sampling takes one pass per layer and the density of a new data
# point takes $D$. Which one to use depends on which operation must be fast: MAF for density
# estimation, IAF for fast sampling (as in a VAE's posterior).
#
# (In `tfpcourse.flows`, $\alpha_i$ passes through $3\tanh(\cdot/3)$, so no layer can scale a
# coordinate by more than $e^3$: without this bound, a MAF evaluated far from its training data
# can overflow to NaN.) Check the MAF formula and its log-det on one layer with random weights:

# %%
# NBVAL_CHECK_OUTPUT
maf1 = flows.maf(num_layers=1, hidden_units=(16,), seed=2)
net = maf1.networks[0]  # the layer's (bounded) MADE network
rng = np.random.default_rng(2)
for v in maf1.trainable_variables:  # multiplicative: keeps the masked zeros at zero
    v.assign(v * (1.0 + 0.5 * rng.standard_normal(v.shape).astype(np.float32)) + 0.0)
z_m = rng.standard_normal((5, 2)).astype(np.float32)
x_m = maf1.layers[0].forward(z_m)
mu, log_scale = net(tf.constant(x_m.numpy()))
print("x = z exp(alpha(x)) + mu(x):",
      np.allclose(x_m, z_m * np.exp(log_scale) + mu, atol=1e-5))
print("log-det = sum of alpha     :",
      np.allclose(maf1.layers[0].forward_log_det_jacobian(z_m, event_ndims=1),
                  np.sum(log_scale, axis=-1), atol=1e-5))
#
# One practical warning before we time them. TFP's `AutoregressiveNetwork` is a `tf_keras`
# layer. Put it inside a Keras 3 `Model` and the model does not see its variables: no error,
# just nothing to train. `tfpcourse.flows.Flow` is a `tf.Module`, which finds them:

# %%
# NBVAL_CHECK_OUTPUT
class KerasWrapper(keras.Model):
    def __init__(self):
        super().__init__()
        self.made = tfb.AutoregressiveNetwork(params=2, hidden_units=[8], event_shape=[2])

    def call(self, x):
        return self.made(x)


wrapper = KerasWrapper()
wrapper(tf.zeros((1, 2)))
print("variables inside the layer:     ", len(wrapper.made.trainable_variables))
print("variables the Keras 3 Model sees:", len(wrapper.trainable_variables))
one_layer_maf = flows.maf(num_layers=1, hidden_units=(8,))
print("variables a tfpcourse MAF sees:  ", len(one_layer_maf.trainable_variables))

# %% [markdown]
# Now the timing. Measured, with $D = 32$ dimensions, 4 layers of the same size each, and
# batches of 512:

# %%
# TOLERANCE: timing
D = 32
maf32 = flows.maf(event_size=D, num_layers=4, hidden_units=(128, 128), seed=0)
iaf32 = flows.iaf(event_size=D, num_layers=4, hidden_units=(128, 128), seed=0)
x32 = tf.constant(np.random.default_rng(2).normal(size=(512, D)).astype(np.float32))
seed32 = seeding.stateless_seed(5)
rows = []
for name, fl in [("MAF", maf32), ("IAF", iaf32)]:
    log_prob_fn = tf.function(fl.distribution.log_prob)
    sample_fn = tf.function(lambda fl=fl: fl.distribution.sample(512, seed=seed32))
    t_lp = timing.measure(lambda f=log_prob_fn: f(x32).numpy(), repeats=5)
    t_s = timing.measure(lambda f=sample_fn: f().numpy(), repeats=5)
    rows.append((name, t_lp.median, t_s.median))
    print(f"{name}: log_prob {t_lp.median * 1e3:7.1f} ms, sample {t_s.median * 1e3:7.1f} ms "
          f"per batch of 512")
print(f"MAF sampling / MAF density: {rows[0][2] / rows[0][1]:.0f}x; "
      f"IAF density / IAF sampling: {rows[1][1] / rows[1][2]:.0f}x")

# %% [markdown]
# The measurements show the trade-off: each flow is fast in one direction and about ten times
# slower in the other. The slow direction makes $D = 32$ network passes in sequence per layer
# instead of one; the ratio is smaller than 32 because part of the cost is paid once per call
# either way, and it depends on the sizes and the machine (the ratios printed above are for
# this run). Both directions are exact; only the cost differs.
#
# ## 4. RealNVP: coupling layers
#
# RealNVP {cite:p}`dinh2017realnvp` is fast in *both* directions. A coupling layer splits the
# coordinates into two halves: the first half passes through unchanged, and the second half is
# shifted and scaled by functions of the first,
#
# $$ y_{1:d} = x_{1:d}, \qquad y_{d+1:D} = x_{d+1:D} \odot e^{s(x_{1:d})} + t(x_{1:d}). $$
#
# Inverting it needs no network inversion: $x_{d+1:D} = (y_{d+1:D} - t(y_{1:d})) \odot
# e^{-s(y_{1:d})}$, in one pass. The log-det is $\sum s(x_{1:d})$. Because each layer leaves
# half the coordinates alone, the layers alternate which half they change: here, a
# `Permute` that reverses the coordinates sits between layers. (In `tfpcourse.flows`, $s$ is
# bounded by $2\tanh(\cdot/2)$, for the same reason as MAF's $\alpha$.) Check a layer with
# random weights against the formula, and with the checker:

# %%
# NBVAL_CHECK_OUTPUT
nvp = flows.realnvp(num_layers=1, hidden_units=(16,), seed=3)  # one layer with random weights
rng = np.random.default_rng(3)
for v in nvp.trainable_variables:
    v.assign(0.5 * rng.standard_normal(v.shape).astype(np.float32))
coupling = nvp.layers[0]
pts = rng.standard_normal((6, 2)).astype(np.float32)
out = coupling.forward(pts).numpy()
t_c, s_c = nvp.networks[0](tf.constant(pts[:, :1]), 1)  # the layer's shift-and-log-scale net
print("first coordinate unchanged:", np.allclose(out[:, 0], pts[:, 0]))
print("y2 = x2 exp(s(x1)) + t(x1):", np.allclose(out[:, 1:], pts[:, 1:] * np.exp(s_c) + t_c,
                                                atol=1e-5))
print("log-det = s(x1)           :",
      np.allclose(coupling.forward_log_det_jacobian(pts, event_ndims=1), s_c[:, 0], atol=1e-5))
print(check_bijector(coupling, pts, event_ndims=1, rtol=1e-3))

# %% [markdown]
# ## 5. Fitting 2-D densities
#
# Now the real test: four datasets from `tfpcourse.toy2d` (two moons, eight Gaussians, a
# checkerboard, and a three-component Gaussian mixture whose exact density we know), each
# standardised with its training mean and standard deviation, fitted with MAF and with
# RealNVP. Scores are held-out NLLs in nats per point, in the standardised space.
#
# For the mixture we can also compute the *true* held-out NLL. Standardising is an affine map,
# so the true density in standardised coordinates is $\log p(x) + \sum_j \log \sigma_j$ (the
# {ref}`change of variables <change-of-variables>` again), and a model's gap to it estimates
# its KL divergence from the truth.

# %%
# NBVAL_CHECK_OUTPUT
DATASETS = ["two_moons", "eight_gaussians", "checkerboard", "gaussian_mixture"]
n_train, n_test = cfg.pick(full=5000, smoke=500), cfg.pick(full=5000, smoke=500)  # smoke: less
data = {}
for i, name in enumerate(DATASETS):
    kwargs = {"noise": 0.05} if name == "two_moons" else {}
    train_raw = toy2d.sample(name, 5000, seed=100 + i, **kwargs)
    train, mean, std = toy2d.standardize(train_raw)
    valid, _, _ = toy2d.standardize(toy2d.sample(name, 2000, seed=200 + i, **kwargs),
                                    mean=mean, std=std)
    test_raw = toy2d.sample(name, 5000, seed=300 + i, **kwargs)
    test, _, _ = toy2d.standardize(test_raw, mean=mean, std=std)
    data[name] = dict(train=train, valid=valid, test=test, test_raw=test_raw, mean=mean, std=std)
    print(f"{name:17s} standardised with mean {np.round(mean, 3) + 0.0}, "
          f"std {np.round(std, 3)}")

# %% [markdown]
# The same settings for every dataset and both models: 4 MAF layers or 6 RealNVP layers with
# two hidden layers of 64 units, Adam with learning rate 0.003, batches of 256, and early
# stopping when the validation NLL has not improved for 20 epochs (keeping the best epoch).

# %%
# TOLERANCE: timing -- training log: epochs (early stopping) and seconds; NLLs compared below
models, results = {}, []
for name in DATASETS:
    d = data[name]
    n = cfg.pick(full=len(d["train"]), smoke=n_train)
    for kind, build in [("MAF", lambda: flows.maf(num_layers=4, hidden_units=(64, 64), seed=0)),
                        ("RealNVP",
                         lambda: flows.realnvp(num_layers=6, hidden_units=(64, 64), seed=0))]:
        flow = build()
        history = fit_max_likelihood(flow.distribution, d["train"][:n], valid=d["valid"],
                                     epochs=cfg.pick(full=200, smoke=2), batch_size=256,
                                     learning_rate=3e-3, patience=20,
                                     variables=flow.trainable_variables)
        test_nll = mean_nll(flow.distribution, d["test"][:n_test])
        models[name, kind] = flow
        results.append((name, kind, test_nll, history.epochs, history.seconds))
        print(f"{name:17s} {kind:8s} test NLL {test_nll:.4f} nats  "
              f"({history.epochs} epochs, {history.seconds:.0f} s)")

# %% [markdown]
# The true density of the mixture, in standardised coordinates, gives the floor for that
# dataset:

# %%
# TOLERANCE: abs=0.04 -- test NLLs and gaps to the truth, in nats
d = data["gaussian_mixture"]
true_log_p = toy2d.gaussian_mixture_distribution().log_prob(d["test_raw"][:n_test]).numpy()
true_nll = float(-np.mean(true_log_p + np.sum(np.log(d["std"]))))
# The same by TFP: the mixture pushed through the standardising map x -> (x - mean) / std.
standardised_truth = tfd.TransformedDistribution(
    toy2d.gaussian_mixture_distribution(),
    tfb.Chain([tfb.Scale(1.0 / d["std"]), tfb.Shift(-d["mean"])]))
np.testing.assert_allclose(
    -np.mean(standardised_truth.log_prob(d["test"][:n_test])), true_nll, rtol=1e-5)
print(f"true test NLL of the mixture (standardised space): {true_nll:.4f} nats")
print()
print(f"{'dataset':17s} {'model':8s} {'test NLL':>9s} {'gap to truth':>18s} {'time':>6s}")
for name, kind, nll, _epochs, seconds in results:
    gap = ""
    if name == "gaussian_mixture":
        diff = (true_log_p + np.sum(np.log(d["std"]))
                - models[name, kind].log_prob(d["test"][:n_test]).numpy())
        gap = f"{diff.mean():+.4f} +- {diff.std() / np.sqrt(len(diff)):.4f}"
    print(f"{name:17s} {kind:8s} {nll:9.4f} {gap:>18s} {seconds:5.0f}s")

# %% [markdown]
# Lower is better between the two models on the same dataset; NLLs of *different* datasets are
# not comparable (they measure how spread out each density is, not how good the model is). For
# the Gaussian mixture, the gap to the true density estimates the KL divergence from the truth
# that remains, with its Monte Carlo standard error. In this run RealNVP scores better than
# MAF on all four datasets, most clearly on the eight Gaussians; the difference on two moons
# is within the run-to-run spread of about 0.02 nats (training is not bit-reproducible on a
# multi-threaded CPU). Pictures show where the remaining errors are.

# %%
# NBVAL_CHECK_OUTPUT
fig, axes = plt.subplots(len(DATASETS), 3, figsize=(10, 3.1 * len(DATASETS)))
for row, name in enumerate(DATASETS):
    test = data[name]["test"][:2000]
    axes[row, 0].scatter(test[:, 0], test[:, 1], s=1, alpha=0.5)
    axes[row, 0].set_xlim(-3, 3)
    axes[row, 0].set_ylim(-3, 3)
    axes[row, 0].set_aspect("equal")
    axes[row, 0].set_title(f"{name}: held-out data", fontsize=9)
    axes[row, 0].set_xlabel("$x_1$")
    axes[row, 0].set_ylabel("$x_2$")
    for col, kind in enumerate(["MAF", "RealNVP"], start=1):
        plot.density_2d(models[name, kind].distribution, (-3, 3), (-3, 3), grid=120,
                        ax=axes[row, col], title=f"{kind} density", colorbar=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.* Each row is one dataset: held-out points (left) and the densities learned by
# MAF (middle) and RealNVP (right), on the same standardised axes; each panel has its own
# colour scale, so brightness is not comparable across panels. Both models put their mass
# where the data are. Where they differ from the data is at sharp edges (the checkerboard's
# squares, the gaps between the eight Gaussians): thin bridges of density remain between
# regions the data keep apart. They cannot vanish: the base density is positive everywhere and
# every layer's Jacobian determinant is finite and non-zero (here even bounded, by the tanh
# limits), so the model's density is positive everywhere too. Chapter 03's cubic, whose
# derivative was zero at one point, could cut its density to exactly zero; these layers
# cannot, by design.

# %% [markdown]
# ### Samples, and the data pushed through the flow
#
# The same trained RealNVP generates new points (forward direction) and, run backwards, maps
# the data to the Gaussian base. Following the two moons through the layers shows how the
# couplings and reversals unbend them a step at a time:

# %%
# NBVAL_CHECK_OUTPUT
nvp_moons = models["two_moons", "RealNVP"]
moons_test = data["two_moons"]["test"][:1500]
stages = nvp_moons.stages_inverse(moons_test)
keep = [0] + [i for i in range(1, len(stages)) if i % 2 == 1] + [len(stages) - 1]
keep = sorted(set(keep))
titles = (["data"] + [f"after undoing {i} layer{'s' if i > 1 else ''}" for i in keep[1:-1]]
          + ["base (z)"])
fig = plot.scatter_stages([stages[i] for i in keep], titles=titles, color=moons_test[:, 0],
                          lim=3.5, suptitle="Two moons mapped to the base, layer by layer")
plt.show()

# %% [markdown]
# *Figure 4.* Held-out two-moons points (coloured by their first coordinate, so each can be
# followed) as the trained RealNVP undoes its layers from the data (left) to the base space
# (right); the layer counts include the reversals between coupling layers. The last panel
# should look like a standard Normal cloud, and the colours show that neighbouring points stay
# neighbours: the map is continuous.

# %%
# NBVAL_CHECK_OUTPUT
samples = nvp_moons.sample(2000, seed=seeding.stateless_seed(9)).numpy()
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.8), sharex=True, sharey=True)
ax1.scatter(moons_test[:, 0], moons_test[:, 1], s=1)
ax1.set_title("held-out data")
ax2.scatter(samples[:, 0], samples[:, 1], s=1, color="C1")
ax2.set_title("RealNVP samples")
for ax in (ax1, ax2):
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
ax1.set_ylabel("$x_2$")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 5.* 1,500 held-out two-moons points (left) and 2,000 samples from the trained
# RealNVP (right). The samples follow both arcs; a few fall in the gap between them, the thin
# bridges of Figure 3 made visible.

# %% [markdown]
# ## Summary
#
# * Flows give exact log-likelihoods and exact samples: $\log p(x)$ is the base log-density of
#   $f^{-1}(x)$ plus the inverse log-dets of all layers.
# * Whether a flow trains well depends on its set-up: parameterise so every value is valid,
#   start at the identity, and use a learning rate the problem can take.
# * Autoregressive layers have triangular Jacobians thanks to MADE's masks. MAF evaluates
#   densities in one pass and samples in $D$; IAF does the opposite.
# * RealNVP's coupling layers are fast both ways; permutations between layers let every
#   coordinate be transformed.
# * On 2-D toy data both come within a few hundredths of a nat of a known true density; with
#   finite, non-zero Jacobians their density is positive everywhere, so thin bridges remain
#   between separated regions.
# * Keep trainable parts where TensorFlow can find them: `tfb.Inline` closures and TFP's
#   `tf_keras` layers inside a Keras 3 `Model` hide their variables; `tfpcourse.flows.Flow` is a
#   `tf.Module` that holds them.
#
# **Glossary:** {term}`normalizing flow`, {term}`autoregressive flow`, {term}`MADE`,
# {term}`coupling layer`.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, followed by a *check cell* that tells you whether
# the answer is right and, if not, what differs. In this copy the answer cells hold worked
# solutions; the student version of the notebook (`tfpcourse student`) replaces them by hints
# and answers set to `None`. Fill in an answer cell, run it, then run the check below it.
#
# **1 (warm-up). The determinant lemma.** For $S = L + uv^\top$ with $L$ lower triangular,
# $\det S = \det L\,(1 + v^\top L^{-1} u)$. Compute `det_lemma`, the right-hand side, for
# $L = \begin{pmatrix} 2 & 0 \\ 1 & 3\end{pmatrix}$, $u = (1, 2)^\top$, $v = (0.5, -1)^\top$,
# and compare it with `np.linalg.det`. Then find a vector `v_singular` (2 numbers) for which
# $L + uv^\top$, with the same $L$ and $u$, is singular: this is why section 2 built its
# scale as $L(I + uu^\top)$ instead.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: det_lemma, v_singular
# hint: np.linalg.solve(L, u) computes L^{-1} u without forming the inverse; the determinant
# hint: of a triangular matrix is the product of its diagonal.
# hint: S is singular when 1 + v^T (L^{-1} u) = 0: any v whose dot product with L^{-1} u is
# hint: -1 will do.
L_ex = np.array([[2.0, 0.0], [1.0, 3.0]])
u_ex, v_ex = np.array([1.0, 2.0]), np.array([0.5, -1.0])
w_ex = np.linalg.solve(L_ex, u_ex)  # L^{-1} u = (0.5, 0.5)
det_lemma = np.prod(np.diag(L_ex)) * (1.0 + v_ex @ w_ex)
direct = np.linalg.det(L_ex + np.outer(u_ex, v_ex))
print(f"lemma {det_lemma:.6f}, direct {direct:.6f}, agree: {np.isclose(det_lemma, direct)}")
v_singular = -w_ex / (w_ex @ w_ex)  # v . w = -1
singular_det = np.linalg.det(L_ex + np.outer(u_ex, v_singular))
print("v_singular:", v_singular, "| L + u v^T singular:", abs(singular_det) < 1e-12)
# With S = L (I + u u^T), det S = det L (1 + u^T u), and 1 + u^T u >= 1 for every u.


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def singular_with(v):
    if v is None:
        return None  # not answered yet
    L, u = np.array([[2.0, 0.0], [1.0, 3.0]]), np.array([[1.0], [2.0]])
    return abs(np.linalg.det(L + u @ np.reshape(v, (1, 2)))) < 1e-9


print(check.close("det_lemma", det_lemma, rtol=1e-9,
                  expected=np.linalg.det(np.array([[2.0, 0.0], [1.0, 3.0]])
                                         + np.outer([1.0, 2.0], [0.5, -1.0]))))
print(check.that("v_singular", lambda: singular_with(v_singular),
                 "L + u v_singular^T has determinant 0"))

# %% [markdown]
# **2 (autodiff). Check a deeper MADE.** Build `made5 = tfb.AutoregressiveNetwork(params=2,
# hidden_units=[16, 16], event_shape=[5], activation="tanh")` and compute `jac5`, the
# $5 \times 5$ Jacobian of its log-scale outputs (`made5(x)[..., 1]`) with respect to one
# input point $x$, as in section 3. Verify that output $i$ depends on inputs $j < i$ only,
# and that it does depend on every one of them.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: made5, jac5
# hint: give the point a batch dimension, shape (1, 5), and tape.watch it (it is a constant,
# hint: not a variable).
# hint: tape.batch_jacobian(output, x) has shape (1, 5, 5); [0] drops the batch.
made5 = tfb.AutoregressiveNetwork(params=2, hidden_units=[16, 16], event_shape=[5],
                                  activation="tanh", kernel_initializer="glorot_normal")
x5 = tf.constant(np.random.default_rng(4).normal(size=(1, 5)).astype(np.float32))
with tf.GradientTape() as tape:
    tape.watch(x5)
    out5 = made5(x5)[..., 1]
jac5 = tape.batch_jacobian(out5, x5)[0].numpy()
print("d(output i) / d(input j) is non-zero at:")
print((np.abs(jac5) > 1e-12).astype(int))


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def strictly_lower(jac):
    if jac is None:
        return None  # not answered yet
    jac = np.asarray(jac)
    return jac.shape == (5, 5) and np.allclose(np.triu(jac), 0.0)


def full_below_diagonal(jac):
    if jac is None:
        return None
    return bool(np.all(np.abs(np.asarray(jac)[np.tril_indices(5, -1)]) > 1e-12))


def made_jacobian(net):
    """The Jacobian of net's outputs at a new point, computed here independently."""
    if net is None:
        return None
    x = tf.constant(np.random.default_rng(40).normal(size=(1, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = net(x)[..., 1]
    return tape.batch_jacobian(out, x)[0].numpy()


print(check.that("jac5", lambda: strictly_lower(jac5),
                 "jac5 is 5 x 5 and zero on and above the diagonal"))
print(check.that("jac5", lambda: full_below_diagonal(jac5),
                 "every entry of jac5 below the diagonal is non-zero"))
print(check.that("made5", lambda: strictly_lower(made_jacobian(made5)),
                 "at a new point too, made5's output i depends only on inputs j < i"))

# %% [markdown]
# **3 (timing). Where does IAF pay?** Using `iaf32` from section 3, time `log_prob` of the
# flow's own samples, of a copy of them (`tf.constant(own.numpy())`) and of fresh data points
# (512 points each, $D = 32$), with `timing.measure`. Store the three medians, in seconds, as
# `t_own`, `t_copy` and `t_fresh`. Why is the first much faster? Both calls here run eagerly,
# which is why they are slower than the compiled timings above.

# %% tags=["solution"]
# TOLERANCE: timing
# answer: t_own, t_copy, t_fresh
# hint: iaf32.distribution.sample(512, seed=...) gives the flow's own samples.
# hint: timing.measure(lambda: ..., repeats=3) returns an object with .median in seconds; end
# hint: the lambda with .numpy() so that the work is really done.
# hint: a bijector remembers, for the exact tensor its forward returned, the input it came
# hint: from; which of the three calls can use that memory?
fresh = tf.constant(np.random.default_rng(6).normal(size=(512, D)).astype(np.float32))
own = iaf32.distribution.sample(512, seed=seeding.stateless_seed(7))
own_copy = tf.constant(own.numpy())
t_own = timing.measure(lambda: iaf32.distribution.log_prob(own).numpy(), repeats=3).median
t_copy = timing.measure(lambda: iaf32.distribution.log_prob(own_copy).numpy(), repeats=3).median
t_fresh = timing.measure(lambda: iaf32.distribution.log_prob(fresh).numpy(), repeats=3).median
print(f"own samples: {t_own * 1e3:.1f} ms; a copy of them: {t_copy * 1e3:.1f} ms; "
      f"fresh points: {t_fresh * 1e3:.1f} ms")
# sample() produced `own` through the forward map, so the bijector's cache returns the base
# values for that very tensor and log_prob skips the slow inverse (D sequential passes per
# layer). A copy holds the same numbers but is a different tensor: it pays like fresh points.


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def times_faster(slow, fast):
    if slow is None or fast is None:
        return None  # not answered yet
    return slow > 3 * fast


print(check.that("t_copy", lambda: times_faster(t_copy, t_own),
                 "log_prob of a copy takes more than 3 times as long as of the own samples"))
print(check.that("t_fresh", lambda: times_faster(t_fresh, t_own),
                 "log_prob of fresh points takes more than 3 times as long as of own samples"))

# %% [markdown]
# **4 (explore). Does the density integrate to 1?** A flow's density is exact, so it must
# integrate to 1. Check it for the RealNVP trained on the two moons (`models["two_moons",
# "RealNVP"]`): evaluate its density on a grid over $[-6, 6]^2$ with spacing 0.025 and add up
# density times cell area. Store the result as `total_mass`, and the mass inside the data's
# square $[-3, 3]^2$ as `mass_in_square`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: total_mass, mass_in_square
# hint: np.meshgrid of two np.arange(-6, 6, 0.025) axes (take the cell centres), then stack
# hint: the coordinates into an array of shape (number of points, 2), as float32.
# hint: the flow's log_prob takes such an array; exp turns it into densities.
step = 0.025
axis = np.arange(-6.0, 6.0, step) + step / 2  # cell centres
gx, gy = np.meshgrid(axis, axis)
grid_points = np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)
density = np.exp(models["two_moons", "RealNVP"].log_prob(grid_points).numpy().astype(np.float64))
total_mass = density.sum() * step**2
inside = np.all(np.abs(grid_points) < 3.0, axis=-1)
mass_in_square = density[inside].sum() * step**2
print(f"{len(grid_points):,} grid points; total mass {total_mass:.3f}")
# The mass outside [-3, 3]^2 is small but not zero: the flow's density is positive
# everywhere, so its tails reach beyond the data.

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: a density integrates to 1, and the mass in a square is at most the total.
def most_but_not_all(part, whole):
    if part is None or whole is None:
        return None  # not answered yet
    return 0.9 < part <= whole


print(check.close("total_mass", total_mass, expected=1.0, atol=0.01))
print(check.that("mass_in_square", lambda: most_but_not_all(mass_in_square, total_mass),
                 "most of the mass, and no more than the total, lies in [-3, 3]^2"))

# %% [markdown]
# **5 (challenge). A coupling layer by hand.** Write an affine coupling bijector for 2-D
# points (`forward_min_event_ndims=1`) with fixed functions $s(x_1) = \tanh x_1$ and
# $t(x_1) = x_1^2$: $y_1 = x_1$, $y_2 = x_2 e^{s(x_1)} + t(x_1)$. Store an instance as
# `my_coupling`. The check runs `check_bijector` with `event_ndims=1` and compares the forward
# map with the formula.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: my_coupling
# hint: x[..., 0] and x[..., 1] are the two coordinates of every point; tf.stack([a, b],
# hint: axis=-1) puts them back together.
# hint: the inverse needs only y1, which equals x1; the log-det has one value per point.
class TanhCoupling(tfb.Bijector):
    def __init__(self, name="tanh_coupling"):
        super().__init__(forward_min_event_ndims=1, name=name)

    def _forward(self, x):
        x1, x2 = x[..., 0], x[..., 1]
        return tf.stack([x1, x2 * tf.exp(tf.tanh(x1)) + x1**2], axis=-1)

    def _inverse(self, y):
        y1, y2 = y[..., 0], y[..., 1]
        return tf.stack([y1, (y2 - y1**2) * tf.exp(-tf.tanh(y1))], axis=-1)

    def _forward_log_det_jacobian(self, x):
        return tf.tanh(x[..., 0])  # log of dy2/dx2; dy1/dx1 = 1 adds 0


my_coupling = TanhCoupling()
print("checker passed:",
      check_bijector(my_coupling, np.random.default_rng(5).standard_normal((10, 2)),
                     event_ndims=1).passed)

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
points_ref = np.random.default_rng(50).standard_normal((12, 2)).astype(np.float32)
check.bijector(
    "my_coupling", my_coupling, points_ref, event_ndims=1,
    expected_forward=lambda x: np.stack([x[:, 0], x[:, 1] * np.exp(np.tanh(x[:, 0]))
                                         + x[:, 0] ** 2], axis=-1))

# %% [markdown]
# **Project (optional, no check: several minutes of training).** Depth. Refit RealNVP to
# the checkerboard with 2, 6 and 12 coupling layers (same settings otherwise) and compare
# held-out NLLs and training times. What does depth buy for a density with sharp edges?
