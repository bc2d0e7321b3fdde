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
# # 03 · Bijectors: transforming distributions
#
# A *bijector* is an invertible, differentiable map together with the log of its Jacobian
# determinant. Push samples of a simple distribution through one and you get samples of a new
# distribution; the log-Jacobian tells you its exact density. Normalizing flows (chapter 04)
# are nothing more than long chains of trainable bijectors, so this chapter builds every idea
# they need, and checks each one numerically.
#
# **What you will learn**
#
# 1. Inverse-CDF sampling: how a uniform random number becomes any distribution.
# 2. The change-of-variables formula, in one dimension and in $n$, checked step by step.
# 3. TFP's bijectors: `Shift`, `Scale`, `Exp`, `Chain`, `Invert`, and how shapes and
#    `event_ndims` work; calling a bijector on a distribution or on another bijector.
# 4. Linear maps in 2-D, and the batch and event shapes of transformed distributions.
# 5. How to write your own bijector, find the bugs in a flawed one, check any bijector
#    with `tfpcourse.bijectors.check_bijector`, and see what it does to a density.
# 6. How to train a bijector by maximum likelihood, and what a two-parameter bijector can and
#    cannot represent.
#
# **Prerequisites:** [chapter 02](02_distributions.ipynb) (distributions, sample/batch/event
# shapes).

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

from tfpcourse import check, config, plot, seeding
from tfpcourse.bijectors import check_bijector
from tfpcourse.training import fit_max_likelihood, mean_nll

tfd, tfb = tfp.distributions, tfp.bijectors
cfg = config.get_config()
seeding.seed_everything(0)
seed = seeding.stateless_seed(3)
print(f"Profile: {cfg.profile}")

# %% [markdown]
# ## 1. From uniform to anything: the inverse CDF
#
# Let $F$ be a continuous, strictly increasing cumulative distribution function (CDF). If
# $U \sim \text{Uniform}(0, 1)$, then $X = F^{-1}(U)$ has CDF $F$, because
# $P(X \le x) = P(F^{-1}(U) \le x) = P(U \le F(x)) = F(x)$.
#
# For the exponential distribution with rate $\lambda$, $F(x) = 1 - e^{-\lambda x}$, so
# $F^{-1}(u) = -\log(1 - u)/\lambda$. Its mean is $1/\lambda$ and its variance $1/\lambda^2$:

# %%
# NBVAL_CHECK_OUTPUT
rate = 2.0
u = tfd.Uniform(0.0, 1.0).sample(100_000, seed=seed)
x_exp = -tf.math.log1p(-u) / rate  # log1p(-u) = log(1 - u), accurate for small u
print(f"sample mean     {float(tf.reduce_mean(x_exp)):.4f}   (1/rate   = {1 / rate:.4f})")
variance = float(tf.math.reduce_variance(x_exp))
print(f"sample variance {variance:.4f}   (1/rate^2 = {1 / rate**2:.4f})")
np.testing.assert_allclose(float(tf.reduce_mean(x_exp)), 1 / rate, rtol=0.01)

# %%
# NBVAL_CHECK_OUTPUT
fig = plot.density_1d({"Exponential(rate 2) density": tfd.Exponential(rate)}, (0.0, 3.0),
                      samples=x_exp.numpy(), title="Inverse-CDF samples of an exponential")
plt.show()

# %% [markdown]
# *Figure 1.* Histogram of 100,000 values $-\log(1-u)/2$ with $u$ uniform, and the exponential
# density with rate 2: they agree.
#
# ### A bijector does this for you: `NormalCDF`
#
# `tfb.NormalCDF()` is the standard Normal's CDF $\Phi$ as a bijector from the real line to
# $(0, 1)$. Its *inverse* turns uniform numbers into Normal ones. Its *forward* direction turns
# a Normal number into a uniform one, and the log-probability is carried along by the
# log-determinant of the Jacobian (here simply $\log \Phi'(x)$, the log of the derivative):
#
# $$ \log p_X(x) = \log p_U(\Phi(x)) + \log \Phi'(x). $$
#
# Since $p_U = 1$ on $(0,1)$, the first term is 0, and the second is the Normal log-density.
# At $x = 2.01$ the closed form is $-\tfrac12 \log(2\pi) - 2.01^2/2 = -2.938989$:

# %%
# NBVAL_CHECK_OUTPUT
ncdf = tfb.NormalCDF()
x0 = tf.constant(2.01)
via_bijector = tfd.Uniform(0.0, 1.0).log_prob(ncdf.forward(x0)) + ncdf.forward_log_det_jacobian(
    x0, event_ndims=0
)
direct = tfd.Normal(0.0, 1.0).log_prob(x0)
closed_form = -0.5 * np.log(2 * np.pi) - 2.01**2 / 2
print(f"uniform log-prob + forward log-det: {float(via_bijector):.6f}")
print(f"Normal(0, 1).log_prob(2.01):        {float(direct):.6f}")
print(f"closed form:                        {closed_form:.6f}")
np.testing.assert_allclose([float(via_bijector), float(direct)], closed_form, rtol=1e-6)

# %% [markdown]
# (change-of-variables)=
# ## 2. The change-of-variables formula
#
# ### One dimension
#
# Let $Z$ have density $p_Z$ and let $X = f(Z)$ with $f$ differentiable and strictly
# increasing. The probability that $X$ lands in a small interval $[x, x + dx]$ equals the
# probability that $Z$ lands in the interval that $f$ maps onto it, $[z, z + dz]$ with
# $z = f^{-1}(x)$ and $dz = (f^{-1})'(x)\,dx$. So $p_X(x)\,dx = p_Z(z)\,dz$, and for any
# strictly monotone $f$ (absolute value, for decreasing maps):
#
# $$ p_X(x) = p_Z\big(f^{-1}(x)\big)\,\Big|\frac{d f^{-1}}{dx}(x)\Big|
#    \quad\Longleftrightarrow\quad
#    \log p_X(x) = \log p_Z(z) - \log\big|f'(z)\big|. $$
#
# The second form uses $(f^{-1})'(x) = 1/f'(z)$: the *forward* log-derivative is subtracted.
# Check it with $f(z) = 2z$ on a standard Normal: $X = 2Z$ is $\text{Normal}(0, 2)$, and the
# formula says $\log p_X(x) = \log p_Z(x/2) - \log 2$.

# %%
# NBVAL_CHECK_OUTPUT
scale2 = tfb.Scale(2.0)
base = tfd.Normal(0.0, 1.0)
xs = tf.constant([-3.0, -1.0, 0.0, 0.5, 2.0])
by_formula = base.log_prob(scale2.inverse(xs)) - scale2.forward_log_det_jacobian(
    scale2.inverse(xs), event_ndims=0
)
by_tfp = tfd.TransformedDistribution(base, scale2).log_prob(xs)
known = tfd.Normal(0.0, 2.0).log_prob(xs)
print("formula       :", np.round(by_formula.numpy(), 5))
print("TFP transform :", np.round(by_tfp.numpy(), 5))
print("Normal(0, 2)  :", np.round(known.numpy(), 5))
np.testing.assert_allclose(by_formula, known, rtol=1e-6)
np.testing.assert_allclose(by_tfp, known, rtol=1e-6)

# %% [markdown]
# Stretching space by 2 halves the density: the same probability is spread over twice the
# length. At the centre, $p_X(0) = p_Z(0)/2$:

# %%
# NBVAL_CHECK_OUTPUT
print(f"p_Z(0) = {float(base.prob(0.0)):.5f}, p_X(0) = "
      f"{float(tfd.TransformedDistribution(base, scale2).prob(0.0)):.5f}, "
      f"ratio {float(base.prob(0.0) / tfd.TransformedDistribution(base, scale2).prob(0.0)):.3f}")

# %% [markdown]
# A strictly increasing map also preserves probabilities of "below": $P(X \le f(z)) =
# P(Z \le z)$. So the CDF of $X$ at $f(z)$ equals the CDF of $Z$ at $z$. Check it for
# $f = \exp$, which turns a Normal into a log-normal:

# %%
# NBVAL_CHECK_OUTPUT
log_normal = tfd.TransformedDistribution(base, tfb.Exp())
zs = tf.constant([-1.5, 0.0, 0.7, 2.0])
print("CDF of Z at z      :", np.round(base.cdf(zs).numpy(), 6))
print("CDF of X at exp(z) :", np.round(log_normal.cdf(tf.exp(zs)).numpy(), 6))
np.testing.assert_allclose(base.cdf(zs), log_normal.cdf(tf.exp(zs)), rtol=1e-5)

# %% [markdown]
# ### $n$ dimensions: the Jacobian determinant
#
# In $n$ dimensions the small interval becomes a small box, and a differentiable map sends it
# to a parallelepiped whose volume is the box's volume times $|\det J_f(z)|$, where
# $J_f(z)_{ij} = \partial f_i / \partial z_j$. The formula keeps its form:
#
# $$ \log p_X(x) = \log p_Z(z) - \log\big|\det J_f(z)\big|, \qquad z = f^{-1}(x). $$
#
# For a linear map $f(z) = Lz$ with a lower-triangular $L$, the Jacobian is $L$ itself and its
# determinant is the product of the diagonal. With $Z$ a standard 2-D Normal, $X = LZ$ is
# $\text{Normal}(0, LL^\top)$, so three computations must agree: the formula with the
# triangular determinant, TFP's transformed distribution, and `MultivariateNormalTriL`:

# %%
# NBVAL_CHECK_OUTPUT
L = tf.constant([[1.5, 0.0], [0.8, 0.5]])
lin = tfb.ScaleMatvecTriL(scale_tril=L)
base2 = tfd.MultivariateNormalDiag(loc=[0.0, 0.0])
x2 = tf.constant([[0.3, -0.2], [1.0, 2.0], [-2.0, 0.5]])
log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(L))))
by_formula = base2.log_prob(lin.inverse(x2)) - log_det
by_tfp = tfd.TransformedDistribution(base2, lin).log_prob(x2)
known = tfd.MultivariateNormalTriL(loc=[0.0, 0.0], scale_tril=L).log_prob(x2)
print(f"log|det L| = log(1.5 * 0.5) = {float(log_det):.5f}  (TFP: "
      f"{float(lin.forward_log_det_jacobian(x2[0], event_ndims=1)):.5f})")
print("formula              :", np.round(by_formula.numpy(), 5))
print("TFP transform        :", np.round(by_tfp.numpy(), 5))
print("MultivariateNormalTriL:", np.round(known.numpy(), 5))
np.testing.assert_allclose(by_formula, known, rtol=1e-5)
np.testing.assert_allclose(by_tfp, known, rtol=1e-5)

# %% [markdown]
# For a nonlinear map the Jacobian changes from point to point, and we cannot read off its
# determinant. Automatic differentiation can compute the full Jacobian, though, and that is
# exactly how `tfpcourse.bijectors.check_bijector` verifies a bijector: it compares the
# bijector's own log-det with $\log|\det J|$ from `tf.GradientTape`, checks that
# `inverse(forward(x))` returns $x$, and that the forward and inverse log-dets are negatives
# of each other. For the linear map above:

# %%
# NBVAL_CHECK_OUTPUT
print(check_bijector(lin, x2, event_ndims=1))

# %% [markdown]
# ## 3. Building blocks: Shift, Scale, Exp, Chain
#
# A bijector has a `forward` map, an `inverse` map, and the log-dets of both:
# `forward_log_det_jacobian(x, event_ndims)` is $\log|\det J_f(x)|$ and
# `inverse_log_det_jacobian(y, event_ndims)` is $\log|\det J_{f^{-1}}(y)| = -\log|\det
# J_f(f^{-1}(y))|$.
#
# `tfb.Chain([f, g])` is the composition $f \circ g$: **the last bijector in the list acts
# first**, as in mathematical notation. Calling a bijector on another bijector builds the same
# chain: `tfb.Shift(1.0)(tfb.Scale(2.0))` is `Chain([Shift(1), Scale(2)])`, which maps
# $x \mapsto 2x + 1$.

# %%
# NBVAL_CHECK_OUTPUT
affine = tfb.Chain([tfb.Shift(1.0), tfb.Scale(2.0)])
also_affine = tfb.Shift(1.0)(tfb.Scale(2.0))
other_order = tfb.Chain([tfb.Scale(2.0), tfb.Shift(1.0)])
x3 = tf.constant([0.0, 1.0, 2.0])
print("Chain([Shift(1), Scale(2)])(x):", affine.forward(x3).numpy(), " = 2x + 1")
print("Shift(1)(Scale(2))(x)        :", also_affine.forward(x3).numpy())
print("Chain([Scale(2), Shift(1)])(x):", other_order.forward(x3).numpy(), " = 2(x + 1)")
y3 = tf.constant(affine.forward(x3).numpy())  # a fresh tensor: see the next cell for why
print("round trip inverse(forward(x)):", affine.inverse(y3).numpy())

# %% [markdown]
# ### A cache to know about
#
# TFP bijectors remember each pair they compute: `inverse` of the *very tensor* that `forward`
# just returned gives back the stored input without running the inverse at all. That makes
# sampling followed by `log_prob` cheap, but it also means `b.inverse(b.forward(x))` proves
# nothing about `_inverse`. A bijector whose inverse is deliberately wrong shows it:

# %%
# NBVAL_CHECK_OUTPUT
class WrongInverse(tfb.Bijector):
    def __init__(self):
        super().__init__(forward_min_event_ndims=0, name="wrong_inverse")

    def _forward(self, x):
        return x + 1.0

    def _inverse(self, y):
        return y + 99.0  # wrong on purpose: should be y - 1

    def _forward_log_det_jacobian(self, x):
        return tf.zeros_like(x)


wrong = WrongInverse()
x_pair = tf.constant([1.0, 2.0])
y_pair = wrong.forward(x_pair)
print("inverse of the same tensor (cached):", wrong.inverse(y_pair).numpy())
print("inverse of a fresh copy            :", wrong.inverse(tf.constant(y_pair.numpy())).numpy())

# %% [markdown]
# Tests of an inverse must therefore use a fresh copy of $y$, as we did above;
# `check_bijector` does so for every check.

# %% [markdown]
# ### `event_ndims`: how many dimensions make one event
#
# `Scale(2)` acts on each number separately; its log-det per number is $\log 2$ (the `Shift`
# in our `affine` chain adds 0: it does not stretch space). Asked for the log-det of a
# *vector* event (`event_ndims=1`), a bijector adds up the log-dets of the vector's entries,
# because the Jacobian of an element-wise map is diagonal. The forward and inverse
# log-dets are each other's negatives:

# %%
# NBVAL_CHECK_OUTPUT
v = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # two vectors of length 3
fldj0 = affine.forward_log_det_jacobian(v, event_ndims=0)
fldj1 = affine.forward_log_det_jacobian(v, event_ndims=1)
ildj1 = affine.inverse_log_det_jacobian(affine.forward(v), event_ndims=1)
print(f"event_ndims=0: {fldj0.numpy():.5f} per number (log 2 = {np.log(2):.5f}; broadcasts)")
print(f"event_ndims=1: {float(fldj1):.5f} per vector (3 log 2 = {3 * np.log(2):.5f})")
print(f"inverse, event_ndims=1: {float(ildj1):.5f}")
np.testing.assert_allclose(fldj1, 3 * np.log(2), rtol=1e-6)

# %% [markdown]
# The log-det of `Scale` does not depend on $x$, so TFP returns it once, as a scalar, and lets
# it broadcast. For `Exp`, the derivative is $e^x$ and the log-det is $x$ itself, one value
# per number:

# %%
# NBVAL_CHECK_OUTPUT
exp = tfb.Exp()
print("forward log-det of Exp at x:", exp.forward_log_det_jacobian(x3, event_ndims=0).numpy())
print(check_bijector(exp, np.linspace(-3.0, 3.0, 13)))

# %% [markdown]
# ### `Exp` turns a Normal into a log-normal
#
# If $Z \sim \text{Normal}(\mu, \sigma)$ then $e^Z$ is $\text{LogNormal}(\mu, \sigma)$. TFP has
# both, so we can compare the transformed distribution with the library's log-normal:

# %%
# NBVAL_CHECK_OUTPUT
mu, sigma = 0.3, 0.6
via_exp = tfd.TransformedDistribution(tfd.Normal(mu, sigma), tfb.Exp())
library = tfd.LogNormal(mu, sigma)
points = tf.constant([0.2, 1.0, 1.5, 4.0])
print("TransformedDistribution(Normal, Exp):", np.round(via_exp.log_prob(points).numpy(), 5))
print("tfd.LogNormal                       :", np.round(library.log_prob(points).numpy(), 5))
np.testing.assert_allclose(via_exp.log_prob(points), library.log_prob(points), rtol=1e-5)

# %% [markdown]
# ### Calling a bijector
#
# A bijector can also be *called*, and what the call does depends on its argument. On a
# tensor it is `forward`. On a distribution it returns the `TransformedDistribution` of that
# distribution, so `tfb.Exp()(tfd.Normal(mu, sigma))` is the log-normal above, built in one
# call. On another bijector it returns their composition, a `Chain` in which the called
# bijector acts last, as in $f(g(x))$: `tfb.Exp()(tfb.Scale(2.0))` is
# `Chain([Exp(), Scale(2.0)])`, the map $x \mapsto e^{2x}$. We compare each call with its
# explicit form:

# %%
# NBVAL_CHECK_OUTPUT
called_dist = tfb.Exp()(tfd.Normal(mu, sigma))
explicit_dist = tfd.TransformedDistribution(tfd.Normal(mu, sigma), tfb.Exp())
same_log_prob = np.array_equal(called_dist.log_prob(points).numpy(),
                               explicit_dist.log_prob(points).numpy())
print(f"Exp()(Normal): a {type(called_dist).__name__} of a "
      f"{type(called_dist.distribution).__name__} through {called_dist.bijector.name!r}")
print("  log_prob identical to the explicit TransformedDistribution:", same_log_prob)

composed = tfb.Exp()(tfb.Scale(2.0))
chain = tfb.Chain([tfb.Exp(), tfb.Scale(2.0)])
xc = tf.constant([-1.0, 0.0, 0.5, 1.0])
same_forward = np.array_equal(composed.forward(xc).numpy(), chain.forward(xc).numpy())
same_log_det = np.array_equal(composed.forward_log_det_jacobian(xc, event_ndims=0).numpy(),
                              chain.forward_log_det_jacobian(xc, event_ndims=0).numpy())
print(f"Exp()(Scale(2)): a {type(composed).__name__} of "
      f"{[b.name for b in composed.bijectors]}")
print("  forward and log-det identical to Chain([Exp(), Scale(2)]):", same_forward,
      same_log_det)
np.testing.assert_allclose(composed.forward(xc), np.exp(2.0 * xc.numpy()), rtol=1e-6)
print("  forward(x) = exp(2x):", True)
print("Exp()(x) identical to Exp().forward(x):",
      np.array_equal(tfb.Exp()(xc).numpy(), tfb.Exp().forward(xc).numpy()))
lognormal_2 = tfb.Exp()(tfb.Scale(2.0))(tfd.Normal(0.0, 1.0))
np.testing.assert_allclose(lognormal_2.log_prob(points), tfd.LogNormal(0.0, 2.0).log_prob(points),
                           rtol=1e-5)
print("Exp()(Scale(2))(Normal(0, 1)) has the log_prob of LogNormal(0, 2):", True)
assert isinstance(called_dist, tfd.TransformedDistribution) and same_log_prob
assert isinstance(composed, tfb.Chain) and same_forward and same_log_det

# %% [markdown]
# The call form is shorthand: here it builds the same classes as the explicit constructors,
# with identical numbers. Exercise 4 uses it.

# %% [markdown]
# ## 4. Linear maps in two dimensions
#
# A linear bijector multiplies each 2-D point by a matrix. TFP offers several ways to say
# which matrix, depending on its structure: a diagonal (`ScaleMatvecDiag`), a lower triangle
# (`ScaleMatvecTriL`), or any *linear operator* (`ScaleMatvecLinearOperator`). Linear
# operators (`tf.linalg.LinearOperatorDiag`, `...FullMatrix`, `...LowerTriangular`) know
# their own structure, so determinants and solves cost what the structure allows: a sum of
# logs for diagonal and triangular matrices, a general factorisation for a full one.

# %%
# NBVAL_CHECK_OUTPUT
full = np.array([[0.5, 1.5], [1.5, 0.5]], np.float32)
linear_maps = {
    "ScaleMatvecDiag([1.5, -0.5])": tfb.ScaleMatvecDiag(scale_diag=[1.5, -0.5]),
    "ScaleMatvecTriL([[1, 0], [-1, -1]])": tfb.ScaleMatvecTriL(scale_tril=[[1.0, 0.0],
                                                                           [-1.0, -1.0]]),
    "LinearOperatorDiag([1.5, -0.5])": tfb.ScaleMatvecLinearOperator(
        tf.linalg.LinearOperatorDiag([1.5, -0.5])),
    "LinearOperatorFullMatrix": tfb.ScaleMatvecLinearOperator(
        tf.linalg.LinearOperatorFullMatrix(full)),
    "LinearOperatorLowerTriangular": tfb.ScaleMatvecLinearOperator(
        tf.linalg.LinearOperatorLowerTriangular([[1.0, 0.0], [0.8, 0.5]])),
}
z2 = base2.sample(1000, seed=seed)
for name, bij in linear_maps.items():
    ok = check_bijector(bij, z2[:50], event_ndims=1).passed
    fldj = float(bij.forward_log_det_jacobian(z2[0], event_ndims=1))
    print(f"{name:36s} log|det| = {fldj:+.4f}   checker: {'passed' if ok else 'FAILED'}")
print(f"\nlog|det| of the full matrix by NumPy: {np.log(abs(np.linalg.det(full))):+.4f}")

# %%
# NBVAL_CHECK_OUTPUT
fig, axes = plt.subplots(2, 3, figsize=(10, 6.6), sharex=True, sharey=True)
panels = [("standard Normal samples", z2)] + [(n, b.forward(z2)) for n, b in linear_maps.items()]
for ax, (name, pts) in zip(axes.flat, panels):
    pts = np.asarray(pts)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4)
    ax.set_title(name, fontsize=8)
    ax.set_aspect("equal")
    ax.set_xlim(-6, 6)
    ax.set_ylim(-6, 6)
for ax in axes[-1]:
    ax.set_xlabel("$x_1$")
for ax in axes[:, 0]:
    ax.set_ylabel("$x_2$")
fig.suptitle("1,000 standard Normal points pushed through five linear bijectors")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 2.* The same 1,000 standard Normal points (top left) after each linear map. A
# diagonal matrix stretches along the axes (its $-0.5$ also flips $x_2$, which a symmetric cloud
# hides); triangular and full
# matrices shear and rotate the cloud into a tilted ellipse. The two diagonal panels are
# identical: the bijectors describe the same matrix.
#
# ### Batch and event shapes of transformed distributions
#
# A transformed distribution takes its event shape from the base distribution (and the
# bijector), and its batch shape from both: a *batch of matrices* gives a batch of
# distributions.

# %%
# NBVAL_CHECK_OUTPUT
one = tfd.TransformedDistribution(base2, lin)
trils = tf.stack([L, 2.0 * L, tf.eye(2)])  # three matrices: shape [3, 2, 2]
three = tfd.TransformedDistribution(base2, tfb.ScaleMatvecTriL(scale_tril=trils))
print(f"one matrix   : batch {one.batch_shape}, event {one.event_shape}; "
      f"sample(5) {one.sample(5, seed=seed).shape}; log_prob {one.log_prob(x2[0]).shape}")
print(f"three matrices: batch {three.batch_shape}, event {three.event_shape}; "
      f"sample(5) {three.sample(5, seed=seed).shape}; log_prob {three.log_prob(x2[0]).shape}")
print("log_prob of one point under each:", np.round(three.log_prob(x2[0]).numpy(), 4))
expected = [tfd.MultivariateNormalTriL([0.0, 0.0], scale_tril=m).log_prob(x2[0]) for m in trils]
np.testing.assert_allclose(three.log_prob(x2[0]), expected, rtol=1e-5)

# %% [markdown]
# To give a *scalar* base distribution an event shape, wrap it: `tfd.Sample(tfd.Normal(0, 1),
# sample_shape=2)` is two independent standard Normals as one 2-D event, the same distribution
# as `MultivariateNormalDiag(loc=[0, 0])`. (Older TFP versions took `event_shape=` in
# `TransformedDistribution`; TFP 0.25 does not.)

# %%
# NBVAL_CHECK_OUTPUT
iid = tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=2)
print(f"Sample(Normal, 2): batch {iid.batch_shape}, event {iid.event_shape}")
np.testing.assert_allclose(iid.log_prob(x2), base2.log_prob(x2), rtol=1e-6)
print("same log_prob as MultivariateNormalDiag([0, 0]):", True)

# %% [markdown]
# ## 5. Inverting and a small catalogue
#
# `tfb.Invert(b)` swaps forward and inverse (and their log-dets). `Invert(Exp())` is the
# logarithm; used on a log-normal it gives back a Normal. Two more bijectors from TFP's
# catalogue show what else is on offer:
#
# * `GumbelCDF(loc, scale)`: the CDF of the Gumbel distribution,
#   $F(x) = \exp(-e^{-(x - \mu)/\beta})$, a bijector from the real line to $(0, 1)$. By
#   section 1's argument, its inverse applied to uniform numbers gives Gumbel samples.
# * `Softfloor(temperature)`: a smooth, strictly increasing approximation of the floor
#   function $\lfloor x \rfloor$, which gets sharper as the temperature goes to 0 (it
#   converges to the floor except at the integers, where it takes the midpoint of the step).

# %%
# NBVAL_CHECK_OUTPUT
log_bij = tfb.Invert(tfb.Exp())
print("Invert(Exp).forward(e^2) =", float(log_bij.forward(np.exp(2.0).astype(np.float32))))
back_to_normal = tfd.TransformedDistribution(tfd.LogNormal(0.3, 0.6), log_bij)
zs_n = tf.constant([-1.0, 0.3, 1.5])
np.testing.assert_allclose(back_to_normal.log_prob(zs_n), tfd.Normal(0.3, 0.6).log_prob(zs_n),
                           rtol=1e-5)
print("LogNormal(0.3, 0.6) through Invert(Exp) = Normal(0.3, 0.6):", True)
x_g = tf.constant([-1.0, 1.0, 4.0])
gumbel_cdf_formula = np.exp(-np.exp(-(x_g.numpy() - 1.0) / 2.0))
np.testing.assert_allclose(tfb.GumbelCDF(loc=1.0, scale=2.0).forward(x_g), gumbel_cdf_formula,
                           rtol=1e-6)
print("GumbelCDF(1, 2) matches exp(-exp(-(x - 1) / 2)):", True)
gumbel_via_uniform = tfd.TransformedDistribution(tfd.Uniform(0.0, 1.0),
                                                 tfb.Invert(tfb.GumbelCDF(loc=1.0, scale=2.0)))
gumbel = tfd.Gumbel(loc=1.0, scale=2.0)
gx = tf.constant([-2.0, 0.0, 1.0, 4.0])
print("Uniform through Invert(GumbelCDF):", np.round(gumbel_via_uniform.log_prob(gx).numpy(), 5))
print("tfd.Gumbel                       :", np.round(gumbel.log_prob(gx).numpy(), 5))
np.testing.assert_allclose(gumbel_via_uniform.log_prob(gx), gumbel.log_prob(gx), rtol=1e-5)
gumbel_report = check_bijector(tfb.GumbelCDF(loc=1.0, scale=2.0), np.linspace(-3.0, 6.0, 19))
print(f"GumbelCDF checker: {'passed' if gumbel_report.passed else 'FAILED'}")

# %%
# NBVAL_CHECK_OUTPUT
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
xg = np.linspace(-3, 3, 600).astype(np.float32)
ax1.plot(xg, np.floor(xg), "k--", lw=1, label="floor(x)")
for temperature in (0.5, 0.2, 0.05):
    ax1.plot(xg, tfb.Softfloor(temperature).forward(xg),
             label=f"Softfloor, temperature {temperature}")
ax1.set_xlabel("x")
ax1.set_ylabel("forward(x)")
ax1.set_title("Softfloor: a smooth floor")
ax1.legend(fontsize=7)
for loc, scale in [(0.0, 1.0), (1.0, 2.0)]:
    ax2.plot(xg, tfb.GumbelCDF(loc=loc, scale=scale).forward(xg),
             label=f"GumbelCDF(loc={loc}, scale={scale})")
ax2.set_xlabel("x")
ax2.set_ylabel("forward(x)")
ax2.set_title("GumbelCDF: the real line to (0, 1)")
ax2.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.* Left: `Softfloor` at three temperatures against the true floor (dashed); at
# temperature 0.05 it is almost a staircase, yet still strictly increasing and invertible.
# Right: the Gumbel CDF for two parameter settings, rising from 0 to 1; a larger scale rises
# more slowly.
#
# ### A library bijector that fails the check
#
# Run the checker on `Softfloor` and something unexpected happens: the forward map and its
# log-det agree with automatic differentiation, but the inverse of a fresh copy of
# `forward(x)` does not return $x$, and not by a rounding error. (Because of the cache, the
# literal `inverse(forward(x))` would hide this.) We check in float64 to rule out precision,
# and compute a second, independent inverse by bisection (the forward map is strictly
# increasing, so the root of $f(x) = y$ in an interval is unique):

# %%
# NBVAL_CHECK_OUTPUT
xs_sf = np.linspace(-2.4, 2.4, 25)
for temperature in (0.5, 0.1):
    softfloor = tfb.Softfloor(tf.constant(temperature, tf.float64))
    print(check_bijector(softfloor, xs_sf, rtol=1e-6), end="\n")
    y_sf = softfloor.forward(xs_sf).numpy()
    low, high = xs_sf - 1.0, xs_sf + 1.0  # f(x - 1) < y < f(x + 1), since f is increasing
    for _ in range(60):
        mid = (low + high) / 2
        below = softfloor.forward(mid).numpy() < y_sf
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    tfp_inverse = softfloor.inverse(tf.constant(y_sf)).numpy()
    print(f"  bisection inverse: max |x_back - x| = {np.abs(low - xs_sf).max():.0e}; "
          f"TFP inverse: {np.abs(tfp_inverse - xs_sf).max():.3f}\n")

# %% [markdown]
# The bisection recovers every $x$ to machine precision, so the forward map is a fine
# bijection, and `Softfloor.inverse` in TFP 0.25 computes the wrong function: its error is a
# smooth curve that repeats with period 1, not noise. How large it is depends on the
# temperature, and not monotonically; on a fine grid:

# %%
# NBVAL_CHECK_OUTPUT
fine = np.linspace(-3.0, 3.0, 6001)
for temperature in (2.0, 1.0, 0.5, 0.2, 0.1, 0.05):
    sf = tfb.Softfloor(tf.constant(temperature, tf.float64))
    err = np.abs(sf.inverse(tf.constant(sf.forward(fine).numpy())).numpy() - fine).max()
    print(f"temperature {temperature:4}: largest |inverse(forward(x)) - x| = {err:.3f}")

# %% [markdown]
# The inverse log-det inherits the error (the failed "fldj + ildj" line above). Sampling
# through `Softfloor` uses only the forward map and is unaffected; `log_prob` of a
# distribution transformed by it evaluates the inverse for new points and is wrong by the same
# token (for the distribution's own samples, the cache hides it). This is exactly the kind of
# error a bijector checker exists to catch, and why this course checks every bijector it uses,
# including the library's. (The stored outputs record this behaviour; if a future TFP release
# fixes the inverse, the regression test of this notebook will flag the change, and this
# paragraph should be updated.)

# %% [markdown]
# ## 6. Writing your own bijector
#
# To define a bijector, subclass `tfb.Bijector` and implement `_forward`, `_inverse` and
# `_forward_log_det_jacobian` (TFP derives the inverse log-det from it). We build
#
# $$ f(x) = (a x + b)^3, \qquad f^{-1}(y) = \frac{\operatorname{sign}(y)\,|y|^{1/3} - b}{a},
#    \qquad \log|f'(x)| = \log 3|a| + 2 \log|a x + b|. $$
#
# Three details matter. `forward_min_event_ndims=0` declares that it acts on each number
# separately. The cube root must be taken of $|y|$ with the sign put back, because a negative
# number to the power $1/3$ is NaN in floating point. And the parameters are stored *as they
# are given*: if they are `tf.Variable`s, the bijector keeps the variables, so an optimiser can
# later train them.

# %%
class Cubic(tfb.Bijector):
    """y = (a x + b)^3, element-wise. Invertible when a != 0."""

    def __init__(self, a, b, validate_args=False, name="cubic"):
        # Keep variables as variables (a converted copy would no longer be trainable).
        self.a = a if hasattr(a, "dtype") else tf.constant(a, tf.float32)
        self.b = b if hasattr(b, "dtype") else tf.constant(b, tf.float32)
        super().__init__(forward_min_event_ndims=0, validate_args=validate_args, name=name)

    def _forward(self, x):
        return (self.a * x + self.b) ** 3

    def _inverse(self, y):
        return (tf.sign(y) * tf.abs(y) ** (1.0 / 3.0) - self.b) / self.a

    def _forward_log_det_jacobian(self, x):
        return tf.math.log(3.0 * tf.abs(self.a)) + 2.0 * tf.math.log(tf.abs(self.a * x + self.b))

    def _parameter_control_dependencies(self, is_init):
        # With validate_args=True, check a != 0 with a TensorFlow op, which also runs inside
        # tf.function and after a variable has changed.
        if not self.validate_args:
            return []
        return [tf.debugging.assert_none_equal(self.a, 0.0, message="Cubic needs a != 0")]


# %% [markdown]
# Check it with the checker, at points where $ax + b \neq 0$, for two parameter settings (a
# decreasing one included):

# %%
# NBVAL_CHECK_OUTPUT
pts = np.linspace(-2.0, 2.0, 40)  # avoids a x + b = 0 for both settings below
for a, b in [(1.0, -1.0), (-2.0, 0.4)]:
    print(check_bijector(Cubic(a, b), pts, rtol=1e-3), end="\n\n")

# %% [markdown]
# ### Finding the bugs in a flawed version
#
# A version of this bijector that circulates in tutorials differs from ours in three ways:
# its forward pass ends with `tf.squeeze(...)`; it validates its parameters with Python
# `assert` statements in `__init__`; and it insists that *both* $a$ and $b$ are non-zero.
# Each is a bug. The checker finds the first: squeezing removes axes of length 1, so a column
# of points comes back with a different shape than it went in:

# %%
# NBVAL_CHECK_OUTPUT
class SqueezedCubic(Cubic):
    def _forward(self, x):
        return tf.squeeze((self.a * x + self.b) ** 3)  # the flaw


column = np.linspace(-2.0, 2.0, 5).reshape(5, 1)  # five points, as a column
print(check_bijector(SqueezedCubic(1.0, -1.0), column))

# %% [markdown]
# The second bug: an `assert` in `__init__` checks the parameters once, when the bijector is
# built, and never again after training has changed them. And if the bijector is ever built
# inside a `tf.function` (say, in a training step that constructs the model), the `assert`
# fails outright: it needs a Python `bool`, and a symbolic tensor in a graph has no value
# yet. The cell below shows that second failure with the same kind of `assert`.
# TensorFlow's own assertions (`tf.debugging.assert_*` in `_parameter_control_dependencies`,
# as in our class) run every time the parameters are used, in either mode.

# %%
# NBVAL_CHECK_OUTPUT
@tf.function
def build_with_python_assert(a):
    assert tf.abs(a) >= 1e-5  # what the flawed version does
    return a


try:
    build_with_python_assert(tf.constant(1.0))
except Exception as err:  # show whichever error TensorFlow raises
    print(type(err).__name__)

try:
    Cubic(tf.Variable(0.0), 1.0, validate_args=True)  # checked when built, and on every use
except tf.errors.InvalidArgumentError as err:
    print("our validation:", err.message.splitlines()[0])

# %% [markdown]
# The third is a matter of mathematics: $b = 0$ is perfectly fine ($f(x) = (ax)^3$ is a
# bijection), while the real requirement is $a \neq 0$. There is one more subtlety, which no
# tutorial version handles and which matters in the next section. At $x = -b/a$ the derivative
# $3a(ax+b)^2$ is **zero**, so the log-det is $-\infty$ there, and the inverse map has an
# infinite slope at $y = 0$. The cubic is a bijection, but not a smooth one at that single
# point. The checker reports it:

# %%
# NBVAL_CHECK_OUTPUT
kink_report = check_bijector(Cubic(1.0, 0.0), np.array([-1.0, 0.0, 1.0]))
print(f"non-finite values at x = -b/a (the log-det and the autodiff derivative): "
      f"{kink_report.nonfinite}; passed: {kink_report.passed}")

# %% [markdown]
# ### Pictures of the cubic
#
# Take $a = 1$, $b = -1$: $f(x) = (x - 1)^3$ is flat at $x = 1$, and its inverse
# $f^{-1}(y) = 1 + \operatorname{sign}(y)|y|^{1/3}$ is vertical at $y = 0$. Pushing a standard
# Normal through $f^{-1}$ (the direction that section 7 trains) gives, by the change of
# variables of section 2 with $f$ mapping $x$ back to the base,
#
# $$ p_X(x) = p_Z\big(f(x)\big)\,\big|f'(x)\big| = \varphi\big((x-1)^3\big)\cdot 3(x-1)^2, $$
#
# with $\varphi$ the standard Normal density. We compute it with `TransformedDistribution`
# and by this formula in float64, compare the two on a fine grid, and integrate it. Pushed
# the other way, through $f$ itself, the Normal gets a density with no upper bound at
# $y = 0$, where $f^{-1}$ is vertical; the cell prints it close to 0 too.

# %%
# NBVAL_CHECK_OUTPUT
cubic = Cubic(1.0, -1.0)
cubic_base = tfd.Normal(0.0, 1.0)
pushed = tfd.TransformedDistribution(cubic_base, tfb.Invert(cubic))  # X = f^{-1}(Z)


def cubic_density_by_hand(x, a=1.0, b=-1.0):
    """phi(f(x)) |f'(x)| for f(x) = (a x + b)^3, in float64."""
    u = a * np.asarray(x, np.float64) + b
    return np.exp(-0.5 * u**6) / np.sqrt(2 * np.pi) * 3 * abs(a) * u**2


x_grid3 = np.linspace(-2.0, 4.0, 60_001)
p_tfp = pushed.prob(x_grid3.astype(np.float32)).numpy().astype(np.float64)
p_hand = cubic_density_by_hand(x_grid3)
density_gap = np.abs(p_tfp - p_hand).max()
mass = np.trapezoid(p_tfp, x_grid3)
print(f"largest |TFP density - formula| on 60,001 points below 1e-6: {density_gap < 1e-6}")
print(f"integral of the TFP density over [-2, 4]: {mass:.5f}")
print(f"density at x = 1, where f'(x) = 0: {float(pushed.prob(1.0)):.1f}")
spiky = tfd.TransformedDistribution(cubic_base, cubic)  # Y = f(Z)
y_small = np.array([1e-2, 1e-4, 1e-6], np.float32)
print("density of f(Z) at y = 1e-2, 1e-4, 1e-6:",
      ", ".join(f"{v:.3g}" for v in spiky.prob(y_small).numpy()))
np.testing.assert_allclose(mass, 1.0, atol=1e-4)
assert density_gap < 1e-6

# %%
# NBVAL_CHECK_OUTPUT
x_plot = np.linspace(-2.0, 4.0, 601).astype(np.float32)
cubic_samples = pushed.sample(100_000, seed=seeding.stateless_seed(11)).numpy()
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
ax1.plot(x_plot, cubic.forward(x_plot), label="$f(x) = (x - 1)^3$")
ax1.plot(x_plot, cubic.inverse(tf.constant(x_plot)), label="$f^{-1}(y) = 1 + y^{1/3}$")
ax1.plot(x_plot, x_plot, "k--", lw=1, label="identity")
ax1.set_xlim(-2.0, 4.0)
ax1.set_ylim(-2.0, 4.0)
ax1.set_aspect("equal")
ax1.set_xlabel("input")
ax1.set_ylabel("output")
ax1.set_title("The cubic and its inverse")
ax1.legend(fontsize=8)
ax2.hist(cubic_samples, bins=120, range=(-2.0, 4.0), density=True, color="0.85",
         label="100,000 samples of $f^{-1}(Z)$")
ax2.plot(x_plot, cubic_base.prob(x_plot), label="base: standard Normal")
ax2.plot(x_grid3, p_tfp, label="$f^{-1}(Z)$: TransformedDistribution")
ax2.plot(x_grid3, p_hand, "k:", lw=2, label=r"$f^{-1}(Z)$: $\varphi(f(x))\,|f'(x)|$ by hand")
ax2.set_xlabel("x")
ax2.set_ylabel("density")
ax2.set_title("A Normal pushed through the inverse cubic")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 4.* Left: the cubic $f(x) = (x - 1)^3$, its inverse, and the identity line (dashed);
# each curve is the other's mirror image in that line. $f$ is flat where it crosses zero at
# $x = 1$, and the inverse is vertical there at $y = 0$. Right: the standard Normal base
# density and the density of $f^{-1}(Z)$, from `TransformedDistribution` and from the
# formula (dotted, on top of it), over a histogram of 100,000 pushed samples. The pushed
# density has two lobes, one on each side of $x = 1$, and is exactly zero at $x = 1$, where
# $f'$ vanishes.

# %% [markdown]
# ## 7. Training a bijector by maximum likelihood
#
# Bijectors become models once their parameters are variables. The data: samples from a
# two-component Gaussian mixture with weights $0.45$ and $0.55$, means $2.3$ and $-0.8$, and
# standard deviation $0.4$ each. The model: a standard Normal pushed through
# $g = f^{-1}$, the *inverse* of a cubic with trainable $a$ and $b$. Its density follows from
# the change of variables, with $f$ now mapping data to the base:
#
# $$ \log p(x) = \log \mathcal{N}\big(f(x); 0, 1\big) + \log 3|a| + 2\log|ax + b|. $$
#
# The best possible average negative log-likelihood is the *entropy* of the data
# distribution, $H = -\int p^\star \log p^\star$: any model's *expected* NLL (its cross-entropy
# with the truth) exceeds it by exactly its KL divergence from the truth. On a finite sample
# the average NLL fluctuates around that. We compute $H$ by numerical integration on a fine grid, in
# float64.

# %%
# NBVAL_CHECK_OUTPUT
def gaussian_mixture(dtype=tf.float32):
    """The data distribution: 0.45 N(2.3, 0.4^2) + 0.55 N(-0.8, 0.4^2)."""
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(probs=tf.constant([0.45, 0.55], dtype)),
        components_distribution=tfd.Normal(loc=tf.constant([2.3, -0.8], dtype),
                                           scale=tf.constant([0.4, 0.4], dtype)),
    )


truth = gaussian_mixture()
grid = np.linspace(-8.0, 8.0, 400_001)
dx = grid[1] - grid[0]
p_true = gaussian_mixture(tf.float64).prob(grid).numpy()
entropy = -np.sum(p_true * np.log(np.maximum(p_true, 1e-300))) * dx
print(f"integral of the density: {np.sum(p_true) * dx:.6f}")
print(f"entropy H = {entropy:.5f} nats (the best achievable NLL)")

# %%
# NBVAL_CHECK_OUTPUT
s_train, s_valid, s_test = seeding.split_seed(seeding.stateless_seed(7), 3)
x_train = truth.sample(10_000, seed=s_train).numpy()
x_valid = truth.sample(1000, seed=s_valid).numpy()
x_test = truth.sample(20_000, seed=s_test).numpy()
print(f"train {x_train.shape}, valid {x_valid.shape}, test {x_test.shape}")
print(f"share of training points above 0.75 (the right bump): {np.mean(x_train > 0.75):.4f}")

# %% [markdown]
# The trainable model. Both parameters are plain variables, initialised at $a = 0.25$,
# $b = -0.1$; the bijector holds them, the transformed distribution holds the bijector, so
# `trainable_variables` finds both:

# %%
# NBVAL_CHECK_OUTPUT
a_var, b_var = tf.Variable(0.25, name="a"), tf.Variable(-0.1, name="b")
model = tfd.TransformedDistribution(tfd.Normal(0.0, 1.0), tfb.Invert(Cubic(a_var, b_var)))
print("trainable variables:", [v.name for v in model.trainable_variables])
print(f"NLL before training: train {mean_nll(model, x_train):.4f}, "
      f"valid {mean_nll(model, x_valid):.4f} nats")

# %% [markdown]
# One training step is the pattern of chapter 01 with a new loss, the average negative
# log-likelihood: compute it under a `GradientTape`, take the gradient with respect to the
# variables, let Adam update them. Here are five steps, written out:

# %%
# NBVAL_CHECK_OUTPUT
optimizer = keras.optimizers.Adam(learning_rate=0.01)


@tf.function
def train_step(batch):
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.log_prob(batch))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


for step in range(5):
    print(f"step {step}: NLL {float(train_step(x_train[:256])):.4f}")

# %% [markdown]
# `tfpcourse.training.fit_max_likelihood` runs this same step over shuffled mini-batches for
# many epochs, records the training and validation NLL after each epoch, and keeps the
# variables of the best validation epoch. It runs the course's one training loop,
# `tfpcourse.training.fit`, which the VAE chapters use too. The step is compiled once per
# batch shape: for the full batches of 256 and once more for the smaller last batch. Knowing
# the batch size when it traces lets TFP work out its shapes once, at trace time, instead of
# in every step, which makes a small model's step up to twice as fast (measured in the
# README's benchmarks).

# %%
# TOLERANCE: abs=0.005 -- learned a, b and NLLs in nats; epoch, step and trace counts exact
history = fit_max_likelihood(model, x_train, valid=x_valid, epochs=cfg.pick(full=40, smoke=5),
                             batch_size=256, learning_rate=0.01, seed=0)
test_nll = mean_nll(model, x_test)
print(f"{history.epochs} epochs, {history.steps} steps in {history.seconds:.1f} s "
      f"(traces of the step: {history.traces})")
print(f"learned a = {float(a_var):.4f}, b = {float(b_var):.4f}")
print(f"NLL (best epoch's variables): train {mean_nll(model, x_train):.4f}, "
      f"valid {min(history.valid_nll):.4f}, test {test_nll:.4f} nats; entropy {entropy:.4f}")
x_few = np.array([-1.0, 0.3, 2.5], np.float32)
u_few = float(a_var) * x_few + float(b_var)
formula = (tfd.Normal(0.0, 1.0).log_prob(u_few**3).numpy() + np.log(3 * abs(float(a_var)))
           + 2 * np.log(np.abs(u_few)))
np.testing.assert_allclose(model.log_prob(x_few), formula, rtol=1e-4)
print("model.log_prob matches the formula above at x = -1, 0.3, 2.5:", True)

# %%
# NBVAL_CHECK_OUTPUT
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
epochs = np.arange(1, history.epochs + 1)
ax1.plot(epochs, history.train_nll, label="training (mean over the epoch)")
ax1.plot(epochs, history.valid_nll, label="validation (after the epoch)")
ax1.axhline(entropy, color="k", ls="--", lw=1, label="entropy: the best possible")
ax1.set_xlabel("epoch")
ax1.set_ylabel("NLL (nats per point)")
ax1.set_title("Training the inverted cubic")
ax1.set_ylim(entropy - 0.1, max(history.valid_nll[0], history.train_nll[0]) + 0.1)
ax1.legend(fontsize=8)
plot.density_1d({"true mixture": truth, "learned model": model}, (-3.0, 4.5),
                samples=x_train, ax=ax2, title="Learned density over the true one")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 5.* Left: training and validation NLL per epoch. Both drop within the first two
# epochs and then stay flat, about 0.045 nats above the dashed entropy line: the model has
# reached the best it can do. Right: the learned density over the true mixture and a
# histogram of the training data. The model finds both bumps, but its two lobes peak at the
# same height and are wider and lower than both true bumps (most visibly the heavier left
# one), and its density falls to exactly zero between them.
#
# ### What this two-parameter bijector can represent
#
# In principle a monotone map of a Normal can produce *any* continuous 1-D distribution:
# section 1's argument gives $x = F^{-1}(\Phi(z))$. The inverted cubic is a particular map
# with two parameters, and that is what limits it. Why can it make two bumps at all? Because
# the density is $\mathcal{N}(f(x))\,|f'(x)|$, and $f'$ vanishes at $x_0 = -b/a$: the model's
# density is exactly zero there, splitting its mass in two. But how much mass goes to each
# side is *not* free: for $a > 0$, $x < x_0$ exactly when the base value $f(x)$ is negative,
# which has probability $1/2$ (for $a < 0$ the sides swap, still $1/2$ each). The model must
# put half its mass on each side of $x_0$, whatever its parameters.
#
# The truth has about $0.55$ of its mass left of the learned $x_0$ (which lies between the
# bumps), and the split costs at least a computable amount. The KL divergence cannot increase
# when we only look at which side of $x_0$ a point falls (the *data-processing inequality*),
# so with $w$ the true mass left of $x_0$,
# $\text{KL}(p^\star \,\|\, p_\theta) \ge w \log\frac{w}{0.5} + (1-w)\log\frac{1-w}{0.5}$.
# (The bound depends on where $x_0$ is; it is zero if $x_0$ sits at the true median, but then
# the zero-density point falls inside the left bump.) We also check the model's mass left of
# $x_0$ by integrating its density, and the claimed $(x - x_0)^2$ behaviour near $x_0$:

# %%
# TOLERANCE: abs=0.002 -- x0, masses, KL values in nats of the trained cubic
x0_learned = -float(b_var) / float(a_var)
d = np.array([0.3, 1.0, 2.0], np.float32)
mirror_gap = np.abs(model.prob(x0_learned + d) - model.prob(x0_learned - d)).max()
left_true = float(truth.cdf(x0_learned))
p_model_grid = model.prob(grid.astype(np.float32)).numpy().astype(np.float64)
left_model = float(np.sum(p_model_grid[grid < x0_learned]) * dx)  # by integration
small = np.array([1e-2, 3e-3], np.float32)
near_ratio = model.prob(x0_learned + small).numpy() / small**2
near_theory = 3 * float(a_var) ** 3 / np.sqrt(2 * np.pi)  # 3 a^3 phi(0) from the formula
bound = left_true * np.log(left_true / 0.5) + (1 - left_true) * np.log((1 - left_true) / 0.5)
p_model = p_model_grid
mask = p_true > 1e-300
log_ratio = np.log(p_true[mask]) - np.log(np.maximum(p_model[mask], 1e-300))
kl_grid = np.sum(p_true[mask] * log_ratio) * dx
print(f"zero-density point x0 = -b/a = {x0_learned:.4f}")
print(f"mass left of x0: truth {left_true:.4f}, model {left_model:.4f} (integrated)")
print(f"density / (x - x0)^2 just right of x0: {np.round(near_ratio, 4)}; "
      f"3 a^3 phi(0) = {near_theory:.4f}")
print(f"KL lower bound from the 50/50 split: {bound:.5f} nats")
print(f"KL(truth || model) by integration:   {kl_grid:.5f} nats")
log_ratio_test = (gaussian_mixture(tf.float64).log_prob(x_test.astype(np.float64)).numpy()
                  - model.log_prob(x_test).numpy())
kl_mc, kl_se = log_ratio_test.mean(), log_ratio_test.std() / np.sqrt(len(x_test))
print(f"KL by Monte Carlo on the test points: {kl_mc:.5f} +- {kl_se:.5f} (standard error)")
print(f"test NLL - entropy:                   {test_nll - entropy:.5f} nats (a noisier estimate)")
print(f"model density at x0 +- d, largest difference: {mirror_gap:.1e} (mirror images)")

# %% [markdown]
# The integral and the Monte Carlo estimate agree to within two standard errors, which
# checks both. The split accounts for about an eighth of the gap. The rest comes from the
# *shape* the model is locked into. Because $z \mapsto z^{1/3}$ is an odd function, the model
# $x = x_0 + z^{1/3}/a$ is symmetric about $x_0$: its two lobes are exact mirror images (the
# last line above). Each lobe is half a Normal squeezed through a cube root, not a Gaussian
# bump, and near $x_0$ the density goes to zero like $(x - x_0)^2$ while the truth is small
# but positive there. More flexible flows (chapter 04) remove these limits by stacking many
# trainable bijectors.

# %% [markdown]
# ## Summary
#
# * Inverse-CDF sampling turns uniform numbers into any continuous distribution; bijectors
#   like `NormalCDF` package such maps with their log-derivatives.
# * Change of variables: $\log p_X(x) = \log p_Z(f^{-1}(x)) - \log|\det J_f(f^{-1}(x))|$.
#   Stretching space lowers density; monotone maps preserve CDFs.
# * `Chain` composes right to left; `event_ndims` says how many dimensions form one event,
#   and element-wise log-dets add up over them. Calling a bijector is shorthand: on a
#   distribution it builds the `TransformedDistribution`, on a bijector the `Chain`.
# * Linear bijectors and linear operators give multivariate Normals; batches of matrices give
#   batches of distributions.
# * A custom bijector needs `_forward`, `_inverse` and `_forward_log_det_jacobian`; check it
#   with `check_bijector` (round trip, log-det against autodiff, consistency, shapes). The
#   density it produces, $p_Z(f(x))\,|f'(x)|$ for $f^{-1}(Z)$, matches
#   `TransformedDistribution` and integrates to 1; it vanishes where $f'$ does.
# * Trained by maximum likelihood, an inverted cubic fits two bumps, but this two-parameter
#   map keeps a 50/50 split around its zero-density point and mirror-image lobes: a KL gap
#   we computed and bounded.
#
# **Glossary:** {term}`bijector`, {term}`Jacobian`, {term}`log-det-Jacobian`,
# {term}`change of variables`.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, followed by a *check cell* that tells you whether
# the answer is right and, if not, what differs. In this copy the answer cells hold worked
# solutions; the student version of the notebook (`tfpcourse student`) replaces them by hints
# and answers set to `None`. Fill in an answer cell, run it, then run the check below it.
#
# **1 (warm-up). A log-det by hand.** The softplus function $s(x) = \log(1 + e^x)$ has
# derivative $\sigma(x) = 1/(1 + e^{-x})$, the sigmoid. Compute its log-det, $\log \sigma(x)$,
# at $x = -2, 0, 3$ with NumPy, as a vector `log_det_by_hand`, and compare it with
# `tfb.Softplus().forward_log_det_jacobian`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: log_det_by_hand
# hint: log sigma(x) = -log(1 + e^(-x)); np.log1p(t) computes log(1 + t) accurately.
# hint: the answer has shape (3,), one log-det per point.
# wrong: log_det_by_hand = 1 / (1 + np.exp(-xe))  # the derivative, not its log
# wrong: log_det_by_hand = np.log1p(np.exp(xe))  # softplus itself, not its log-derivative
# wrong: log_det_by_hand = np.log1p(np.exp(-xe))  # the sign flipped
xe = np.array([-2.0, 0.0, 3.0], np.float32)
log_det_by_hand = -np.log1p(np.exp(-xe))  # log sigmoid(x), written stably
by_tfp = tfb.Softplus().forward_log_det_jacobian(xe, event_ndims=0).numpy()
print("by hand:", np.round(log_det_by_hand, 5), "| TFP:", np.round(by_tfp, 5))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: the log of the derivative of tf.math.softplus, by automatic differentiation.
x_ref = tf.constant([-2.0, 0.0, 3.0], tf.float64)
with tf.GradientTape() as tape:
    tape.watch(x_ref)
    softplus_ref = tf.math.softplus(x_ref)
log_det_ref = np.log(tape.gradient(softplus_ref, x_ref).numpy())
print(check.close("log_det_by_hand", log_det_by_hand, expected=log_det_ref, atol=1e-6))

# %% [markdown]
# **2 (formula). Which weights can it learn?** Section 7 showed that an inverted cubic puts
# half its mass on each side of its zero-density point $x_0$, and that a true mass $w$ left
# of $x_0$ costs at least $w \log\frac{w}{0.5} + (1-w)\log\frac{1-w}{0.5}$ nats of KL
# divergence. Compute this bound for mixtures whose left weight $w$ is 0.5, 0.55, 0.7 and 0.9,
# with $x_0$ between the bumps (so that the true mass left of it is the left weight), as a
# vector `kl_bounds`. Which of these mixtures can the model never fit to within 0.05 nats?
# Store their weights, in increasing order, in the list `unfit`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: kl_bounds, unfit
# hint: NumPy works on whole arrays at once: put the four weights in an array w and write
# hint: the formula once.
# hint: the bound is the KL divergence between two coins: one that lands left with
# hint: probability w, and a fair one.
# wrong: kl_bounds = w * np.log(w / 0.5)  # dropped the (1 - w) term
# wrong: unfit = [float(wi) for wi, bound in zip(w, kl_bounds) if bound < 0.05]  # flipped
# wrong: kl_bounds = 0.5 * np.log(0.5 / w) + 0.5 * np.log(0.5 / (1 - w))  # KL the other way
w = np.array([0.5, 0.55, 0.7, 0.9])
kl_bounds = w * np.log(w / 0.5) + (1 - w) * np.log((1 - w) / 0.5)
unfit = [float(wi) for wi, bound in zip(w, kl_bounds) if bound > 0.05]
for wi, bound in zip(w, kl_bounds):
    print(f"left weight {wi:.2f}: KL >= {bound:.4f} nats")
print("never within 0.05 nats:", unfit)

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: TFP's KL divergence between Bernoulli distributions (which side of x0).
weights_ref = np.array([0.5, 0.55, 0.7, 0.9])
bounds_ref = tfd.kl_divergence(tfd.Bernoulli(probs=weights_ref, dtype=tf.float64),
                               tfd.Bernoulli(probs=np.float64(0.5), dtype=tf.float64)).numpy()
print(check.close("kl_bounds", kl_bounds, expected=bounds_ref, atol=1e-6))
print(check.equal("unfit", unfit, [float(v) for v in weights_ref[bounds_ref > 0.05]]))

# %% [markdown]
# **3 (composition). A log-normal from parts.** Build the bijector `lognormal_chain` that maps
# a standard Normal value $z$ to $e^{0.5 z + 1}$, as a `tfb.Chain` of `Exp`, `Shift` and
# `Scale` (in the right order), and the distribution `lognormal_built`, a standard Normal
# transformed by it. It should be $\text{LogNormal}(\mu=1, \sigma=0.5)$: compare its
# `log_prob` at a few points with `tfd.LogNormal`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: lognormal_chain, lognormal_built
# hint: in tfb.Chain([f, g, h]) the last bijector acts first.
# hint: tfd.TransformedDistribution(distribution, bijector) pushes a distribution through a
# hint: bijector.
# wrong: lognormal_chain = tfb.Chain([tfb.Scale(0.5), tfb.Shift(1.0), tfb.Exp()])  # reversed
# wrong: lognormal_chain = tfb.Chain([tfb.Exp(), tfb.Scale(0.5), tfb.Shift(1.0)])  # shift 1st
# wrong: lognormal_built = tfd.TransformedDistribution(tfd.Normal(1.0, 0.5), lognormal_chain)
lognormal_chain = tfb.Chain([tfb.Exp(), tfb.Shift(1.0), tfb.Scale(0.5)])  # exp(0.5 z + 1)
lognormal_built = tfd.TransformedDistribution(tfd.Normal(0.0, 1.0), lognormal_chain)
x_ln = np.array([0.5, 2.0, 5.0], np.float32)
print("built        :", np.round(lognormal_built.log_prob(x_ln).numpy(), 5))
print("tfd.LogNormal:", np.round(tfd.LogNormal(1.0, 0.5).log_prob(x_ln).numpy(), 5))


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def matches_lognormal(dist):
    if dist is None:
        return None  # not answered yet
    x = np.array([0.3, 1.0, 2.7, 8.0], np.float32)
    return np.allclose(dist.log_prob(x), tfd.LogNormal(1.0, 0.5).log_prob(x), rtol=1e-5)


print(check.bijector("lognormal_chain", lognormal_chain, np.linspace(-2.0, 2.0, 9),
                     expected_forward=lambda z: np.exp(0.5 * z + 1.0)))
print(check.that("lognormal_built", lambda: matches_lognormal(lognormal_built),
                 "log_prob agrees with tfd.LogNormal(1, 0.5) at x = 0.3, 1, 2.7 and 8"))

# %% [markdown]
# **4 (call form). The cubic's density by hand.** Build `cubic_dist`, a standard Normal
# pushed through `Cubic(0.5, 0.2)` of section 6, by *calling* the bijector on the
# distribution. Then compute with NumPy, by the change-of-variables formula, its
# log-density at $y = -3, -0.5, 0.5, 2, 8$, as a vector `log_p_by_hand`, and compare it with
# `cubic_dist.log_prob`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: cubic_dist, log_p_by_hand
# hint: bijector(distribution) returns the TransformedDistribution.
# hint: log p(y) = log p_Z(z) - log|f'(z)| with z = f^{-1}(y); the cube root of a negative
# hint: number needs np.sign(y) * np.abs(y) ** (1 / 3).
# hint: log|f'(z)| = log(3 |a|) + 2 log|a z + b|, as in section 6.
# wrong: log_p_by_hand = log_base  # forgot the log-det
# wrong: log_p_by_hand = log_base + log_det  # added the log-det instead of subtracting it
# wrong: log_p_by_hand = tfd.Normal(0.0, 1.0).log_prob(y_ex.astype(np.float32)).numpy()
# wrong: cubic_dist = tfb.Invert(cubic_ex)(tfd.Normal(0.0, 1.0))  # through the inverse
# wrong: cubic_dist = cubic_ex  # the bijector, not the distribution
cubic_ex = Cubic(0.5, 0.2)
cubic_dist = cubic_ex(tfd.Normal(0.0, 1.0))  # a TransformedDistribution
y_ex = np.array([-3.0, -0.5, 0.5, 2.0, 8.0])
z_ex = (np.sign(y_ex) * np.abs(y_ex) ** (1 / 3) - 0.2) / 0.5  # z = f^{-1}(y)
log_base = -0.5 * np.log(2 * np.pi) - z_ex**2 / 2  # log p_Z(z)
log_det = np.log(3 * 0.5) + 2 * np.log(np.abs(0.5 * z_ex + 0.2))  # log|f'(z)|
log_p_by_hand = log_base - log_det
# (TFP calls the class _TransformedDistribution when the bijector, like our Cubic, is not a
# composite tensor; TransformedDistribution is a subclass of it.)
print(f"{type(cubic_dist).__name__} of {cubic_dist.distribution.name} through "
      f"{cubic_dist.bijector.name!r}")
print("by hand:", np.round(log_p_by_hand, 4))
print("TFP    :", np.round(cubic_dist.log_prob(y_ex.astype(np.float32)).numpy(), 4))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: the explicit TransformedDistribution with a freshly built cubic.
reference_cubic = tfd.TransformedDistribution(tfd.Normal(0.0, 1.0), Cubic(0.5, 0.2))
y_ref = np.array([-3.0, -0.5, 0.5, 2.0, 8.0], np.float32)


def same_as_reference(dist):
    if dist is None:
        return None  # not answered yet
    return isinstance(dist, tfd.Distribution) and np.allclose(
        dist.log_prob(y_ref), reference_cubic.log_prob(y_ref), atol=1e-4)


print(check.close("log_p_by_hand", log_p_by_hand, expected=reference_cubic.log_prob(y_ref),
                  atol=1e-4))
print(check.that("cubic_dist", lambda: same_as_reference(cubic_dist),
                 "a distribution: the standard Normal pushed through Cubic(0.5, 0.2)"))

# %% [markdown]
# **5 (challenge). Your own bijector.** Write a bijector class for $y = \sinh(x)$ (inverse
# $\operatorname{asinh}$, derivative $\cosh x$), like `Cubic` in section 6, and store an
# instance of it as `sinh_bijector`. The check runs `check_bijector` on 50 points in
# $[-3, 3]$ and compares the forward map with `np.sinh`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: sinh_bijector
# hint: subclass tfb.Bijector, call super().__init__(forward_min_event_ndims=0, name=...),
# hint: and define _forward, _inverse and _forward_log_det_jacobian.
# hint: TensorFlow has tf.sinh, tf.asinh and tf.cosh; the log-det is the log of the derivative.
# wrong: sinh_bijector = tfb.Invert(Sinh())  # forward and inverse swapped
# wrong: sinh_bijector = type("S", (Sinh,), dict(_inverse=lambda s, y: tf.acosh(y)))()  # acosh
# wrong: sinh_bijector = type("S", (Sinh,), dict(_forward_log_det_jacobian=staticmethod(tf.cosh)))()
class Sinh(tfb.Bijector):
    def __init__(self, name="sinh"):
        super().__init__(forward_min_event_ndims=0, name=name)

    def _forward(self, x):
        return tf.sinh(x)

    def _inverse(self, y):
        return tf.asinh(y)

    def _forward_log_det_jacobian(self, x):
        return tf.math.log(tf.cosh(x))


sinh_bijector = Sinh()
print("checker passed:", check_bijector(sinh_bijector, np.linspace(-3.0, 3.0, 50)).passed)
# log(cosh(x)) overflows for |x| above about 89 in float32. A stable form is
# |x| + log1p(exp(-2|x|)) - log(2): the same value, without the overflow.

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
print(check.bijector("sinh_bijector", sinh_bijector, np.linspace(-3.0, 3.0, 50),
                     expected_forward=np.sinh))
