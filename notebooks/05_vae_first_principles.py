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
# # 05 · The VAE from first principles
#
# A variational autoencoder (VAE) {cite:p}`kingma2013vae` is a latent-variable model of
# images, $p_\theta(x) = \int p_\theta(x \mid z)\,p(z)\,dz$, trained together with a second
# network that guesses, for each image, which codes $z$ could have produced it. This chapter
# builds one from nothing but the definitions: it derives the objective (the ELBO), checks
# every step of the derivation with numbers on a model where the exact answer is known,
# measures why the *reparameterization trick* is needed rather than merely convenient, and
# then writes the encoder, the decoder, the likelihood, the KL term and the training step by
# hand before training the model on MNIST {cite:p}`lecun1998mnist`.
#
# **What you will learn**
#
# 1. The ELBO, derived step by step from the marginal likelihood: where the KL divergence to
#    the true posterior comes from, why the ELBO is a lower bound, and how it splits into a
#    reconstruction term and a KL term to the prior; every step checked on a linear-Gaussian
#    model whose evidence and posterior have closed forms.
# 2. What the encoder, decoder, reparameterized sample, Bernoulli log-likelihood and Gaussian
#    KL look like when written by hand, each checked against TFP.
# 3. How to package them in a `tf.Module` that TensorFlow can train (and the Keras 3 trap that
#    hides its variables), and how to train it with one compiled step traced once.
# 4. Why gradients go through the sample: the variance of the score-function estimator against
#    the reparameterized one, measured on the same VAE and the same batch.
# 5. How a VAE trained on binarised MNIST does: ELBO curves, reconstructions, and samples
#    from the prior.
#
# **Prerequisites:** [chapter 01](01_graphs_logistic_regression.ipynb) (`tf.function` and
# tracing) and [chapter 02](02_distributions.ipynb) (distributions, `Independent`, the KL
# divergence and its Monte Carlo estimate, reparameterized sampling).

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

strategy = device.setup()

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfpcourse import check, config, data, pipelines, plot, seeding, vae
from tfpcourse.distributions import kl_monte_carlo

tfd = tfp.distributions
cfg = config.get_config()
seeding.seed_everything(0)
print(f"Profile: {cfg.profile}")

# %% [markdown]
# ## 1. The ELBO, step by step
#
# ### The model and the problem
#
# A latent-variable model explains an observation $x$ (an image) by an unobserved code $z$:
# first draw $z$ from a *prior* $p(z)$, then draw $x$ from a *likelihood* $p_\theta(x \mid z)$
# whose parameters a neural network (the *decoder*, with weights $\theta$) computes from $z$.
# Training by maximum likelihood needs the *marginal likelihood*, or *evidence*, of each
# image,
#
# $$ p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz , $$
#
# an integral over every possible code. With a neural network inside, it has no closed form,
# and in 16 or more dimensions no grid can approximate it. The *posterior*
# $p_\theta(z \mid x) = p_\theta(x \mid z)\,p(z) / p_\theta(x)$, which says which codes explain
# $x$, is out of reach for the same reason: it divides by $p_\theta(x)$.
#
# ### The derivation
#
# Variational inference replaces the posterior by a distribution $q(z)$ we choose, and
# measures how far apart they are. Four steps lead to the bound.
#
# **Step 1: Bayes' rule, rearranged.** For *every* $z$ (with a positive posterior density),
#
# $$ \log p_\theta(x) = \log p_\theta(x, z) - \log p_\theta(z \mid x),
#    \qquad p_\theta(x, z) = p_\theta(x \mid z)\,p(z). $$
#
# The left side does not depend on $z$, so the right side cannot either, however we pick $z$.
#
# **Step 2: bring in $q$.** Add and subtract $\log q(z)$:
#
# $$ \log p_\theta(x) = \big[\log p_\theta(x, z) - \log q(z)\big]
#    + \big[\log q(z) - \log p_\theta(z \mid x)\big]. $$
#
# **Step 3: average over $z \sim q$.** The left side is a constant, so its average is itself:
#
# $$ \log p_\theta(x)
#    = \underbrace{\mathbb E_{q}\big[\log p_\theta(x, z) - \log q(z)\big]}_{\mathrm{ELBO}(q)}
#    + \underbrace{\mathbb E_{q}\big[\log q(z) - \log p_\theta(z \mid x)\big]}_{
#      \mathrm{KL}(q \,\|\, p_\theta(z \mid x))}. $$
#
# The second term is, by definition, the KL divergence from $q$ to the true posterior
# ([chapter 02](02_distributions.ipynb), section 5).
#
# **Step 4: the bound.** A KL divergence is never negative, so
#
# $$ \mathrm{ELBO}(q) = \log p_\theta(x) - \mathrm{KL}\big(q \,\|\, p_\theta(z \mid x)\big)
#    \le \log p_\theta(x), $$
#
# with equality exactly when $q$ is the posterior. The *evidence lower bound* needs no
# $p_\theta(x)$ and no posterior: only samples from $q$ and the densities $q(z)$, $p(z)$ and
# $p_\theta(x \mid z)$. Maximising it over $q$ pulls $q$ towards the posterior (the evidence
# does not depend on $q$, so raising the ELBO can only shrink the KL). Maximising it over
# $\theta$ raises $\log p_\theta(x) - \mathrm{KL}(q \,\|\, p_\theta(z \mid x))$: usually the
# evidence rises, but the decoder can also gain by reshaping its own posterior towards $q$,
# even at some cost in evidence. This pull towards models whose posterior is easy to
# approximate is a known bias of variational training.
#
# **The decomposition.** Split $\log p_\theta(x, z) = \log p_\theta(x \mid z) + \log p(z)$
# inside the ELBO and group $\log p(z)$ with $\log q(z)$:
#
# $$ \mathrm{ELBO}(q) = \underbrace{\mathbb E_{q}\big[\log p_\theta(x \mid z)\big]}_{
#    \text{reconstruction}}
#    - \underbrace{\mathrm{KL}\big(q(z) \,\|\, p(z)\big)}_{\text{KL to the prior}}. $$
#
# The first term rewards codes that explain $x$ well; the second keeps $q$ close to the prior,
# so that codes drawn from the prior later decode to plausible images. A VAE makes $q$ depend
# on $x$ through a second network, the *encoder* with weights $\phi$: $q_\phi(z \mid x)$,
# one distribution per image from a single forward pass (*amortised* inference), and
# maximises the average ELBO over the training images in $\theta$ and $\phi$ together.
#
# ### Every step, checked on a model with a known answer
#
# Chapter 02 checked the final identity on a one-dimensional model. Here we check each step on
# a model with a two-dimensional code and a three-dimensional observation, where the posterior
# is *correlated*, which matters below: the *linear-Gaussian* model
#
# $$ z \sim \mathcal N(0, I_2), \qquad x \mid z \sim \mathcal N(Wz + b,\ s^2 I_3). $$
#
# Everything about it is Gaussian and known in closed form:
#
# * evidence: $p(x) = \mathcal N(x;\ b,\ WW^\top + s^2 I)$, since $x$ is a linear function of
#   $z$ plus independent noise;
# * posterior: $p(z \mid x) = \mathcal N(m, \Lambda^{-1})$ with precision
#   $\Lambda = I + W^\top W / s^2$ and mean $m = \Lambda^{-1} W^\top (x - b)/s^2$.
#
# We work in float64 so that identities hold to about 12 digits.

# %%
# NBVAL_CHECK_OUTPUT
W = np.array([[1.0, 0.6], [0.8, 1.0], [-0.4, 0.3]])
b = np.array([0.2, -0.1, 0.4])
s = 0.5
x_obs = np.array([1.0, -0.5, 0.8])


def mvn(mean, cov):
    """A float64 multivariate Normal with the given mean and covariance matrix."""
    return tfd.MultivariateNormalTriL(loc=mean, scale_tril=np.linalg.cholesky(cov))


prior_z = mvn(np.zeros(2), np.eye(2))
evidence = mvn(b, W @ W.T + s**2 * np.eye(3))
precision = np.eye(2) + W.T @ W / s**2
post_cov = np.linalg.inv(precision)
post_mean = post_cov @ W.T @ (x_obs - b) / s**2
posterior = mvn(post_mean, post_cov)


def log_likelihood(z):
    """log p(x_obs | z) for a batch of codes z of shape (n, 2)."""
    return tfd.MultivariateNormalDiag(
        loc=tf.linalg.matvec(W, z) + b, scale_diag=s * np.ones(3)
    ).log_prob(x_obs)


log_px = float(evidence.log_prob(x_obs))
print(f"log p(x) = {log_px:.6f}")
print("posterior mean:", np.round(post_mean, 4))
print("posterior correlation:",
      round(post_cov[0, 1] / np.sqrt(post_cov[0, 0] * post_cov[1, 1]), 4))

# %% [markdown]
# **Step 1** says that $\log p(z) + \log p(x \mid z) - \log p(z \mid x)$ is the same number,
# $\log p(x)$, at every $z$. Try five arbitrary codes, including absurd ones far from the
# posterior:

# %%
# NBVAL_CHECK_OUTPUT
z_any = np.array([[0.0, 0.0], [1.0, -1.0], [-3.0, 2.5], [10.0, 10.0], post_mean])
step1 = prior_z.log_prob(z_any) + log_likelihood(z_any) - posterior.log_prob(z_any)
print("log p(z) + log p(x|z) - log p(z|x):", np.round(step1.numpy(), 6))
print("every value equals log p(x) to 1e-9:",
      bool(np.max(np.abs(step1.numpy() - log_px)) < 1e-9))
np.testing.assert_allclose(step1, log_px, rtol=0, atol=1e-9)

# %% [markdown]
# **Steps 2 to 4.** For any $q$, averaging the first bracket over draws from $q$ estimates the
# ELBO, and adding $\mathrm{KL}(q \,\|\, p(z \mid x))$, which TFP computes exactly for two
# Gaussians, must give back $\log p(x)$. We take $q = \mathcal N\big((0.5, 0.5),\
# 0.3^2 I\big)$, a deliberately poor guess, and 200,000 draws:

# %%
# NBVAL_CHECK_OUTPUT
q_guess = mvn(np.array([0.5, 0.5]), 0.3**2 * np.eye(2))
z_q = q_guess.sample(200_000, seed=seeding.stateless_seed(1))
terms = (prior_z.log_prob(z_q) + log_likelihood(z_q) - q_guess.log_prob(z_q)).numpy()
elbo_mc, elbo_se = terms.mean(), terms.std(ddof=1) / np.sqrt(terms.size)
kl_to_post = float(tfd.kl_divergence(q_guess, posterior))
print(f"ELBO (Monte Carlo)     : {elbo_mc:.4f} ± {elbo_se:.4f}")
print(f"KL(q || posterior)     : {kl_to_post:.4f}")
print(f"ELBO + KL              : {elbo_mc + kl_to_post:.4f}")
print(f"log p(x)               : {log_px:.4f}")
print(f"difference in standard errors: {abs(elbo_mc + kl_to_post - log_px) / elbo_se:.2f}")
assert abs(elbo_mc + kl_to_post - log_px) < 4 * elbo_se

# %% [markdown]
# **The decomposition.** For a Gaussian $q = \mathcal N(\mu_q, C_q)$ the reconstruction term
# has a closed form too: $x - Wz - b$ has mean $x - W\mu_q - b$ and covariance
# $W C_q W^\top$ under $q$, so
#
# $$ \mathbb E_q\big[\log p(x \mid z)\big] = -\tfrac{3}{2}\log(2\pi s^2)
#    - \frac{\lVert x - W\mu_q - b\rVert^2 + \operatorname{tr}(W C_q W^\top)}{2s^2}. $$
#
# With it, the ELBO is reconstruction minus `tfd.kl_divergence(q, prior)`, exactly, and it must
# equal the Monte Carlo estimate of the previous cell:

# %%
# NBVAL_CHECK_OUTPUT
def elbo_closed_form(q):
    """(ELBO, reconstruction term), both exact, for a Gaussian q (or a batch of them)."""
    mean_q, cov_q = q.mean().numpy(), q.covariance().numpy()
    residual = x_obs - mean_q @ W.T - b
    trace = np.einsum("ij,...jk,ik->...", W, cov_q, W)  # tr(W C W^T)
    recon = (-1.5 * np.log(2 * np.pi * s**2)
             - (np.sum(residual**2, axis=-1) + trace) / (2 * s**2))
    elbo = recon - tfd.kl_divergence(q, prior_z).numpy()
    return elbo[()], recon[()]  # [()] turns 0-d arrays into plain numbers


elbo_exact, recon_exact = elbo_closed_form(q_guess)
print(f"reconstruction {recon_exact:.4f} - KL to prior "
      f"{float(tfd.kl_divergence(q_guess, prior_z)):.4f} = ELBO {elbo_exact:.4f}")
print(f"Monte Carlo ELBO {elbo_mc:.4f} ± {elbo_se:.4f}: "
      f"{abs(elbo_mc - elbo_exact) / elbo_se:.2f} standard errors away")
np.testing.assert_allclose(elbo_exact, log_px - kl_to_post, rtol=0, atol=1e-9)
assert abs(elbo_mc - elbo_exact) < 4 * elbo_se

# %% [markdown]
# ### Which $q$ closes the gap?
#
# The gap $\log p(x) - \mathrm{ELBO}(q)$ is $\mathrm{KL}(q \,\|\, p(z \mid x))$, and it is zero
# only for the posterior itself. A VAE's encoder outputs a *diagonal* Gaussian, and this
# posterior is correlated, so no diagonal $q$ can close the gap. The best diagonal Gaussian
# (the one with the smallest $\mathrm{KL}(q \,\|\, p)$ to a Gaussian $p$) has $p$'s mean and
# variances $1/\Lambda_{jj}$, the inverses of the diagonal of the precision matrix. These are
# *smaller* than the posterior's own marginal variances $(\Lambda^{-1})_{jj}$: the
# mean-field approximation is over-confident. In two dimensions its gap works out to
# $-\tfrac12\log(1 - \rho^2)$, where $\rho$ is the posterior correlation: zero for an
# uncorrelated posterior, unbounded as $|\rho| \to 1$. We compare four choices of $q$:

# %%
# NBVAL_CHECK_OUTPUT
best_diag_var = 1.0 / np.diag(precision)
q_choices = {
    "the prior N(0, I)": prior_z,
    "diagonal, marginal variances": mvn(post_mean, np.diag(np.diag(post_cov))),
    "diagonal, variances 1/Lambda_jj": mvn(post_mean, np.diag(best_diag_var)),
    "the exact posterior": posterior,
}
print(f"{'q':32s} {'ELBO':>10s} {'log p(x) - ELBO':>16s} {'KL(q || post)':>14s}")
gaps = {}
for name, q in q_choices.items():
    elbo_q, _ = elbo_closed_form(q)
    gaps[name] = log_px - elbo_q
    kl_q = float(tfd.kl_divergence(q, posterior))
    print(f"{name:32s} {elbo_q:10.5f} {abs(gaps[name]):16.5f} {abs(kl_q):14.5f}")
    assert elbo_q <= log_px + 1e-9
    np.testing.assert_allclose(gaps[name], kl_q, rtol=0, atol=1e-9)
print("log p(x)", f"{log_px:.5f}")
print("marginal variances", np.round(np.diag(post_cov), 4), "> 1/Lambda_jj",
      np.round(best_diag_var, 4))
rho = post_cov[0, 1] / np.sqrt(post_cov[0, 0] * post_cov[1, 1])
print(f"-1/2 log(1 - rho^2) = {-0.5 * np.log(1 - rho**2):.5f}")
assert abs(gaps["the exact posterior"]) < 1e-9 and np.all(best_diag_var < np.diag(post_cov))
np.testing.assert_allclose(gaps["diagonal, variances 1/Lambda_jj"], -0.5 * np.log(1 - rho**2))

# %% [markdown]
# Every ELBO is below $\log p(x)$, every gap equals the KL to the posterior to 9 decimals, and
# only the exact posterior has no gap. To check that the variances $1/\Lambda_{jj}$ are the
# best diagonal choice, perturb that $q$ a little, one coordinate at a time: its mean up and
# down along each axis, and each variance up and down by 20%. Every perturbation must widen
# the gap:

# %%
# NBVAL_CHECK_OUTPUT
best_gap = gaps["diagonal, variances 1/Lambda_jj"]
perturbed = []
for j in range(2):
    for step in (-0.05, 0.05):
        shift = np.zeros(2)
        shift[j] = step
        var = best_diag_var.copy()
        var[j] *= 1 + 4 * step
        for q in (mvn(post_mean + shift, np.diag(best_diag_var)), mvn(post_mean, np.diag(var))):
            perturbed.append(log_px - elbo_closed_form(q)[0])
print(f"{len(perturbed)} perturbations, smallest gap {min(perturbed):.5f} "
      f"vs best diagonal {best_gap:.5f}")
print("every perturbation widens the gap:", min(perturbed) > best_gap)
assert min(perturbed) > best_gap

# %% [markdown]
# Figure 1 slides $q$'s mean along the line from the prior's mean ($t = 0$) through the
# posterior mean ($t = 1$), for a $q$ with the posterior's full covariance and for the best
# diagonal one.

# %%
# NBVAL_CHECK_OUTPUT
t_grid = np.linspace(-0.5, 2.5, 61)
curves = {"full covariance": post_cov, "diagonal (1/Lambda_jj)": np.diag(best_diag_var)}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.axhline(log_px, color="k", lw=1, ls="--", label="log p(x)")
for label, cov in curves.items():
    elbos, _ = elbo_closed_form(mvn(t_grid[:, None] * post_mean, cov))  # a batch of 61 q's
    ax1.plot(t_grid, elbos, label=f"ELBO, q with {label}")
    ax2.plot(t_grid, log_px - elbos, label=f"q with {label}")
ax1.set_ylabel("nats")
ax1.set_title("ELBO and log p(x)", fontsize=10)
ax2.set_ylabel("log p(x) - ELBO = KL(q || posterior) (nats)")
ax2.set_ylim(bottom=0)
ax2.set_title("The gap", fontsize=10)
for ax in (ax1, ax2):
    ax.set_xlabel("t  (mean of q = t * posterior mean)")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 1.* Left: the ELBO of the linear-Gaussian model for a family of $q$ whose mean
# moves along a line through the posterior mean ($t = 1$, grey line), with the posterior's
# full covariance (blue) or the best diagonal covariance (orange); the dashed line is
# $\log p(x)$. Right: the gap between them, which is $\mathrm{KL}(q \,\|\, p(z \mid x))$.
# Both curves are best at $t = 1$, but only the full-covariance $q$ reaches $\log p(x)$; the
# diagonal one stays below it by the gap printed above. A VAE with a diagonal encoder pays
# such a gap on every image whose posterior is correlated.

# %% [markdown]
# ## 2. The data and its binarisation
#
# The VAE's likelihood is a Bernoulli per pixel, which needs binary images, while MNIST's pixels
# are grey levels from 0 to 255. This chapter uses:
#
# * **training: dynamic binarisation.** Every time an image is seen (every epoch), each pixel
#   is redrawn as 1 with probability intensity/255. The model sees a fresh binary version of
#   each digit every epoch, a kind of data augmentation;
# * **test: static binarisation with a fixed seed.** Each test pixel is drawn once (seed 2),
#   so the test images are the same binary images after every epoch and the test ELBOs of
#   different epochs are comparable.
#
# Results in papers depend on this choice (and on the test set's draw), which is why it has to
# be stated. `tfpcourse.pipelines.image_dataset` does both.

# %%
# NBVAL_CHECK_OUTPUT
mnist = data.mnist()
print("train:", mnist.train.images.shape, mnist.train.images.dtype,
      "| test:", mnist.test.images.shape)

BATCH = 128
train_ds = pipelines.image_dataset(
    mnist.train.images, batch_size=BATCH, shuffle=True, seed=1, binarize="dynamic",
    subset=cfg.pick(full=None, smoke=2048),
)
test_ds = pipelines.image_dataset(
    mnist.test.images, batch_size=500, binarize="static", seed=2,
    subset=cfg.pick(full=None, smoke=500),
)
print("a training batch:", next(iter(train_ds)).shape, next(iter(train_ds)).dtype.name)

# %% [markdown]
# Eight test digits, binarised both ways. A dynamic pipeline gives a new draw on each pass; a
# static one repeats itself. Either way a pixel's average value over draws is its intensity,
# so the binary images keep the grey-level image's *expected* ink:

# %%
# NBVAL_CHECK_OUTPUT
few = mnist.test.images[:8]
dynamic_few = pipelines.image_dataset(few, batch_size=8, binarize="dynamic", seed=3)
static_few = pipelines.image_dataset(few, batch_size=8, binarize="static", seed=2)
dyn_1, dyn_2 = (next(iter(dynamic_few)).numpy() for _ in range(2))
stat_1, stat_2 = (next(iter(static_few)).numpy() for _ in range(2))
print("pixels that differ between two passes, dynamic:", int((dyn_1 != dyn_2).sum()),
      "of", dyn_1.size, "| static:", int((stat_1 != stat_2).sum()))
print(f"mean intensity / 255: {few.mean() / 255:.3f} | mean of a dynamic draw: "
      f"{dyn_1.mean():.3f} | of the static draw: {stat_1.mean():.3f}")
print("the static draw is the test set's first 8 images (same seed):",
      bool(np.array_equal(stat_1, next(iter(test_ds))[:8].numpy())))

# %%
# NBVAL_CHECK_OUTPUT
fig = plot.image_grid(
    np.concatenate([few[..., None] / 255.0, dyn_1, dyn_2, stat_1]), ncols=8, size=0.9,
    title="rows: grey levels, dynamic draw 1, dynamic draw 2, static draw",
)
plt.show()

# %% [markdown]
# *Figure 2.* Eight MNIST test digits (columns). Row 1: the grey-level images. Rows 2 and 3:
# two dynamic binarisations, as the training pipeline makes them on two different epochs; they
# differ at the soft edges of the strokes. Row 4: the static binarisation of the test set
# (the same seed, 2), the same on every pass.

# %% [markdown]
# ## 3. The parts of a VAE, by hand
#
# ### Encoder and decoder
#
# Both networks are small Keras 3 MLPs with one hidden layer of 512 ReLU units, and the code
# has 16 dimensions:
#
# * the **encoder** maps a $28 \times 28$ image (flattened to 784 numbers) to $2 \times 16$
#   outputs: the means $\mu$ of $q_\phi(z \mid x)$ and 16 unconstrained numbers that become
#   its standard deviations $\sigma$;
# * the **decoder** maps a code $z$ to 784 *logits*, one per pixel, reshaped to
#   $28 \times 28 \times 1$.
#
# (A 2-dimensional code would allow pictures of the latent space, which chapters 06 and 07
# draw; it reconstructs digits much worse.)

# %%
# NBVAL_CHECK_OUTPUT
LATENT, HIDDEN = 16, 512


def make_encoder(latent_dim=LATENT, hidden=HIDDEN):
    """784 pixels -> hidden ReLU units -> 2 * latent_dim numbers (means, raw scales)."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(2 * latent_dim),
    ])


def make_decoder(latent_dim=LATENT, hidden=HIDDEN):
    """latent_dim numbers -> hidden ReLU units -> 784 logits, shaped as an image."""
    return keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(28 * 28),
        keras.layers.Reshape((28, 28, 1)),
    ])


encoder_net, decoder_net = make_encoder(), make_decoder()
print(f"encoder parameters: {encoder_net.count_params():,} "
      f"= (784 x 512 + 512) + (512 x 32 + 32)")
print(f"decoder parameters: {decoder_net.count_params():,} "
      f"= (16 x 512 + 512) + (512 x 784 + 784)")
assert encoder_net.count_params() == 784 * 512 + 512 + 512 * 32 + 32
assert decoder_net.count_params() == 16 * 512 + 512 + 512 * 784 + 784

# %% [markdown]
# The encoder's second half must become positive standard deviations. We use
# $\sigma = \mathrm{softplus}(r) + 10^{-5}$, with $\mathrm{softplus}(r) = \log(1 + e^r)$: it
# grows only linearly for large $r$ (an exponential would overflow after a bad step), and the
# small floor keeps $\log\sigma$ finite.

# %%
# NBVAL_CHECK_OUTPUT
def posterior_params(encoder, x):
    """Means and standard deviations of q(z | x), each of shape (batch, latent)."""
    mu, raw = tf.split(encoder(x), 2, axis=-1)
    return mu, tf.nn.softplus(raw) + 1e-5


x_few = tf.constant(stat_1)  # the eight statically binarised test digits
mu_few, sigma_few = posterior_params(encoder_net, x_few)
print("mu:", mu_few.shape, "| sigma:", sigma_few.shape,
      "| all sigma > 0:", bool(tf.reduce_all(sigma_few > 0)))

# %% [markdown]
# ### The reparameterized sample
#
# The ELBO's reconstruction term is an average over $z \sim q_\phi(z \mid x)$, and we will
# differentiate it with respect to $\phi$. So we draw $z$ as a differentiable function of
# $\phi$ and of noise that does not depend on $\phi$:
#
# $$ z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), $$
#
# so that $\partial z / \partial \mu = 1$ and $\partial z / \partial \sigma = \varepsilon$
# (elementwise). Section 5 measures what happens without this trick. TFP's `Normal` samples
# in exactly this way, so with the same stateless seed it returns the same numbers.
# (`MultivariateNormalDiag` draws the same noise values but assigns them to the coordinates in
# another order, so its draws are equally valid but not identical.)

# %%
# NBVAL_CHECK_OUTPUT
def reparameterized_sample(mu, sigma, seed):
    """z = mu + sigma * eps, eps ~ N(0, I) drawn with a stateless seed."""
    eps = tf.random.stateless_normal(tf.shape(mu), seed=seed)
    return mu + sigma * eps


seed_z = seeding.stateless_seed(4)
z_hand = reparameterized_sample(mu_few, sigma_few, seed_z)
z_normal = tfd.Normal(mu_few, sigma_few).sample(seed=seed_z)
eps_mvn = tfd.MultivariateNormalDiag(tf.zeros_like(mu_few)).sample(seed=seed_z)
eps_hand = tf.random.stateless_normal(tf.shape(mu_few), seed=seed_z)
print("same draws as tfd.Normal(mu, sigma).sample:",
      bool(np.allclose(z_hand, z_normal, rtol=1e-6, atol=1e-6)))
print("MultivariateNormalDiag noise: same order", bool(np.array_equal(eps_mvn, eps_hand)),
      "| same values", bool(np.array_equal(np.sort(eps_mvn, axis=None),
                                           np.sort(eps_hand, axis=None))))
assert np.allclose(z_hand, z_normal, rtol=1e-6, atol=1e-6)

mu_v, sigma_v = tf.Variable([0.5, -1.0]), tf.Variable([0.3, 2.0])
with tf.GradientTape(persistent=True) as tape:
    z_v = reparameterized_sample(mu_v, sigma_v, seed_z)
eps_v = tf.random.stateless_normal([2], seed=seed_z)
print("dz/dmu   :", tape.jacobian(z_v, mu_v).numpy().diagonal())
print("dz/dsigma:", np.round(tape.jacobian(z_v, sigma_v).numpy().diagonal(), 5),
      "= eps:", np.round(eps_v.numpy(), 5))

# %% [markdown]
# ### The Bernoulli log-likelihood, from logits
#
# Given $z$, each pixel $x_i \in \{0, 1\}$ is a Bernoulli with probability
# $\mathrm{sigm}(\ell_i) = 1/(1 + e^{-\ell_i})$ of being 1, where $\ell_i$ is the decoder's
# logit (we write $\mathrm{sigm}$ for the logistic sigmoid, to keep $\sigma$ for the encoder's
# standard deviations).
# Pixels are independent given $z$, so the image's log-likelihood is a sum over its 784
# pixels. Using $\log\mathrm{sigm}(\ell) = \ell - \mathrm{softplus}(\ell)$ and
# $\log(1 - \mathrm{sigm}(\ell)) = -\mathrm{softplus}(\ell)$, each term simplifies:
#
# $$ \log p(x \mid z) = \sum_{i=1}^{784} \Big[x_i \log\mathrm{sigm}(\ell_i)
#    + (1 - x_i)\log\big(1 - \mathrm{sigm}(\ell_i)\big)\Big]
#    = \sum_{i=1}^{784} \big[x_i \ell_i - \mathrm{softplus}(\ell_i)\big]. $$
#
# The right-hand form never computes $\mathrm{sigm}(\ell)$, which in float32 rounds to
# exactly 1 once $\ell$ is above about 17 (and then $\log(1 - \mathrm{sigm}) = \log 0 =
# -\infty$). Check it on tiny inputs first, including extreme logits:

# %%
# NBVAL_CHECK_OUTPUT
def bernoulli_log_likelihood(x, logits):
    """log p(x | logits) summed over the pixels of each image: shape (batch,)."""
    per_pixel = x * logits - tf.nn.softplus(logits)
    return tf.reduce_sum(per_pixel, axis=[1, 2, 3])


logit_cases = tf.constant([-30.0, -2.0, 0.0, 2.0, 30.0])
for pixel in (0.0, 1.0):
    x_case = tf.fill(logit_cases.shape, pixel)
    naive = (x_case * tf.math.log(tf.sigmoid(logit_cases))
             + (1 - x_case) * tf.math.log(1 - tf.sigmoid(logit_cases)))
    stable = x_case * logit_cases - tf.nn.softplus(logit_cases)
    library = tfd.Bernoulli(logits=logit_cases).log_prob(x_case)
    print(f"x = {pixel:.0f}: naive {np.round(naive.numpy(), 4) + 0.0}")
    print(f"       stable {np.round(stable.numpy(), 4) + 0.0}")
    print(f"          TFP {np.round(library.numpy(), 4) + 0.0}")
    np.testing.assert_allclose(stable, library, rtol=1e-6, atol=1e-6)
logit_grid = np.arange(17.5, 30.0, 0.01, dtype=np.float32)
print("float32 sigmoid(l) is exactly 1.0 for every l from 17.5 to 30:",
      bool(np.all(tf.sigmoid(logit_grid).numpy() == 1.0)))

# %% [markdown]
# The naive formula fails twice. Where the probability of the observed pixel is tiny but not
# zero (a confident, *wrong* decoder) it returns $-\infty$. Where the decoder is confidently
# *right* ($x = 1$, $\ell = 30$) it returns `nan`: the unused term is
# $0 \cdot \log 0 = 0 \cdot (-\infty)$, which IEEE arithmetic defines as `nan`, so a good model
# would get a `nan` loss. Either way, training would stop making sense.
#
# Now the whole-image version on the eight digits, with the decoder's logits at random codes,
# against TFP's Bernoulli summed over pixels and against `Independent(Bernoulli, 3)`
# (chapter 02):

# %%
# NBVAL_CHECK_OUTPUT
logits_few = decoder_net(z_hand)
ll_hand = bernoulli_log_likelihood(x_few, logits_few)
ll_sum = tf.reduce_sum(tfd.Bernoulli(logits=logits_few).log_prob(x_few), axis=[1, 2, 3])
ll_indep = tfd.Independent(tfd.Bernoulli(logits=logits_few), 3).log_prob(x_few)
print("logits:", logits_few.shape, "| log p(x|z):", ll_hand.shape)
print("by hand           :", np.round(ll_hand.numpy(), 1))
print("agrees with the per-pixel sum and Independent:",
      bool(np.allclose(ll_hand, ll_sum, rtol=1e-5)),
      bool(np.allclose(ll_hand, ll_indep, rtol=1e-5)))
assert np.allclose(ll_hand, ll_sum, rtol=1e-5) and np.allclose(ll_hand, ll_indep, rtol=1e-5)

# %% [markdown]
# An untrained decoder gives each image a log-likelihood near $784 \log\tfrac12 \approx
# -543.4$ nats (`784 * np.log(0.5)`): with logits near zero every pixel is a coin flip.
#
# ### The KL term, in closed form
#
# For $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ and the prior $\mathcal N(0, I)$ the KL
# divergence has a closed form (chapter 02 derives the one-dimensional case; the coordinates
# are independent, so the terms add):
#
# $$ \mathrm{KL}\big(q \,\|\, \mathcal N(0, I)\big)
#    = \tfrac12 \sum_{j=1}^{16} \big(\mu_j^2 + \sigma_j^2 - 1 - 2\log\sigma_j\big). $$
#
# We check it on the encoder's outputs for the eight digits against `tfd.kl_divergence`, and
# for the first digit against a Monte Carlo estimate (`kl_monte_carlo`, chapter 02):

# %%
# NBVAL_CHECK_OUTPUT
def gaussian_kl(mu, sigma):
    """KL(N(mu, diag sigma^2) || N(0, I)) per example: shape (batch,)."""
    return 0.5 * tf.reduce_sum(mu**2 + sigma**2 - 1.0 - 2.0 * tf.math.log(sigma), axis=-1)


prior = tfd.MultivariateNormalDiag(loc=tf.zeros(LATENT), scale_diag=tf.ones(LATENT))
kl_hand = gaussian_kl(mu_few, sigma_few)
kl_tfp = tfd.kl_divergence(tfd.MultivariateNormalDiag(mu_few, sigma_few), prior)
mc = kl_monte_carlo(tfd.MultivariateNormalDiag(mu_few[0], sigma_few[0]), prior, 100_000,
                    seed=5)
print("formula vs tfd.kl_divergence agree:", bool(np.allclose(kl_hand, kl_tfp, rtol=1e-5)))
print(f"first digit: formula {float(kl_hand[0]):.3f}, Monte Carlo {mc.estimate:.3f} "
      f"± {mc.stderr:.3f}")
print("within 4 standard errors:", abs(mc.estimate - float(kl_hand[0])) < 4 * mc.stderr)
assert np.allclose(kl_hand, kl_tfp, rtol=1e-5)
assert abs(mc.estimate - float(kl_hand[0])) < 4 * mc.stderr

# %% [markdown]
# ### A model class that TensorFlow can train
#
# A training loop needs two things from a model: a loss, and the list of variables to
# differentiate it with respect to. The obvious container is a `tf.Module`, whose
# `trainable_variables` property collects every `tf.Variable` it finds among its attributes,
# looking inside attributes that are themselves `tf.Module`s.
# But Keras 3 keeps its weights in `keras.Variable` objects inside Keras layers, and neither is
# a `tf.Variable` nor a `tf.Module`, so a plain `tf.Module` holding two Keras networks finds
# nothing to train, without any error:

# %%
# NBVAL_CHECK_OUTPUT
class PlainVAE(tf.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = make_encoder(), make_decoder()


plain = PlainVAE()
print("variables tf.Module finds   :", len(plain.trainable_variables))
print("variables the Keras nets own:",
      len(plain.encoder.trainable_variables) + len(plain.decoder.trainable_variables))
print("a Keras 3 variable is a tf.Variable:",
      isinstance(plain.encoder.trainable_variables[0], tf.Variable),
      "| a Keras 3 network is a tf.Module:", isinstance(plain.encoder, tf.Module))

# %% [markdown]
# A training step given `plain.trainable_variables` would compute gradients for an empty list
# and never change the networks. So our class lists the variables itself, in a
# `trainable_variables` property. Its `loss(x, seed)` method returns the batch's mean negative
# ELBO and a dictionary of metrics (means over the batch, in nats per image), the interface
# that `tfpcourse.vae.fit` expects later.

# %%
# NBVAL_CHECK_OUTPUT
class HandVAE(tf.Module):
    """A VAE with a diagonal Gaussian encoder, a Bernoulli decoder and a N(0, I) prior."""

    def __init__(self, latent_dim=LATENT, hidden=HIDDEN, name="hand_vae"):
        super().__init__(name=name)
        self.latent_dim = latent_dim
        self.encoder = make_encoder(latent_dim, hidden)
        self.decoder = make_decoder(latent_dim, hidden)

    @property
    def trainable_variables(self):
        # tf.Module cannot see Keras 3 variables (previous cell): list them explicitly.
        return tuple(self.encoder.trainable_variables) + tuple(self.decoder.trainable_variables)

    def terms(self, x, seed):
        """One-sample reconstruction term and exact KL, per example."""
        mu, sigma = posterior_params(self.encoder, x)
        z = reparameterized_sample(mu, sigma, seed)
        return bernoulli_log_likelihood(x, self.decoder(z)), gaussian_kl(mu, sigma)

    def loss(self, x, seed):
        """Mean negative ELBO of the batch, and metrics (batch means, nats per image)."""
        reconstruction, kl = self.terms(x, seed)
        elbo = reconstruction - kl
        loss = -tf.reduce_mean(elbo)
        return loss, {"loss": loss, "elbo": tf.reduce_mean(elbo),
                      "reconstruction": tf.reduce_mean(reconstruction),
                      "kl": tf.reduce_mean(kl)}


model = HandVAE()
print("trainable variables:", len(model.trainable_variables),
      "| parameters:", f"{sum(int(np.prod(v.shape)) for v in model.trainable_variables):,}")

# %% [markdown]
# The same loss can be assembled from TFP distributions: `tfpcourse.vae.elbo_terms` takes an
# encoder that returns $q(z \mid x)$ and a decoder that returns $p(x \mid z)$ and uses
# `q.sample`, `Independent(Bernoulli).log_prob` and `tfd.kl_divergence`. Wrapping our networks
# that way (with $q$ as 16 independent `Normal`s, which draw their noise in our order) and
# passing the same seed must reproduce our hand-written terms:

# %%
# NBVAL_CHECK_OUTPUT
def q_of(x):
    return tfd.Independent(tfd.Normal(*posterior_params(model.encoder, x)), 1)


def p_of(z):
    return tfd.Independent(tfd.Bernoulli(logits=model.decoder(z), dtype=tf.float32), 3)


prior_independent = tfd.Independent(tfd.Normal(tf.zeros(LATENT), 1.0), 1)
recon_hand, kl_model = model.terms(x_few, seed_z)
library_terms = vae.elbo_terms(x_few, q_of, p_of, prior_independent, seed=seed_z,
                               kl="analytic")
print("reconstruction agrees:",
      bool(np.allclose(recon_hand, library_terms.reconstruction, rtol=1e-5)),
      "| KL agrees:", bool(np.allclose(kl_model, library_terms.kl, rtol=1e-5)))
loss_value, metrics = model.loss(x_few, seed_z)
print("metrics:", sorted(metrics))
print(f"negative ELBO of an untrained model: about {float(loss_value):.0f} nats per image")
assert np.allclose(recon_hand, library_terms.reconstruction, rtol=1e-5)
assert np.allclose(kl_model, library_terms.kl, rtol=1e-5)

# %% [markdown]
# ## 4. A compiled training step
#
# One step of training draws a fresh seed, computes the loss under a `GradientTape`, and lets
# Adam update every variable. Wrapped in `tf.function` (chapter 01), the step is traced into a
# graph once and then reused. To make sure it is traced *once*, give it an `input_signature`:
# a batch dimension of `None` accepts every batch size (the last batch of an epoch is smaller),
# and the seed is a tensor, not a Python number (a new Python value would mean a new trace).
# One more detail: Adam keeps two moving averages per variable, which it creates on its first
# update unless told to create them earlier with `optimizer.build`. A `tf.function` whose first
# call creates variables is traced a second time. A toy with one variable shows it:

# %%
# NBVAL_CHECK_OUTPUT
def count_traces(build_first):
    """Traces of a one-variable Adam step called three times."""
    toy = tf.Variable(1.0)
    toy_optimizer = keras.optimizers.Adam(0.1)
    if build_first:
        toy_optimizer.build([toy])

    @tf.function
    def toy_step():
        with tf.GradientTape() as tape:
            toy_loss = toy**2
        toy_optimizer.apply_gradients([(tape.gradient(toy_loss, toy), toy)])

    for _ in range(3):
        toy_step()
    return toy_step.experimental_get_tracing_count()


print("traces without optimizer.build:", count_traces(False), "| with it:", count_traces(True))

# %% [markdown]
# So we build the optimizer before the first call:

# %%
# TOLERANCE: abs=2 -- nats per image, mean loss over 10 steps
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
optimizer.build(model.trainable_variables)  # create Adam's moment variables now, not in a trace
image_spec = tf.TensorSpec([None, 28, 28, 1], tf.float32)
seed_spec = tf.TensorSpec([2], tf.int32)


@tf.function(input_signature=[image_spec, seed_spec])
def train_step(x, seed):
    with tf.GradientTape() as tape:
        loss, metrics = model.loss(x, seed)
    variables = model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return metrics


base_seed = seeding.stateless_seed(6)
losses = []
for i, x_batch in enumerate(train_ds):  # one epoch (full) or 16 batches (smoke)
    step_seed = tf.random.experimental.stateless_fold_in(base_seed, i)
    losses.append(float(train_step(x_batch, step_seed)["loss"]))
print(f"{len(losses)} steps: negative ELBO {np.mean(losses[:10]):.1f} (first 10 steps) -> "
      f"{np.mean(losses[-10:]):.1f} (last 10 steps)")

# %% [markdown]
# `stateless_fold_in(base_seed, i)` gives step $i$ its own seed, so a rerun draws the same
# noise at every step. However many batches went through, including the smaller last one, the
# step was traced once. Without the signature, a batch of a new size is traced again:

# %%
# NBVAL_CHECK_OUTPUT
print("traces of train_step:", train_step.experimental_get_tracing_count())


@tf.function
def loss_no_signature(x, seed):
    return model.loss(x, seed)[0]


for n in (128, 128, 96):
    loss_no_signature(tf.zeros([n, 28, 28, 1]), seed_z)
print("traces without a signature, after batches of 128, 128 and 96:",
      loss_no_signature.experimental_get_tracing_count())

# %% [markdown]
# ## 5. Why the reparameterization trick?
#
# The encoder's gradient needs $\nabla_\phi\, \mathbb E_{q_\phi(z \mid x)}[f(z)]$ with
# $f(z) = \log p_\theta(x \mid z)$, where $\phi$ appears in the distribution we average over.
# Two standard Monte Carlo estimators exist.
#
# * **Score function** (REINFORCE, or likelihood ratio). Differentiate the density instead of
#   the samples: $\nabla_\phi \int q_\phi(z) f(z)\,dz = \int q_\phi(z)\, f(z)\,
#   \nabla_\phi \log q_\phi(z)\,dz$, so with draws $z_k \sim q_\phi$
#
#   $$ \hat g_{\mathrm{SF}} = \frac1K \sum_{k=1}^K f(z_k)\, \nabla_\phi \log q_\phi(z_k). $$
#
#   It needs only $\log q_\phi$ to be differentiable, not $f$, and it works for discrete $z$.
# * **Reparameterized** (pathwise). Write $z = \mu_\phi + \sigma_\phi \varepsilon$ and move the
#   gradient inside the average over $\varepsilon$, which does not depend on $\phi$:
#
#   $$ \hat g_{\mathrm{RP}} = \frac1K \sum_{k=1}^K \nabla_\phi\,
#      f(\mu_\phi + \sigma_\phi \varepsilon_k). $$
#
#   It uses the slope of $f$, which the score function ignores.
#
# ### A one-dimensional warm-up
#
# Take $z \sim \mathcal N(\mu, 1)$ and $f(z) = z^2 + c$, whose true gradient is
# $\frac{d}{d\mu}(\mu^2 + 1 + c) = 2\mu$. The score is $\frac{d}{d\mu}\log q = z - \mu =
# \varepsilon$, so one draw gives $\hat g_{\mathrm{SF}} = (z^2 + c)\,\varepsilon$ and
# $\hat g_{\mathrm{RP}} = 2z$. From the Normal's moments ($\mathbb E\varepsilon^2 = 1$,
# $\mathbb E\varepsilon^4 = 3$, $\mathbb E\varepsilon^6 = 15$), with $a = \mu^2 + c$:
#
# $$ \mathrm{Var}\big[\hat g_{\mathrm{SF}}\big] = a^2 + 6a + 8\mu^2 + 15, \qquad
#    \mathrm{Var}\big[\hat g_{\mathrm{RP}}\big] = 4. $$
#
# The constant $c$ does not change the gradient, but it enters the score-function variance
# squared. In a VAE, $f = \log p(x \mid z)$ is around $-100$ nats for a trained model:

# %%
# NBVAL_CHECK_OUTPUT
mu_toy = 1.0
eps_toy = tf.random.stateless_normal([1_000_000], seed=seeding.stateless_seed(7),
                                     dtype=tf.float64).numpy()
z_toy = mu_toy + eps_toy
print(f"{'c':>6s} {'mean SF':>8s} {'mean RP':>8s} {'var SF':>9s} {'formula':>9s} "
      f"{'var RP':>7s}")
for c in (0.0, -100.0):
    g_sf, g_rp = (z_toy**2 + c) * eps_toy, 2 * z_toy
    a = mu_toy**2 + c
    var_formula = a**2 + 6 * a + 8 * mu_toy**2 + 15
    print(f"{c:6.0f} {g_sf.mean():8.3f} {g_rp.mean():8.3f} {g_sf.var():9.1f} "
          f"{var_formula:9.1f} {g_rp.var():7.3f}")
    np.testing.assert_allclose(g_sf.var(), var_formula, rtol=0.03)
    np.testing.assert_allclose(g_rp.var(), 4.0, rtol=0.01)
    assert abs(g_sf.mean() - 2 * mu_toy) < 4 * g_sf.std() / np.sqrt(eps_toy.size)

# %% [markdown]
# Both estimators average to the true gradient $2\mu = 2$, but one score-function draw is
# 7.5 times noisier (in variance) than one reparameterized draw at $c = 0$, and about 2,300
# times noisier at $c = -100$; it would need that many times more samples for the same
# accuracy.
#
# ### On the VAE, same model, same batch
#
# Now the real thing: the model trained for one epoch in section 4, a fixed batch of 32
# statically binarised test images, and the gradient of the reconstruction term
# $\frac1{32}\sum_b \mathbb E_{q_\phi(z \mid x_b)}[\log p_\theta(x_b \mid z)]$ with respect to
# all 418,336 encoder parameters. One compiled function returns both estimators (one draw of
# $z$ per image) from the same draws: the reparameterized one differentiates through $z$; the
# score-function one holds $z$ and $f$ fixed (`tf.stop_gradient`) and differentiates
# $\log q_\phi(z \mid x)$.

# %%
# NBVAL_CHECK_OUTPUT
x_fixed = next(iter(test_ds))[:32]
encoder_vars = model.encoder.trainable_variables


def flatten(grads):
    return tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)


@tf.function(input_signature=[image_spec, seed_spec])
def both_gradients(x, seed):
    with tf.GradientTape(persistent=True) as tape:
        mu, sigma = posterior_params(model.encoder, x)
        z = reparameterized_sample(mu, sigma, seed)
        f = bernoulli_log_likelihood(x, model.decoder(z))  # one value per image
        pathwise = tf.reduce_mean(f)
        log_q = tfd.MultivariateNormalDiag(mu, sigma).log_prob(tf.stop_gradient(z))
        score = tf.reduce_mean(tf.stop_gradient(f) * log_q)
    return (flatten(tape.gradient(pathwise, encoder_vars)),
            flatten(tape.gradient(score, encoder_vars)))


g_rp_one, g_sf_one = both_gradients(x_fixed, seed_z)
n_params = sum(int(np.prod(v.shape)) for v in encoder_vars)
print("batch:", x_fixed.shape, "| gradient vectors:", g_rp_one.shape, g_sf_one.shape,
      "| encoder parameters:", f"{n_params:,}")

# %% [markdown]
# Repeat with many independent seeds and keep, for every parameter, the running sums needed
# for its mean and variance under each estimator (and of their difference, to test that the
# means agree). We also keep every draw of one component to plot: the gradient with respect to
# the bias of $\mu_1$, the first code dimension's mean.

# %%
# TOLERANCE: rel=0.1 -- Monte Carlo gradient variances of a model trained for one epoch
N_SEEDS = cfg.pick(full=500, smoke=30)
N_SEEDS_BASELINE = cfg.pick(full=100, smoke=10)  # exercise 2
sums = {k: np.zeros(n_params) for k in ("rp", "rp2", "sf", "sf2", "d", "d2")}
offset_mu1_bias = n_params - 2 * LATENT  # the last layer's bias: mu (16), then raw sigma (16)
component = {"rp": [], "sf": []}
for seed_i in seeding.split_seed(seeding.stateless_seed(8), N_SEEDS):
    g_rp, g_sf = (g.numpy().astype(np.float64) for g in both_gradients(x_fixed, seed_i))
    for key, g in (("rp", g_rp), ("sf", g_sf), ("d", g_sf - g_rp)):
        sums[key] += g
        sums[key + "2"] += g**2
    component["rp"].append(g_rp[offset_mu1_bias])
    component["sf"].append(g_sf[offset_mu1_bias])


def mean_var(key):
    mean = sums[key] / N_SEEDS
    return mean, (sums[key + "2"] - N_SEEDS * mean**2) / (N_SEEDS - 1)


(mean_rp, var_rp), (mean_sf, var_sf), (mean_d, var_d) = (mean_var(k) for k in ("rp", "sf", "d"))
active = var_rp > 1e-20  # parameters whose gradient is not identically zero on this batch
ratio = var_sf[active] / var_rp[active]
print(f"{N_SEEDS} seeds, {active.sum():,} of {n_params:,} parameters with a non-zero gradient")
print(f"total variance (sum over parameters): reparameterized {var_rp.sum():.4g}, "
      f"score function {var_sf.sum():.4g}")
print(f"ratio of total variances: {var_sf.sum() / var_rp.sum():,.0f}; per parameter, "
      f"median ratio {np.median(ratio):,.0f} (min {ratio.min():.1f})")
print(f"noise-to-signal, sqrt(total variance) / |mean gradient|: reparameterized "
      f"{np.sqrt(var_rp.sum()) / np.linalg.norm(mean_rp):.2f}, score function "
      f"{np.sqrt(var_sf.sum()) / np.linalg.norm(mean_rp):.1f}")

# %% [markdown]
# Only parameters with a gradient count: a first-layer weight of a pixel that is blank in all
# 32 images, or any weight of a hidden unit that is inactive on all of them, gets exactly zero
# from both estimators. On the rest, one score-function draw has about 10,800 times the total
# variance of one reparameterized draw, and no parameter has a ratio below 500: the score
# function would need some ten thousand draws to be as accurate as a single reparameterized
# one. Its noise is 67 times the length of the gradient it estimates; the reparameterized
# estimator's is 0.65 times.
#
# Both estimators are unbiased, so their means must agree within Monte Carlo error. Per
# parameter, the mean difference (score function minus reparameterized, over the same draws)
# divided by its standard error should look like a standard Normal: about 99.7% of the values
# within $\pm 3$ and a standard deviation near 1.

# %%
# TOLERANCE: abs=0.05 rel=0.01 -- share of z-scores within ±3 (%) and their standard deviation
z_scores = mean_d[active] / np.sqrt(var_d[active] / N_SEEDS)
print(f"mean difference / standard error: {np.mean(np.abs(z_scores) < 3):.2%} within ±3, "
      f"standard deviation {z_scores.std():.2f}")
assert np.mean(np.abs(z_scores) < 3) > 0.95

# %%
# NBVAL_CHECK_OUTPUT
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
comp_rp, comp_sf = np.array(component["rp"]), np.array(component["sf"])
bins = np.linspace(np.percentile(comp_sf, 1), np.percentile(comp_sf, 99), 60)
ax1.hist(comp_sf, bins=bins, alpha=0.6, color="C1",
         label=f"score function (sd {comp_sf.std(ddof=1):.3g})")
ax1.hist(comp_rp, bins=bins, alpha=0.8, color="C0",
         label=f"reparameterized (sd {comp_rp.std(ddof=1):.3g})")
ax1.axvline(comp_rp.mean(), color="k", lw=1, ls="--", label="reparameterized mean")
ax1.set_xlabel("gradient w.r.t. the bias of $\\mu_1$")
ax1.set_ylabel(f"count (of {N_SEEDS} seeds)")
ax1.set_title("One gradient component, many seeds", fontsize=10)
ax1.legend(fontsize=8)
rng_pick = np.random.default_rng(0)
pick = rng_pick.choice(np.flatnonzero(active), size=min(5000, int(active.sum())), replace=False)
ax2.loglog(var_rp[pick], var_sf[pick], ".", ms=2, alpha=0.4)
lims = [var_rp[pick].min(), var_sf[pick].max()]
ax2.loglog(lims, lims, "k--", lw=1, label="equal variance")
ax2.set_xlabel("variance, reparameterized")
ax2.set_ylabel("variance, score function")
ax2.set_title("Per-parameter variance (5,000 encoder parameters)", fontsize=10)
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 3.* Left: the distribution, over 500 independent seeds, of one component of the
# encoder's gradient (the bias of the first code dimension's mean) under the two estimators,
# with one draw of $z$ per image of the same 32-image batch; the x range covers the central
# 98% of the score-function values, and the reparameterized values (standard deviation 0.474
# against 51.1) form the narrow spike at the dashed line. Right: the variance of each of
# 5,000 randomly chosen encoder parameters' gradients under both estimators, on log-log axes;
# every point lies far above the dashed line of equal variance.
#
# The means agree as they should (99.78% of the standardised differences within $\pm 3$,
# standard deviation 0.95); only the noise differs. The score-function estimator multiplies
# $\nabla_\phi \log q$ by $\log p(x \mid z)$, a number of order $-100$ whose sign and size
# carry no information about which direction improves the reconstruction; only its small
# variation from draw to draw does, and the rest drowns it. The reparameterized estimator uses
# $\nabla_z \log p(x \mid z)$, which says directly how to move $z$. (Exercise 2 shows that a
# *baseline* removes most, though not all, of the score function's extra noise; it remains
# the tool for discrete codes, which cannot be reparameterized.)

# %% [markdown]
# ## 6. Training the VAE
#
# `tfpcourse.training.fit` (also importable as `vae.fit`), the course's one training loop,
# runs the loop of section 4 for several epochs: the same Adam update in a step traced once
# (with `input_signature`), a seed per step from `stateless_fold_in`, and after every epoch a
# compiled pass over the test set. It accepts any object with `loss(x, seed)` returning
# `(mean loss, metrics)` and `trainable_variables`, such as our `HandVAE`. We build a fresh
# model inside `strategy.scope()`: on one device that changes nothing; on a machine with
# several GPUs its variables are mirrored on each, and `fit` splits every batch between them.
# The test ELBO uses the same static binarisation and the same seeds after every epoch, so
# the test curve moves only because the model does.

# %%
# TOLERANCE: abs=1 -- nats per image after training
EPOCHS = cfg.pick(full=30, smoke=1)
with strategy.scope():
    vae_model = HandVAE()
history = vae.fit(vae_model, train_ds, valid=test_ds, epochs=EPOCHS, learning_rate=1e-3, seed=9)
print(f"{history.epochs} epochs, {history.steps:,} steps in {history.seconds:.0f} s; "
      f"traces of the training step: {history.traces}")
print(f"{'epoch':>5s} {'train -ELBO':>12s} {'test -ELBO':>11s} {'test recon':>11s} "
      f"{'test KL':>8s}")
for e in range(history.epochs):
    print(f"{e + 1:5d} {-history.train['elbo'][e]:12.2f} {-history.valid['elbo'][e]:11.2f} "
          f"{-history.valid['reconstruction'][e]:11.2f} {history.valid['kl'][e]:8.2f}")

# %%
# NBVAL_CHECK_OUTPUT
fig = plot.training_curves(
    {"train (mean over the epoch's batches)": -np.array(history.train["elbo"]),
     "test (after the epoch, static binarisation)": -np.array(history.valid["elbo"])},
    ylabel="negative ELBO (nats per image)", title="Training the VAE",
)
plt.show()

# %% [markdown]
# *Figure 4.* Negative ELBO per epoch on the training data (averaged over the epoch's
# batches while the weights were still changing, on freshly binarised images) and on the
# statically binarised test set (after each epoch). Lower is better. Most of the progress is
# made in the first five epochs; over the last five the test value still falls, by 0.65
# nats.

# %% [markdown]
# The training curve averages over an epoch during which the model keeps improving, on
# images it sees in a new binarisation each time, so it is not directly comparable with the
# test curve. For a like-for-like comparison we evaluate the final model on the first 10,000
# training images, statically binarised, exactly as the test set is:

# %%
# TOLERANCE: abs=1 -- nats per image after training
final = {name: values[-1] for name, values in history.valid.items()}
train_eval_ds = pipelines.image_dataset(
    mnist.train.images, batch_size=500, binarize="static", seed=2,
    subset=cfg.pick(full=10_000, smoke=500),
)
final_train = vae.evaluate(vae_model, train_eval_ds, seed=9)
for name, result in (("test", final), ("train, evaluated like test", final_train)):
    print(f"{name:27s}: negative ELBO {-result['elbo']:.2f} nats per image "
          f"= reconstruction {-result['reconstruction']:.2f} + KL {result['kl']:.2f}")

# %%
# NBVAL_CHECK_OUTPUT
print(f"traces of the training step: {history.traces}")

# %% [markdown]
# After 30 epochs the test negative ELBO is 99.64 nats per image, of which 24.82 nats are the
# KL term. The training images, evaluated the same way, score only about 0.5 nats better: this
# small model hardly overfits.
#
# The negative ELBO is estimated here with one draw of $z$ per image; its expectation is an
# *upper* bound on the test negative log-likelihood $-\log p_\theta(x)$, not the likelihood
# itself. The true value is lower by the average $\mathrm{KL}(q_\phi(z \mid x) \,\|\,
# p_\theta(z \mid x))$, which cannot vanish with a diagonal $q$ when the true posterior is
# correlated or not Gaussian (section 1). Exercise 4 tightens the bound with importance
# weighting: on the first 500 test images, the mean bound rises from about $-97.6$ nats with
# one draw to about $-93.8$ nats with 100.
# Comparisons with published numbers need the same binarisation, test draw, architecture and
# estimator, so we quote none here.
#
# ### Reconstructions and samples
#
# A reconstruction encodes a test image to its posterior mean $\mu$ and decodes it; we show the
# decoder's pixel probabilities $\sigma(\ell)$ rather than a binary sample from them.

# %%
# NBVAL_CHECK_OUTPUT
x_show = next(iter(test_ds))[:12]
mu_show, _ = posterior_params(vae_model.encoder, x_show)
recon_show = tf.sigmoid(vae_model.decoder(mu_show)).numpy()
fig = plot.image_grid(
    np.concatenate([x_show.numpy(), recon_show]), ncols=12, size=0.8,
    title="top: binarised test inputs; bottom: reconstructions (pixel probabilities)",
)
plt.show()

# %% [markdown]
# *Figure 5.* Twelve statically binarised test digits (top row) and their reconstructions
# (bottom row): the decoder's probability of each pixel being on, decoded from the encoder's
# posterior mean. The reconstructions keep each digit's identity and slant but are smoother
# than the inputs: the binary speckle at stroke edges is noise the model explains as
# uncertainty, not as signal.

# %%
# NBVAL_CHECK_OUTPUT
z_prior = prior.sample(40, seed=seeding.stateless_seed(10))
samples = tf.sigmoid(vae_model.decoder(z_prior)).numpy()
fig = plot.image_grid(samples, ncols=10, size=0.8,
                      title="decoded samples from the prior (pixel probabilities)")
plt.show()

# %% [markdown]
# *Figure 6.* Forty codes drawn from the prior $\mathcal N(0, I)$, decoded to pixel
# probabilities. Most look like digits, some are blends of two digits, or blurred: the
# regions of the prior that no training image's posterior covers well decode to images the
# model was never asked to make. This mismatch between the prior and the codes the encoder
# actually uses is what chapter 06's learned prior addresses.
#
# How much of the code does the model use? The KL term, averaged over the test set, can be
# split by code dimension; a dimension with a KL near zero carries no information about the
# image (its posterior is the prior for every image):

# %%
# TOLERANCE: abs=0.2 rel=0.03 -- KL per code dimension and its total (nats)
kl_per_dim = []
for x_batch in test_ds:
    mu_b, sigma_b = posterior_params(vae_model.encoder, x_batch)
    per_dim = tfd.kl_divergence(tfd.Normal(mu_b, sigma_b), tfd.Normal(0.0, 1.0))
    kl_per_dim.append(per_dim.numpy())
kl_per_dim = np.concatenate(kl_per_dim).mean(axis=0)
print(f"total {kl_per_dim.sum():.2f} nats; dimensions with KL > 0.1 nats: "
      f"{int((kl_per_dim > 0.1).sum())} of {LATENT}, from {kl_per_dim.min():.2f} "
      f"to {kl_per_dim.max():.2f} nats each")

# %%
# NBVAL_CHECK_OUTPUT
order = np.argsort(kl_per_dim)[::-1]
fig, ax = plt.subplots(figsize=(6.5, 3.2))
ax.bar(np.arange(LATENT), kl_per_dim[order])
ax.set_xticks(np.arange(LATENT), [str(j + 1) for j in order], fontsize=7)
ax.set_xlabel("code dimension (sorted by KL)")
ax.set_ylabel("mean KL on the test set (nats)")
ax.set_title("KL to the prior, per code dimension")
fig.tight_layout()
plt.show()

# %% [markdown]
# *Figure 7.* The test-set average of each code dimension's share of
# $\mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z))$, sorted; the labels are the dimensions' indices.
# Their sum is the test KL printed above. Every one of the 16 dimensions carries between
# about 1.1 and 2.1 nats: none has collapsed to the prior, and no single dimension dominates.
# With a much larger code, or a more powerful decoder, some dimensions typically go unused.

# %% [markdown]
# ## Summary
#
# * $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q \,\|\, p(z \mid x))$ for every $q$: the ELBO
#   is a lower bound whose gap is the KL to the true posterior. It splits into a
#   reconstruction term and a KL to the prior. On a linear-Gaussian model the exact
#   identities held to 1e-9, the Monte Carlo ELBO plus the KL matched $\log p(x)$ within 2
#   standard errors, and a diagonal $q$ could not close the gap of a correlated posterior.
# * A VAE is an encoder giving $q_\phi(z \mid x)$, a decoder giving $p_\theta(x \mid z)$, and
#   a prior. Written by hand: $z = \mu + \sigma\varepsilon$; the Bernoulli log-likelihood
#   $\sum_i [x_i\ell_i - \mathrm{softplus}(\ell_i)]$, stable where the naive form gives
#   $-\infty$ or `nan`; the KL $\tfrac12\sum_j(\mu_j^2 + \sigma_j^2 - 1 - 2\log\sigma_j)$;
#   all equal to TFP's.
# * A `tf.Module` does not see Keras 3 variables; list them in `trainable_variables`. A
#   training step with an `input_signature` is traced once.
# * The score-function gradient is unbiased but, on this VAE and batch, about 10,000 times
#   noisier (in variance) than the reparameterized one, because it weighs every draw by a
#   large $\log p(x \mid z)$ instead of using its slope.
# * Trained for 30 epochs on dynamically binarised MNIST, the VAE reconstructs test digits
#   and generates mostly digit-like samples. Its test negative ELBO, 99.64 nats per image on
#   the statically binarised test set, is an upper bound on the negative log-likelihood.
#
# **Glossary:** {term}`ELBO`, {term}`KL divergence`, {term}`reparameterization trick`,
# {term}`Monte Carlo estimate`, {term}`tracing`.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, followed by a *check cell* that tells you whether
# the answer is right and, if not, what differs. In this copy the answer cells hold worked
# solutions; the student version of the notebook (`tfpcourse student`) replaces them by hints
# and answers set to `None`. Fill in an answer cell, run it, then run the check below it.
#
# **1 (warm-up). KL to a different prior.** For diagonal Gaussians
# $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ and $p = \mathcal N(m, \mathrm{diag}\,s^2)$,
#
# $$ \mathrm{KL}(q \,\|\, p) = \tfrac12 \sum_j \Big(\frac{\sigma_j^2 + (\mu_j - m_j)^2}{s_j^2}
#    - 1 + 2\log\frac{s_j}{\sigma_j}\Big). $$
#
# Write it as a function `gaussian_kl_general(mu, sigma, m, s)` returning one KL per image
# (`mu` and `sigma` of shape `(batch, 16)`; `m` and `s` scalars or vectors of length 16), and
# compare it with `tfd.kl_divergence` for the eight digits' posteriors of section 3 and a prior
# with $m_j = 0.5$, $s_j = 2$.

# %% tags=["solution"]
# TOLERANCE: abs=0.01 -- KL per image of the untrained encoder (nats); the difference is round-off
# answer: gaussian_kl_general
# hint: write it with tf operations on vectors and sum over the last axis (one KL per image).
# hint: the ratio of variances, the squared distance of the means in units of s_j, then logs.
def gaussian_kl_general(mu, sigma, m, s_p):
    ratio_terms = (sigma**2 + (mu - m) ** 2) / s_p**2
    return 0.5 * tf.reduce_sum(ratio_terms - 1.0 + 2.0 * tf.math.log(s_p / sigma), axis=-1)


m_p, s_p = tf.fill([LATENT], 0.5), tf.fill([LATENT], 2.0)
kl_general = gaussian_kl_general(mu_few, sigma_few, m_p, s_p)
kl_general_tfp = tfd.kl_divergence(tfd.MultivariateNormalDiag(mu_few, sigma_few),
                                   tfd.MultivariateNormalDiag(m_p, s_p))
print("KL per image:", np.round(kl_general.numpy(), 2))
print(f"largest relative difference from TFP: "
      f"{np.max(np.abs(kl_general / kl_general_tfp - 1)):.1e}")

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
prior_05_2 = tfd.MultivariateNormalDiag(tf.fill([LATENT], 0.5), tf.fill([LATENT], 2.0))
expected_kl = tfd.kl_divergence(tfd.MultivariateNormalDiag(mu_few, sigma_few), prior_05_2)
print(check.that(
    "gaussian_kl_general",
    lambda: np.allclose(gaussian_kl_general(mu_few, sigma_few, tf.fill([LATENT], 0.5),
                                            tf.fill([LATENT], 2.0)), expected_kl, rtol=1e-5),
    "it matches tfd.kl_divergence against the prior N(0.5, 2^2 I)"))
print(check.that(
    "gaussian_kl_general",
    lambda: np.allclose(gaussian_kl_general(mu_few, sigma_few, 0.0, 1.0),
                        gaussian_kl(mu_few, sigma_few), rtol=1e-5),
    "with m = 0 and s = 1 it reduces to section 3's formula"))

# %% [markdown]
# **2 (variance). A baseline.** Since $\mathbb E_q[\nabla_\phi \log q_\phi(z)] = 0$,
# subtracting from $f(z)$ any baseline $\beta$ that does not depend on the draw $z$ leaves
# the score-function estimator unbiased: $\hat g = (f(z) - \beta)\,\nabla_\phi\log q_\phi(z)$.
# Use, for each image, $\beta = \log p(x \mid z{=}\mu)$ (the log-likelihood at the posterior
# mean) and, over `N_SEEDS_BASELINE` seeds (100; 10 in `smoke`) on the same batch, store the mean
# gradient in `mean_baseline` and the total variance (summed over parameters) in
# `var_baseline`. How does the variance compare with the estimator without a baseline, and
# with the reparameterized one? Is the mean still the same gradient?

# %% tags=["solution"]
# TOLERANCE: rel=0.1 -- Monte Carlo gradient variances of a model trained for one epoch
# answer: mean_baseline, var_baseline
# hint: copy the score-function gradient of section 5 and replace f(z) by f(z) - baseline
# hint: inside tf.stop_gradient; the baseline decodes mu instead of a draw z.
# hint: stack the 100 flattened gradients into an array (seeds x parameters).
@tf.function(input_signature=[image_spec, seed_spec])
def score_with_baseline(x, seed):
    with tf.GradientTape() as tape:
        mu, sigma = posterior_params(model.encoder, x)
        z = tf.stop_gradient(reparameterized_sample(mu, sigma, seed))
        f = bernoulli_log_likelihood(x, model.decoder(z))
        baseline = bernoulli_log_likelihood(x, model.decoder(mu))
        log_q = tfd.MultivariateNormalDiag(mu, sigma).log_prob(z)
        surrogate = tf.reduce_mean(tf.stop_gradient(f - baseline) * log_q)
    return flatten(tape.gradient(surrogate, encoder_vars))


draws = np.stack([score_with_baseline(x_fixed, s_i).numpy().astype(np.float64)
                  for s_i in seeding.split_seed(seeding.stateless_seed(11), N_SEEDS_BASELINE)])
mean_baseline, var_baseline = draws.mean(axis=0), draws.var(axis=0, ddof=1).sum()
print(f"total variance: score function {var_sf.sum():.4g}, with baseline "
      f"{var_baseline:.4g}, reparameterized {var_rp.sum():.4g}")

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
print(check.that("var_baseline", lambda: var_baseline < var_sf.sum() / 10,
                 "the baseline cuts the score-function estimator's total variance at least "
                 "tenfold"))
print(check.that("var_baseline", lambda: var_baseline > var_rp.sum(),
                 "and it is still noisier than the reparameterized estimator"))
# Unbiased: the squared distance between the two mean gradients should be about its Monte
# Carlo size, trace(Var) / n for each mean (independent seeds); a biased baseline would leave
# a distance that does not shrink with more seeds.
print(check.that(
    "mean_baseline",
    lambda: np.sum((np.asarray(mean_baseline) - mean_rp) ** 2)
    < 3 * (var_baseline / N_SEEDS_BASELINE + var_rp.sum() / N_SEEDS),
    "the mean gradient agrees with the reparameterized one within 3 times the expected "
    "Monte Carlo error (the baseline keeps the estimator unbiased)"))

# %% [markdown]
# **3 (trade-off). A $\beta$-VAE.** Weighting the KL term by $\beta \ne 1$,
# $\mathcal L_\beta = -\mathbb E_q[\log p(x \mid z)] + \beta\,\mathrm{KL}(q \,\|\, p(z))$, is
# no longer the ELBO, but it moves the balance between the two terms. Subclass `HandVAE` with
# a `beta` and train $\beta = 1$ and $\beta = 4$ briefly under the same budget (the first
# 10,000 training images for 3 epochs; a smaller subset and 1 epoch in `smoke`), and store
# each model's `vae.evaluate(model, test_ds, seed=0)` in a dict `beta_results` keyed by
# $\beta$ (`1.0` and `4.0`). Which term does each model do better on?

# %% tags=["solution"]
# TOLERANCE: abs=1 rel=0.02 -- nats per image after 3 epochs
# answer: beta_results
# hint: override loss() so that the KL is multiplied by self.beta; keep the same metrics.
# hint: store vae.evaluate(model, test_ds, seed=0) in a dict beta_results keyed by beta
# hint: (1.0 and 4.0).
class BetaVAE(HandVAE):
    def __init__(self, beta, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta

    def loss(self, x, seed):
        reconstruction, kl = self.terms(x, seed)
        loss = tf.reduce_mean(-reconstruction + self.beta * kl)
        return loss, {"loss": loss, "elbo": tf.reduce_mean(reconstruction - kl),
                      "reconstruction": tf.reduce_mean(reconstruction),
                      "kl": tf.reduce_mean(kl)}


small_train = pipelines.image_dataset(
    mnist.train.images, batch_size=BATCH, shuffle=True, seed=12, binarize="dynamic",
    subset=cfg.pick(full=10_000, smoke=512),
)
beta_results = {}
for beta in (1.0, 4.0):
    with strategy.scope():
        beta_model = BetaVAE(beta)
    vae.fit(beta_model, small_train, epochs=cfg.pick(full=3, smoke=1), seed=13)
    beta_results[beta] = vae.evaluate(beta_model, test_ds, seed=0)
print(vae.metrics_table({f"beta = {b:g}": {"reconstruction": r["reconstruction"], "KL": r["kl"],
                                           "ELBO": r["elbo"]}
                         for b, r in beta_results.items()}))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
print(check.that("beta_results",
                 lambda: beta_results[4.0]["kl"] < beta_results[1.0]["kl"],
                 "beta = 4 ends with a smaller KL than beta = 1"))
print(check.that("beta_results",
                 lambda: (beta_results[4.0]["reconstruction"]
                          < beta_results[1.0]["reconstruction"]),
                 "and pays for it with a worse reconstruction term"))

# %% [markdown]
# **4 (tighter bound). Importance weighting.** With $K$ draws $z_k \sim q(z \mid x)$ and
# weights $w_k = p(x \mid z_k)\,p(z_k) / q(z_k \mid x)$, consider
# $\mathcal L_K = \log \frac1K \sum_k w_k$. Its expectation is below $\log p(x)$, equals the
# ELBO for $K = 1$, never decreases as $K$ grows, and tends to $\log p(x)$ as $K \to \infty$
# (for bounded weights) {cite:p}`burda2016iwae`; a single draw of it can land above
# $\log p(x)$. By Jensen's inequality it is, for every set of draws, at least the average of
# the $K$ single-draw ELBO estimates $\log w_k$.
#
# Write `iwae_bound(x, k, seed)` for the trained `vae_model`, returning two vectors with one
# value per image: $\mathcal L_K$ and the mean of the $\log w_k$. Draw the codes with
# `tfd.MultivariateNormalDiag(mu, sigma).sample(k, seed=seed)`, so that the check can compare
# your bound with `vae.importance_weighted_log_likelihood` on the same draws. Then store the
# mean bound over 500 test images (50 in `smoke`) in a dict `iw_results` keyed by
# $K = 1, 10, 100$.

# %% tags=["solution"]
# TOLERANCE: abs=1 -- nats per image
# answer: iwae_bound, iw_results
# hint: draw z with shape (K, batch, latent) from q, decode all K * batch codes at once, and
# hint: combine the log-weights with tf.reduce_logsumexp(..., axis=0) - log K.
def iwae_bound(x, k, seed):
    mu, sigma = posterior_params(vae_model.encoder, x)
    q = tfd.MultivariateNormalDiag(mu, sigma)
    z = q.sample(k, seed=seed)  # (k, batch, latent)
    logits = vae_model.decoder(tf.reshape(z, [-1, LATENT]))
    x_rep = tf.reshape(tf.tile(x[None], [k, 1, 1, 1, 1]), [-1, 28, 28, 1])
    log_lik = tf.reshape(bernoulli_log_likelihood(x_rep, logits), [k, -1])
    log_w = log_lik + prior.log_prob(z) - q.log_prob(z)
    return tf.reduce_logsumexp(log_w, axis=0) - np.log(k), tf.reduce_mean(log_w, axis=0)


x_iw = test_ds.unbatch().take(cfg.pick(full=500, smoke=50)).batch(500).get_single_element()
iw_results = {}
for k in (1, 10, 100):
    values = []
    for j in range(0, x_iw.shape[0], 50):
        bound_k, _ = iwae_bound(x_iw[j:j + 50], k, seeding.stateless_seed(100 + j))
        values.append(bound_k.numpy())
    iw_results[k] = np.concatenate(values).mean()
for k, value in iw_results.items():
    print(f"K = {k:3d}: mean bound {value:.2f} nats")

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
x_check = tf.constant(np.concatenate([xb.numpy() for xb in test_ds.take(1)])[:50])
library = vae.importance_weighted_log_likelihood(
    x_check, lambda x: tfd.MultivariateNormalDiag(*posterior_params(vae_model.encoder, x)),
    lambda z: tfd.Independent(tfd.Bernoulli(logits=vae_model.decoder(z), dtype=tf.float32), 3),
    prior, k=10, seed=seeding.stateless_seed(100))
print(check.that(
    "iwae_bound",
    lambda: np.allclose(iwae_bound(x_check, 10, seeding.stateless_seed(100))[0], library,
                        rtol=1e-5, atol=1e-3),
    "with the same draws it matches vae.importance_weighted_log_likelihood"))
print(check.that("iw_results", lambda: iw_results[1] < iw_results[10] < iw_results[100],
                 "the mean bound rises with K"))
print(check.that(
    "iwae_bound",
    lambda: bool(np.all(np.subtract(*iwae_bound(x_check, 10, seeding.stateless_seed(7)))
                        >= -1e-4)),
    "for every image the bound is at least the mean of its log-weights (Jensen)"))
