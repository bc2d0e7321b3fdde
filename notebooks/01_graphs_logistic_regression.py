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
# # 01 · TensorFlow graphs, by way of logistic regression
#
# TensorFlow Probability is built on TensorFlow, and TensorFlow is at heart a library for
# building and running *computation graphs*. Since TensorFlow 2 you rarely build a graph by
# hand, but every `tf.function`, every fast training step and every error message about
# "symbolic tensors" comes from that idea. This chapter builds one graph by hand, the way
# TensorFlow 1 required, and then shows how TensorFlow 2 builds the same graph for you.
#
# **What you will learn**
#
# 1. What a computation graph is, and the three kinds of nodes in it: placeholders,
#    variables and ordinary operations.
# 2. How to run a graph: feeds, fetches (several in one run) and sessions, and why Python
#    objects are only *handles* to graph nodes.
# 3. How to fit a logistic regression by gradient descent and by Adam, and how to check the
#    answer against a known truth.
# 4. How to change gradients between computing and applying them: gradient clipping, in a
#    graph and in TensorFlow 2.
# 5. How name scopes organise a larger graph, here a small neural network.
# 6. Where `print` and `tf.print` output goes, and why they differ.
# 7. What `tf.GradientTape` records: persistent tapes, watched tensors, higher derivatives.
# 8. How `tf.function` traces Python into a graph, what a concrete function is, the
#    retracing pitfall, why Python side effects run only while tracing, and how AutoGraph
#    turns `if` and `while` on tensors into graph control flow.
# 9. How much faster a compiled step is than an eager one, measured here.
# 10. How to train a small classifier on MNIST with a compiled training step.
#
# **Prerequisites:** Python and NumPy; logistic regression as a model (a linear score passed
# through a sigmoid) is enough.

# %% [markdown]
# ## 0. Set-up
#
# Every chapter starts the same way: `device.setup()` starts TensorFlow quietly, reports the
# devices it found and returns a distribution strategy (a `MirroredStrategy` when there are
# several GPUs). Chapters 01-04 train small models on one device and ignore it; the VAE
# chapters build their models under `strategy.scope()`, and the course's training loop then
# splits every batch between the devices); `seed_everything` makes
# the run repeatable; `get_config()` says which *profile* we run in. The `full` profile is
# what you read here; `smoke` is a tiny run for automated tests.
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

import re
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfpcourse import check, config, data, pipelines, seeding, timing
from tfpcourse.graphs import plot_graph
from tfpcourse.plot import image_grid

cfg = config.get_config()
seeding.seed_everything(0)
print(f"Profile: {cfg.profile}")

# %% [markdown]
# ## 1. Data with a known answer
#
# To check an estimator, first use it where the right answer is known. We draw 1000
# observations of 5 standard-normal features, pick true coefficients $\beta$, and draw each
# label from the model itself:
#
# $$ y_i \sim \text{Bernoulli}\big(\sigma(x_i^\top \beta)\big), \qquad
#    \sigma(t) = \frac{1}{1 + e^{-t}}. $$
#
# The data come from NumPy's seeded generator, so they are the same on every machine.

# %%
# NBVAL_CHECK_OUTPUT
N_OBS, N_FEATURES = 1000, 5
rng = np.random.default_rng(2024)
true_beta = rng.normal(size=(N_FEATURES, 1)).astype(np.float32)
x_data = rng.normal(size=(N_OBS, N_FEATURES)).astype(np.float32)
p_true = 1.0 / (1.0 + np.exp(-(x_data @ true_beta)))
y_data = (rng.random((N_OBS, 1)) < p_true).astype(np.float32)

print(f"x: shape {x_data.shape}, dtype {x_data.dtype}")
print(f"y: shape {y_data.shape}, share of ones {y_data.mean():.3f}")
print("true beta:", np.round(true_beta.ravel(), 3))

# %% [markdown]
# ## 2. A graph, built by hand
#
# In TensorFlow 1, a program had two phases. First you *describe* the computation: each call
# such as `tf.matmul` adds a node to a graph and returns a symbolic handle, not a number. Then
# you *run* parts of the graph in a session, feeding in data and fetching results.
#
# The graph has three kinds of nodes:
#
# * **Placeholders** stand for data you will feed in at run time. They have no value and no
#   state of their own; running a node that needs one without feeding it is an error.
# * **Variables** hold state that survives from one run to the next. They are the only nodes an
#   optimiser changes, and the only ones saved and restored.
# * **Ordinary operations** compute a tensor from their inputs. They keep nothing between
#   runs: their values are recomputed every time they are needed.
#
# TensorFlow 2 still contains this machinery under `tf.compat.v1`. Inside a
# `with graph.as_default():` block, TensorFlow is in graph mode again. We build the model's
# prediction: the *logits* $t = X\beta$ (the linear scores before the sigmoid) and the
# probabilities $\sigma(t)$.

# %%
# NBVAL_CHECK_OUTPUT
graph = tf.Graph()
with graph.as_default():
    x_ph = tf.compat.v1.placeholder(tf.float32, shape=(None, N_FEATURES), name="x")
    y_ph = tf.compat.v1.placeholder(tf.float32, shape=(None, 1), name="y")
    beta = tf.Variable(tf.zeros((N_FEATURES, 1)), name="beta")
    logits = tf.matmul(x_ph, beta, name="logits")
    p_hat = tf.sigmoid(logits, name="p_hat")

print("x_ph :", x_ph)
print("p_hat:", p_hat)

# %% [markdown]
# `x_ph` and `p_hat` print as `Tensor(...)` with a name and a shape, but no value: the shape
# `(None, 5)` says the number of rows is left open until data is fed. Here is every node the
# five lines above created. Creating the variable added five: its initial value (`zeros`), the
# variable itself (`VarHandleOp`), an `IsInitialized` check, an `AssignVariableOp` that sets
# it to its initial value, and a `ReadVariableOp`. `tf.matmul` then added its own
# `ReadVariableOp` to read `beta`'s current value, before the `MatMul` and the `Sigmoid`.

# %%
# NBVAL_CHECK_OUTPUT
for op in graph.get_operations():
    print(f"{op.name:36s} {op.type}")

# %% [markdown]
# A Python variable such as `p_hat` is only a *handle* to a node. Copying the handle copies
# nothing in the graph, but calling a TensorFlow function again adds a new node every time.
# That is why TensorFlow 1 programs that built ops inside a training loop slowly filled the
# memory.

# %%
# NBVAL_CHECK_OUTPUT
n_before = len(graph.get_operations())
alias = p_hat  # a second handle to the same node
print("alias is p_hat:", alias is p_hat, "| same graph:", alias.graph is graph)
print("ops after copying a handle:", len(graph.get_operations()) - n_before, "new")
with graph.as_default():
    p_again = tf.sigmoid(logits)  # same computation, but a new node
print("ops after calling tf.sigmoid again:", len(graph.get_operations()) - n_before, "new,",
      "named", p_again.op.name)

# %% [markdown]
# The picture below draws the graph (the repeated sigmoid included), inputs at the top. It is a
# static image made by `tfpcourse.graphs.plot_graph`, so it needs neither TensorBoard nor an
# internet connection.

# %%
# NBVAL_CHECK_OUTPUT
fig = plot_graph(graph, title="Logistic regression graph built with tf.compat.v1")
plt.show()

# %% [markdown]
# *Figure 1.* The hand-built graph. Orange: the placeholders `x` and `y` (`y` is not used
# until section 3). Green: the variable `beta`. Grey: the constant `zeros` that initialises it.
# Blue: operations, namely the variable's assign, check and read ops, then `logits` and the
# two sigmoid nodes.

# %% [markdown]
# ### Running the graph: feeds and fetches
#
# A `Session` runs a graph. `session.run(fetches, feed_dict)` computes the *fetched* nodes and
# only what they depend on, with placeholders replaced by the *fed* values. Variables must be
# initialised first, by running their initialiser ops. With $\beta = 0$ every predicted
# probability is $\sigma(0) = 0.5$:

# %%
# NBVAL_CHECK_OUTPUT
with graph.as_default():
    init = tf.compat.v1.global_variables_initializer()
session = tf.compat.v1.Session(graph=graph)
session.run(init)

print(session.run(p_hat, feed_dict={x_ph: x_data[:3]}).ravel())

# %% [markdown]
# Fetching a node that needs a placeholder without feeding it fails, and the error names the
# placeholder:

# %%
# NBVAL_CHECK_OUTPUT
try:
    session.run(p_hat)
except tf.errors.InvalidArgumentError as err:
    first = next(line for line in err.message.splitlines() if "placeholder" in line)
    print(type(err).__name__ + ":", first.strip())

# %% [markdown]
# ### Several fetches in one run
#
# `session.run` also takes a list, tuple or dict of nodes, and returns their values in the same
# structure. One call with several fetches is more than shorthand: the session collects
# everything the fetches need and computes each of those nodes *once*, whereas separate calls
# compute the shared part again each time. A deterministic graph gives the same values either
# way, but a random node makes the difference visible. We add a uniform random number `u` and two
# nodes that read it, `u + u` and a copy of `u` (the op's seed makes the draws repeatable).
# Both results are exact in float32, so within one draw the first is exactly twice the second:

# %%
# NBVAL_CHECK_OUTPUT
with graph.as_default():
    u = tf.random.uniform((), seed=1, name="u")
    u_doubled = tf.add(u, u, name="u_doubled")
    u_copy = tf.identity(u, name="u_copy")

doubled, copied = session.run([u_doubled, u_copy])  # one run: one draw of u, used twice
print("one run,  (u + u) == 2 * (copy of u):", doubled == 2 * copied)
doubled, copied = session.run(u_doubled), session.run(u_copy)  # two runs: two draws
print("two runs, (u + u) == 2 * (copy of u):", doubled == 2 * copied)

# %% [markdown]
# So fetch together what must come from the same evaluation, such as a loss and the
# accuracy of one batch, or a random draw and what is computed from it.
#
# A dict of fetches keeps the results readable when there are several. To see non-trivial
# numbers we set $\beta$ to the true coefficients first; running an *operation* (here the
# assignment) rather than a tensor returns `None`. The logits and probabilities of three rows
# then come back from one run, and must agree with the sigmoid computed in NumPy:

# %%
# NBVAL_CHECK_OUTPUT
with graph.as_default():
    set_beta = beta.assign(true_beta)
print("running an op returns:", session.run(set_beta.op))
feed3 = {x_ph: x_data[:3]}
fetched = session.run({"logits": logits, "p": p_hat}, feed_dict=feed3)
print("keys:", sorted(fetched))
print("p:", np.round(fetched["p"].ravel(), 4))
p_numpy = 1.0 / (1.0 + np.exp(-(x_data[:3] @ true_beta)))
print("p == sigmoid(fetched logits), to 1e-6:",
      np.allclose(fetched["p"], 1.0 / (1.0 + np.exp(-fetched["logits"])), atol=1e-6))
print("p == sigmoid(x @ true_beta) in NumPy, to 1e-6:", np.allclose(fetched["p"], p_numpy,
                                                                    atol=1e-6))

# %% [markdown]
# ### `Tensor.eval()` and the default session
#
# Older code often writes `p_hat.eval(feed_dict=...)` instead of `session.run(p_hat, ...)`.
# `eval` runs the tensor in the *default session*, which `with session.as_default():` sets for
# the length of the block. Outside such a block there is none, and `eval` fails with an error
# that says what to do:

# %%
# NBVAL_CHECK_OUTPUT
with session.as_default():
    print("default session is ours:", tf.compat.v1.get_default_session() is session)
    p_eval = p_hat.eval(feed_dict=feed3)
print("eval() equals session.run with the same feed:", np.array_equal(p_eval, fetched["p"]))
print("default session after the block:", tf.compat.v1.get_default_session())
try:
    p_hat.eval(feed_dict=feed3)
except ValueError as err:
    print("ValueError:", err)
session.run(init)  # back to beta = 0 for what follows
print("beta reset to zero:", not session.run(beta).any())

# %% [markdown]
# ## 3. Loss and training
#
# The negative log-likelihood of logistic regression, averaged over observations, is the
# binary cross-entropy
#
# $$ L(\beta) = -\frac{1}{n}\sum_i \big[y_i \log \sigma(t_i) + (1-y_i)\log(1-\sigma(t_i))\big],
#    \qquad t_i = x_i^\top\beta. $$
#
# Computing $\log\sigma(t)$ as written is a trap. In float32, $\sigma(t)$ rounds to zero
# for $t$ below about $-88$, and the logarithm becomes $-\infty$. Tutorials often add a small
# constant inside the log, which silently caps the loss instead.
# `tf.nn.sigmoid_cross_entropy_with_logits` uses the algebraically equal, stable form
#
# $$ \ell(t, y) = \max(t, 0) - t\,y + \log\big(1 + e^{-|t|}\big). $$
#
# The exact loss of label 1 at logit $t$ is $\log(1+e^{-t})$: about 30 at $t=-30$ and 100 at
# $t=-100$. Compare (for label 1) the naive formula, the naive one with a constant, and the
# stable one, with the stable formula also evaluated in NumPy for both labels:

# %%
# NBVAL_CHECK_OUTPUT
t_values = np.array([-100.0, -30.0, 0.0, 30.0], np.float32)
t = tf.constant(t_values)
ones, zeros = tf.ones_like(t), tf.zeros_like(t)
with np.errstate(divide="ignore"):
    naive = -tf.math.log(tf.sigmoid(t)).numpy() + 0.0
capped = -tf.math.log(1e-10 + tf.sigmoid(t)).numpy() + 0.0  # + 0.0 turns -0.0 into 0.0
stable = tf.nn.sigmoid_cross_entropy_with_logits(labels=ones, logits=t).numpy()
exact = np.log1p(np.exp(-t_values.astype(np.float64)))
print("t                     :", t_values)
print("naive -log sigmoid(t) :", np.round(naive, 4))
print("with 1e-10 inside log :", np.round(capped, 4))
print("stable (TensorFlow)   :", np.round(stable, 4))
print("exact log(1 + e^-t)   :", np.round(exact, 4))


def stable_formula(t, y):
    return np.maximum(t, 0) - t * y + np.log1p(np.exp(-np.abs(t)))


t64 = t_values.astype(np.float64)
for y in (1.0, 0.0):
    labels = ones if y == 1.0 else zeros
    tf_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=t).numpy()
    agree = np.allclose(stable_formula(t64, y), tf_loss, rtol=1e-6, atol=1e-30)
    print(f"label {y:.0f}: formula (float64) and TensorFlow (float32) agree to 1e-6: {agree}")

# %% [markdown]
# We add the loss and two optimisers to the graph. `minimize` adds the gradient nodes and an
# update op; running that op once takes one step. Gradient descent moves $\beta$ by a fixed
# multiple (the learning rate) of the negative gradient, so its steps shrink as the gradient
# does. Adam scales each coordinate's step by running estimates of the gradient's mean and
# mean square (its *moment estimates*, stored in extra variables). Losses are in *nats*: the
# unit of information when logarithms are natural.

# %%
with graph.as_default():
    loss = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y_ph, logits=logits), name="loss"
    )
    gd_step = tf.compat.v1.train.GradientDescentOptimizer(learning_rate=0.5).minimize(loss)
    adam_step = tf.compat.v1.train.AdamOptimizer(learning_rate=0.05).minimize(loss)
    init = tf.compat.v1.global_variables_initializer()  # now includes Adam's moment variables

feed = {x_ph: x_data, y_ph: y_data}


def fit(step_op, n_steps):
    """Reset all variables and take n_steps steps. Returns the loss before the first step and
    after each step, and the final beta."""
    session.run(init)
    history = [session.run(loss, feed)]
    for _ in range(n_steps):
        session.run(step_op, feed)
        history.append(session.run(loss, feed))
    return np.array(history), session.run(beta).ravel()


N_STEPS = 300
gd_loss, gd_beta = fit(gd_step, N_STEPS)
adam_loss, adam_beta = fit(adam_step, N_STEPS)

# %% [markdown]
# Which answer should the optimisers reach? Not the true $\beta$ exactly: with 1000
# observations the maximum-likelihood estimate (MLE) differs from the truth by sampling
# error. Logistic regression's loss is convex, so we can compute the MLE independently with a
# few steps of Newton's method in NumPy, using the gradient $X^\top(p-y)/n$ and the Hessian
# $X^\top \mathrm{diag}(p(1-p)) X / n$, and compare.

# %%
# NBVAL_CHECK_OUTPUT
def newton_mle(x, y, n_iter=25):
    x, y = x.astype(np.float64), y.astype(np.float64)
    b = np.zeros((x.shape[1], 1))
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ b)))
        grad = x.T @ (p - y) / len(x)
        hess = (x * (p * (1 - p))).T @ x / len(x)
        b -= np.linalg.solve(hess, grad)
    return b.ravel()


mle_beta = newton_mle(x_data, y_data)
p_mle = 1.0 / (1.0 + np.exp(-(x_data.astype(np.float64) @ mle_beta)))
grad_at_mle = x_data.T.astype(np.float64) @ (p_mle - y_data.ravel()) / N_OBS
print(f"gradient at the Newton solution: largest entry {np.abs(grad_at_mle).max():.0e}\n")
header = f"{'':10s}" + "".join(f"{f'beta[{j}]':>10s}" for j in range(N_FEATURES))
print(header)
for name, b in [("true", true_beta.ravel()), ("MLE", mle_beta),
                ("grad desc", gd_beta), ("Adam", adam_beta)]:
    print(f"{name:10s}" + "".join(f"{v:10.2f}" for v in b))
print(f"\nlargest |GD - MLE|   = {np.abs(gd_beta - mle_beta).max():.0e}")
print(f"largest |Adam - MLE| = {np.abs(adam_beta - mle_beta).max():.0e}")

# %% [markdown]
# The gradient vanishes at the Newton solution, so it is the MLE. Adam matches it to about
# $10^{-7}$; gradient descent, still converging after 300 steps, is a few thousandths away.
#
# The Newton step used the Hessian formula above. TensorFlow can compute the same matrix by
# differentiating the gradient (`tape.jacobian`), which checks the formula:

# %%
# NBVAL_CHECK_OUTPUT
b64 = tf.Variable(mle_beta.reshape(-1, 1))
x64, y64 = tf.constant(x_data, tf.float64), tf.constant(y_data, tf.float64)
with tf.GradientTape() as outer:
    with tf.GradientTape() as inner:
        nll = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y64, logits=x64 @ b64))
    grad = inner.gradient(nll, b64)
hess_tf = tf.reshape(outer.jacobian(grad, b64), (N_FEATURES, N_FEATURES)).numpy()
hess_formula = (x_data.astype(np.float64) * (p_mle * (1 - p_mle))[:, None]).T @ x_data / N_OBS
print(f"largest |Hessian formula - tape.jacobian| = {np.abs(hess_formula - hess_tf).max():.0e}")

# %% [markdown]
# To see *how* the optimisers got there, compute the loss at the MLE (the best any method can
# do on this data) and how far above it each optimiser ended, then plot that gap at every step
# on a logarithmic scale, where steady convergence looks like a straight line.

# %%
# TOLERANCE: abs=1e-7 -- nats; the gaps are float32 losses, whose resolution here is 3e-8
t_mle = x_data.astype(np.float64) @ mle_beta
mle_loss = np.mean(np.logaddexp(0.0, t_mle) - y_data.ravel() * t_mle)  # stable form, in NumPy
print(f"loss at the MLE: {mle_loss:.4f} nats; after {N_STEPS} steps: gradient descent "
      f"{gd_loss[-1] - mle_loss:.1e} above it, Adam {adam_loss[-1] - mle_loss:.1e}")

# %%
# NBVAL_CHECK_OUTPUT
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.semilogy(gd_loss - mle_loss, label="gradient descent (lr 0.5)")
ax.semilogy(adam_loss - mle_loss, label="Adam (lr 0.05)")
ax.set_xlabel("training step")
ax.set_ylabel("loss above the MLE's (nats)")
ax.set_ylim(1e-9, 1.0)
ax.legend()
ax.set_title("Logistic regression: distance to the best possible loss")
plt.show()

# %% [markdown]
# *Figure 2.* Excess training loss per step, on a log scale. After about 50 steps, gradient
# descent converges at a steady (linear) rate: a straight line here. Adam closes the gap far
# faster, overshoots once (the bump near step 60, its momentum carrying it past the minimum),
# and by about step 130 the gap is below the resolution of float32 numbers at this loss (one
# unit in the last place is about $3\times10^{-8}$). What remains is rounding: the ragged
# floor.
#
# How good is the fitted model? Its accuracy on the training data, next to the accuracy of the
# *true* coefficients, which is the best any classifier can do on average for this data:

# %%
# NBVAL_CHECK_OUTPUT
with graph.as_default():
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.round(p_hat), y_ph), tf.float32))
acc_fit = session.run(accuracy, feed)
acc_true = np.mean((p_true > 0.5) == (y_data > 0.5))
print(f"accuracy on these labels, fitted beta: {acc_fit:.3f}")
print(f"accuracy on these labels, true beta:   {acc_true:.3f}")

# Expected accuracy on fresh labels for the same inputs: a prediction of 1 is right with
# probability p_true, a prediction of 0 with probability 1 - p_true.
p_fit = session.run(p_hat, feed)
expected_fit = np.mean(np.where(p_fit > 0.5, p_true, 1 - p_true))
expected_true = np.mean(np.maximum(p_true, 1 - p_true))
print(f"expected accuracy on fresh labels, fitted beta: {expected_fit:.3f}")
print(f"expected accuracy on fresh labels, true beta:   {expected_true:.3f}")

# %% [markdown]
# On the labels it was fitted to, the estimate can score slightly higher than the truth: it
# was chosen to fit *this* sample, noise included. On fresh labels drawn from the true model,
# the true coefficients are the best possible classifier, and the fitted ones come close.

# %% [markdown]
# ### The long way: compute, change, then apply the gradients
#
# `minimize` does two things: `compute_gradients` adds the gradient nodes and returns a list of
# (gradient, variable) pairs, and `apply_gradients` adds the op that updates each variable from
# its gradient. Calling the two yourself lets you change the gradients in between. The most
# common change is *gradient clipping*, a guard against a single huge step, say from an
# unlucky batch or a steep cliff in the loss. `tf.clip_by_global_norm(grads, c)` computes the
# *global norm* of all the gradients together, $n = \sqrt{\sum_k \lVert g_k \rVert^2}$, and
# when $n > c$ multiplies every gradient by $c / n$: the direction is kept and the length
# becomes $c$. When $n \le c$ nothing changes. (`tf.clip_by_value` instead clips each entry on
# its own, which can change the direction.)
#
# We clip at $c = 0.1$ and take 40 gradient-descent steps with learning rate 0.5 from
# $\beta = 0$. Each `session.run` fetches the raw and the clipped norm together with the
# update, so both norms are those of the gradient that step used.

# %%
# NBVAL_CHECK_OUTPUT
CLIP_NORM, CLIP_STEPS = 0.1, 40
with graph.as_default():
    clip_opt = tf.compat.v1.train.GradientDescentOptimizer(learning_rate=0.5)
    grads_and_vars = clip_opt.compute_gradients(loss, var_list=[beta])
    clipped_grads, raw_norm = tf.clip_by_global_norm([g for g, _ in grads_and_vars], CLIP_NORM)
    clipped_norm = tf.linalg.global_norm(clipped_grads)
    clip_step = clip_opt.apply_gradients(zip(clipped_grads, [beta]))
print("(gradient, variable) pairs:", [(g.shape, v.name) for g, v in grads_and_vars])

session.run(init)
norms = np.array([session.run([raw_norm, clipped_norm, clip_step], feed)[:2]
                  for _ in range(CLIP_STEPS)])
clip_beta_graph = session.run(beta).ravel()
raw, clipped = norms[:, 0], norms[:, 1]
was_clipped = raw > CLIP_NORM
n_clipped = int(was_clipped.sum())
print(f"raw norm {raw[0]:.3f} at the first step, {raw[-1]:.3f} at the last; "
      f"{n_clipped} steps clipped, all of them at the start: {was_clipped[:n_clipped].all()}")
print("clipped norm == c (to 1e-6) whenever the raw norm exceeds c:",
      np.allclose(clipped[was_clipped], CLIP_NORM, rtol=0, atol=1e-6))
print("clipped norm == raw norm otherwise:", np.array_equal(clipped[~was_clipped],
                                                             raw[~was_clipped]))

# %% [markdown]
# Clipping shortened the first steps only; once the gradient's norm had fallen below $c$, the
# steps were ordinary gradient descent. As an independent check, the same
# 40 steps written out in float64 NumPy (the gradient formula of the Newton solver above, and
# clipping by hand):

# %%
# NBVAL_CHECK_OUTPUT
def numpy_clipped_gd(lr, clip, n_steps):
    x, y = x_data.astype(np.float64), y_data.ravel().astype(np.float64)
    b, count = np.zeros(N_FEATURES), 0
    for _ in range(n_steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * (x @ b)))  # the sigmoid, without overflow
        g = x.T @ (p - y) / len(x)
        norm = np.linalg.norm(g)
        if norm > clip:
            g, count = g * clip / norm, count + 1
        b -= lr * g
    return b, count


clip_beta_numpy, n_clipped_numpy = numpy_clipped_gd(0.5, CLIP_NORM, CLIP_STEPS)
print("clipped steps, graph and NumPy:", n_clipped, n_clipped_numpy)
print("largest |graph - NumPy| in beta below 1e-5:",
      np.abs(clip_beta_graph - clip_beta_numpy).max() < 1e-5)
with graph.as_default():
    restore_beta = beta.assign(adam_beta.reshape(-1, 1))
session.run(restore_beta.op)  # back to the Adam fit, which section 4 prints the loss of

# %% [markdown]
# ### A larger graph, organised by name scopes
#
# Real models have hundreds of ops, so TensorFlow 1 code wraps each part of a model in a
# *name scope*: `with tf.compat.v1.name_scope("hidden"):` prefixes the name of every op created
# inside with `hidden/`. The scopes change nothing in the computation; they make graphs,
# error messages and pictures readable. Here is a *multi-layer perceptron* (MLP) for the same
# data, with one hidden layer of 8 ReLU units ($\mathrm{relu}(t) = \max(t, 0)$), written by
# hand in four scopes: `hidden`, `output`, `loss` and `train`. The initial weights come from
# NumPy's seeded generator.

# %%
# NBVAL_CHECK_OUTPUT
N_HIDDEN = 8
rng_mlp = np.random.default_rng(1)
w1_init = rng_mlp.normal(scale=0.5, size=(N_FEATURES, N_HIDDEN)).astype(np.float32)
w2_init = rng_mlp.normal(scale=0.5, size=(N_HIDDEN, 1)).astype(np.float32)

mlp_graph = tf.Graph()
with mlp_graph.as_default():
    mlp_x = tf.compat.v1.placeholder(tf.float32, (None, N_FEATURES), name="x")
    mlp_y = tf.compat.v1.placeholder(tf.float32, (None, 1), name="y")
    with tf.compat.v1.name_scope("hidden"):
        w1 = tf.Variable(w1_init, name="weights")
        b1 = tf.Variable(tf.zeros(N_HIDDEN), name="bias")
        hidden = tf.nn.relu(mlp_x @ w1 + b1, name="activation")
    with tf.compat.v1.name_scope("output"):
        w2 = tf.Variable(w2_init, name="weights")
        b2 = tf.Variable(tf.zeros(1), name="bias")
        mlp_logits = tf.add(hidden @ w2, b2, name="logits")
    with tf.compat.v1.name_scope("loss"):
        mlp_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=mlp_y, logits=mlp_logits), name="mean_xent")
    with tf.compat.v1.name_scope("train"):
        mlp_step = tf.compat.v1.train.GradientDescentOptimizer(0.5).minimize(mlp_loss)
    mlp_init = tf.compat.v1.global_variables_initializer()

for handle in (w1, hidden, w2, mlp_logits, mlp_loss, mlp_step):
    print(f"{type(handle).__name__:18s} {handle.name}")
mlp_ops = [op for op in mlp_graph.get_operations() if op.type != "NoOp"]
scope_sizes = {}
for op in mlp_ops:
    scope = op.name.split("/")[0]
    scope_sizes[scope] = scope_sizes.get(scope, 0) + 1
print(f"{len(mlp_ops)} ops (NoOps not counted), by top-level scope:", scope_sizes)

# %% [markdown]
# The two variables named `weights` did not clash: their full names are `hidden/weights` and
# `output/weights`. The `train` scope holds most of the ops: `minimize` put the whole backward
# pass (`train/gradients/...`) and the updates there. With `collapse=True`, `plot_graph` draws
# each top-level scope as one box, as TensorBoard does, and the picture shows the model's
# structure instead of a hundred and forty boxes:

# %%
# NBVAL_CHECK_OUTPUT
fig = plot_graph(mlp_graph, collapse=True,
                 title="A one-hidden-layer MLP, each name scope drawn as one box")
n_boxes = sum(type(patch).__name__ == "FancyBboxPatch" for patch in fig.axes[0].patches)
print("boxes drawn:", n_boxes, "| top-level scopes and single ops:", len(scope_sizes))
plt.show()

# %% [markdown]
# *Figure 3.* The MLP's graph with its name scopes collapsed; each box gives the number of ops
# inside it. The placeholders `x` and `y` are orange. `hidden` and `output` are green because
# they hold the variables (a box takes the colour of its most input-like member). Data flows
# down through `hidden`, `output` and `loss`. The arrows into `train` come from the inputs and
# from the forward pass, whose values the backward pass needs.
#
# Running the graph checks that the scopes hold what they say: the loss fetched from the
# session equals the same forward pass written in NumPy. 200 training steps then take the
# training loss below logistic regression's best: the network is a more flexible model, which
# can also fit more of the noise in these 1000 labels.

# %%
# TOLERANCE: abs=1e-4 -- nats; float32 losses of a small network after 200 steps
mlp_feed = {mlp_x: x_data, mlp_y: y_data}
with tf.compat.v1.Session(graph=mlp_graph) as mlp_session:
    mlp_session.run(mlp_init)
    loss_graph = mlp_session.run(mlp_loss, mlp_feed)
    t_np = np.maximum(x_data @ w1_init, 0.0) @ w2_init  # the biases start at zero
    loss_np = np.mean(np.logaddexp(0.0, t_np) - y_data * t_np)
    for _ in range(200):
        mlp_session.run(mlp_step, mlp_feed)
    loss_trained = mlp_session.run(mlp_loss, mlp_feed)
print(f"initial loss: graph {loss_graph:.4f}, NumPy {loss_np:.4f}, "
      f"equal to 1e-5: {abs(loss_graph - loss_np) < 1e-5}")
print(f"after 200 steps: {loss_trained:.4f} (logistic regression's MLE: {mle_loss:.4f})")

# %% [markdown]
# ## 4. Printing inside a graph
#
# Python's `print` runs when *Python* runs, that is while the graph is being built; it sees the
# symbolic handle. `tf.print` adds a print *node* to the graph, which runs every time the
# graph runs and sees the values. In a terminal its output goes to the process's standard
# error; in Jupyter it appears in the cell like ordinary printed output. (With Jupyter kernels
# older than ipykernel 6, output written by TensorFlow's C++ code went only to the terminal
# that started Jupyter, where learners never saw it.)
#
# A print node runs only if something that is fetched depends on it. It produces no value the
# loss needs, so we add a *control dependency*: ops created inside
# `tf.control_dependencies([...])` run only after the listed ops. That is why we create a new
# op there (`tf.identity` of the loss) and fetch it. (Inside a `tf.function`, which we meet
# next, TensorFlow adds such dependencies automatically, so `tf.print` just works.)

# %%
# NBVAL_CHECK_OUTPUT
with graph.as_default():
    print("Python print, while building:", loss)
    print_node = tf.print("tf.print, while running: loss =", loss)
    with tf.control_dependencies([print_node]):
        loss_with_print = tf.identity(loss)

for _ in range(2):
    value = session.run(loss_with_print, feed)
print(f"fetched value: {value:.4f}")

# %% [markdown]
# ## 5. The TensorFlow 2 way: `tf.function`
#
# TensorFlow 2 runs *eagerly*: each operation executes as soon as Python reaches it, like
# NumPy. That makes code easy to write and debug, but every operation pays Python's overhead.
# `tf.function` gives back the graph's speed: the first time a decorated function is called,
# TensorFlow *traces* it, running the Python code once with symbolic tensors and recording
# every operation into a graph. Later calls with compatible inputs run that graph directly.
#
# Here is the same model, fitted with plain gradient descent, written as ordinary Python:

# %%
# NBVAL_CHECK_OUTPUT
print("Executing eagerly?", tf.executing_eagerly())

x_tf, y_tf = tf.constant(x_data), tf.constant(y_data)
beta_v = tf.Variable(tf.zeros((N_FEATURES, 1)), name="beta")
LEARNING_RATE = 0.5


def mean_nll(x, y):
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x @ beta_v)
    )


def gd_step_eager(x, y):
    with tf.GradientTape() as tape:
        value = mean_nll(x, y)
    beta_v.assign_sub(LEARNING_RATE * tape.gradient(value, beta_v))
    return value


gd_step_graph = tf.function(gd_step_eager)  # the same Python function, compiled

# %% [markdown]
# Both versions compute the same thing. Starting from zero each time, 300 steps of each give
# the same coefficients as the hand-built graph:

# %%
# NBVAL_CHECK_OUTPUT
results = {}
for name, step in [("eager", gd_step_eager), ("tf.function", gd_step_graph)]:
    beta_v.assign(tf.zeros_like(beta_v))
    for _ in range(N_STEPS):
        step(x_tf, y_tf)
    results[name] = beta_v.numpy().ravel()
    print(f"{name:12s}", np.round(results[name], 2))
print("graph-mode session", np.round(gd_beta, 2))
gap = np.abs(results["eager"] - results["tf.function"]).max()
gap_session = np.abs(results["tf.function"] - gd_beta).max()
# The coefficients are float32 numbers near 1, so differences below a few machine epsilons are
# round-off (their digits change with the CPU and the TensorFlow version; that they are tiny
# does not).
tiny = 10 * np.finfo(np.float32).eps
print(f"largest |eager - tf.function| below {tiny:.1e} (10 float32 epsilons): {gap < tiny}")
print(f"largest |tf.function - session| below {tiny:.1e}: {gap_session < tiny}")

# %% [markdown]
# ### `tf.GradientTape`: what it records, and for how long
#
# Both steps differentiate with a `GradientTape`. While its `with` block runs, the tape
# records the operations applied to the tensors it *watches*; `tape.gradient(target, sources)`
# then runs the recording backwards (reverse-mode automatic differentiation). For a vector
# target it differentiates the *sum* of the entries, which for a function applied entry by
# entry gives each entry's derivative. Three details matter in practice:
#
# * A tape releases its recording after the first `gradient` call, to free memory. To ask
#   for several gradients, create it with `persistent=True`, and `del` it when done.
# * Trainable variables are watched automatically. A constant tensor is not: unless you call
#   `tape.watch(x)`, its gradient is `None`, with no error.
# * Computing a gradient is itself a sequence of operations, so an outer tape can record it:
#   nested tapes give second derivatives. (Section 3 used this for the Hessian.)
#
# First two gradients from one persistent tape, checked against the closed forms
# $\sigma'(x) = \sigma(x)\,(1 - \sigma(x))$ and $(x^3)' = 3x^2$ in float64, then the same
# two requests to an ordinary tape:

# %%
# NBVAL_CHECK_OUTPUT
x_pts = tf.constant([-2.0, 0.0, 1.0, 3.0], tf.float64)
sig_np = 1.0 / (1.0 + np.exp(-x_pts.numpy()))

with tf.GradientTape(persistent=True) as tape:
    tape.watch(x_pts)  # a constant: watch it explicitly
    s, cube = tf.sigmoid(x_pts), x_pts**3
d_sigmoid, d_cube = tape.gradient(s, x_pts), tape.gradient(cube, x_pts)
del tape
print("persistent tape, sigmoid' == s(1 - s) to 1e-12:",
      np.allclose(d_sigmoid, sig_np * (1 - sig_np), rtol=1e-12, atol=0))
print("persistent tape, (x^3)'   == 3 x^2   to 1e-12:",
      np.allclose(d_cube, 3 * x_pts.numpy() ** 2, rtol=1e-12, atol=0))

with tf.GradientTape() as tape:  # not persistent
    tape.watch(x_pts)
    s, cube = tf.sigmoid(x_pts), x_pts**3
tape.gradient(s, x_pts)  # the first call works
try:
    tape.gradient(cube, x_pts)
except RuntimeError as err:
    print("ordinary tape, second gradient call: RuntimeError:", err)

# %% [markdown]
# Forgetting `watch` does not fail loudly, which makes it a classic bug:

# %%
# NBVAL_CHECK_OUTPUT
with tf.GradientTape() as tape:
    s = tf.sigmoid(x_pts)  # x_pts is a constant, and not watched
print("gradient with respect to an unwatched constant:", tape.gradient(s, x_pts))

x_var = tf.Variable(x_pts)
with tf.GradientTape() as tape:
    s = tf.sigmoid(x_var)  # a variable is watched without being told
print("gradient with respect to a variable equals the watched constant's:",
      np.array_equal(tape.gradient(s, x_var), d_sigmoid))

# %% [markdown]
# For the second derivative, the inner tape's `gradient` call must run *inside* the outer
# tape's block, so that the outer tape records it. The closed forms are
# $\sigma''(x) = \sigma(1-\sigma)(1-2\sigma)$ and $(x^3)'' = 6x$:

# %%
# NBVAL_CHECK_OUTPUT
def second_derivative(f, x):
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = f(x)
        dy_dx = inner.gradient(y, x)  # recorded by the outer tape
    return outer.gradient(dy_dx, x)


d2_sigmoid = second_derivative(tf.sigmoid, x_pts).numpy()
d2_closed = sig_np * (1 - sig_np) * (1 - 2 * sig_np)
print("x                        :", x_pts.numpy())
print("sigmoid'', nested tapes  :", np.round(d2_sigmoid, 6) + 0.0)  # + 0.0 turns -0.0 into 0.0
print("s (1 - s) (1 - 2 s)      :", np.round(d2_closed, 6) + 0.0)
print("agree to 1e-12:", np.allclose(d2_sigmoid, d2_closed, rtol=0, atol=1e-12))
d2_cube = second_derivative(lambda x: x**3, x_pts).numpy()
print("(x^3)'' == 6x to 1e-12:", np.allclose(d2_cube, 6 * x_pts.numpy(), rtol=0, atol=1e-12))

# %% [markdown]
# ### Clipped steps, the TensorFlow 2 way
#
# In TensorFlow 2 the long way of section 3 is the usual way: the tape gives the gradients,
# you may change them, and the optimiser's `apply_gradients` takes (gradient, variable) pairs,
# as before. Keras optimisers can also clip for you: `global_clipnorm=c` clips by the global
# norm inside `apply_gradients` (and `clipnorm`, `clipvalue` clip each gradient separately).
# Both versions, from $\beta = 0$, must give the graph's 40 clipped steps; without clipping,
# they must not:

# %%
# NBVAL_CHECK_OUTPUT
def clipped_gd_tf2(optimizer, clip_by_hand):
    beta_v.assign(tf.zeros_like(beta_v))
    for _ in range(CLIP_STEPS):
        with tf.GradientTape() as tape:
            value = mean_nll(x_tf, y_tf)
        grads = tape.gradient(value, [beta_v])
        if clip_by_hand:
            grads, _ = tf.clip_by_global_norm(grads, CLIP_NORM)
        optimizer.apply_gradients(zip(grads, [beta_v]))
    return beta_v.numpy().ravel()


variants = [
    ("tape + clip_by_global_norm + SGD", keras.optimizers.SGD(learning_rate=0.5), True),
    ("tape + SGD(global_clipnorm=0.1)",
     keras.optimizers.SGD(learning_rate=0.5, global_clipnorm=CLIP_NORM), False),
    ("tape + SGD, no clipping", keras.optimizers.SGD(learning_rate=0.5), False),
]
for label, optimizer_tf2, by_hand in variants:
    gap = np.abs(clipped_gd_tf2(optimizer_tf2, by_hand) - clip_beta_graph).max()
    print(f"{label:34s} same beta as the graph (within {tiny:.1e}): {gap < tiny}")

# %% [markdown]
# ### Tracing and concrete functions
#
# A `tf.function` keeps one graph, a *concrete function*, per input signature (dtypes and
# shapes of tensor arguments, values of Python arguments). A Python side effect such as
# `print` happens only while tracing, so it tells us when a trace happens:

# %%
# NBVAL_CHECK_OUTPUT
@tf.function
def predict(x):
    print("  (tracing predict for input shape", x.shape, ")")
    return tf.sigmoid(x @ beta_v)


predict(x_tf[:10])
predict(x_tf[10:20])  # same shape and dtype: no new trace
predict(x_tf[:3])  # a new shape: traced again
print("number of traces:", predict.experimental_get_tracing_count())

# %% [markdown]
# To get one graph for every batch size, give a signature with `None` for the open dimension.
# The concrete function is an object you can inspect: its inputs, outputs and the graph
# itself.

# %%
# NBVAL_CHECK_OUTPUT
concrete = predict.get_concrete_function(tf.TensorSpec([None, N_FEATURES], tf.float32))
print("inputs :", concrete.inputs[0])
print("outputs:", concrete.outputs[0])
print("ops    :", [op.type for op in concrete.graph.get_operations()])
predict(x_tf[:7])
predict(x_tf[:11])  # any number of rows now matches the (None, 5) graph
print("traces after calls with 7 and 11 rows:", predict.experimental_get_tracing_count())

# %%
# NBVAL_CHECK_OUTPUT
fig = plot_graph(concrete, title="The graph tf.function traced for predict(x)")
plt.show()

# %% [markdown]
# *Figure 4.* The traced graph of `predict`. The input `x` became a placeholder (orange). The
# variable was *captured*: the function receives a handle to it as an extra input (green)
# and reads its current value with `ReadVariableOp`. `Identity` marks the output. It is the
# forward part of section 2's graph (x, MatMul, Sigmoid), written for us by TensorFlow. (The
# `NoOp` in the list above, not drawn, is where TensorFlow hangs a function's side effects;
# `predict` has none.)

# %% [markdown]
# ### The retracing pitfall
#
# Python numbers are part of the signature by *value*. A function called with many different
# Python floats is traced again for each one, and tracing (running the Python code and building
# a new graph) is far slower than running a graph, as we measure below. Passing a tensor
# instead keeps one trace:

# %%
# NBVAL_CHECK_OUTPUT
@tf.function
def scaled_logits(x, factor):
    return factor * (x @ beta_v)


for factor in [0.5, 1.0, 1.5, 2.0]:
    scaled_logits(x_tf, factor)  # Python float: a new trace per value
print("traces with Python floats:", scaled_logits.experimental_get_tracing_count())


@tf.function
def scaled_logits_t(x, factor):
    return factor * (x @ beta_v)


for factor in [0.5, 1.0, 1.5, 2.0]:
    scaled_logits_t(x_tf, tf.constant(factor))  # a tensor: one trace
print("traces with tensors:      ", scaled_logits_t.experimental_get_tracing_count())

# %% [markdown]
# How expensive is a trace? Time a call that must trace (a Python float never seen before)
# against a call that reuses its graph:

# %%
# TOLERANCE: timing
new_factors = iter(np.linspace(3.0, 4.0, 1000).tolist())
t_retrace = timing.measure(lambda: scaled_logits(x_tf, next(new_factors)).numpy(),
                           repeats=5, warmup=0)
t_cached = timing.measure(lambda: scaled_logits_t(x_tf, tf.constant(1.0)).numpy(), repeats=5,
                          number=20)
print(f"call that traces: {t_retrace}")
print(f"call that reuses: {t_cached}")
print(f"a trace costs about {t_retrace.median / t_cached.median:.0f} graph calls")

# %% [markdown]
# ### Python side effects run once per trace
#
# Section 4 showed that `print` runs while the graph is built and `tf.print` while it runs.
# Inside a `tf.function` this holds for *every* Python side effect: incrementing a Python
# counter, appending to a list, writing to a file. They happen while tracing, not on each call,
# so a Python counter counts traces. State that must change on every call has to live in the
# graph: a `tf.Variable` updated with `assign_add` is an op, and runs each time, as does
# `tf.print`. We call a function three times with scalars, then once with a vector, a new
# input signature:

# %%
# NBVAL_CHECK_OUTPUT
python_counter = 0
traced_inputs = []
call_counter = tf.Variable(0)


@tf.function
def double(x):
    global python_counter
    python_counter += 1  # Python: runs while tracing
    traced_inputs.append(x)  # Python: keeps the trace's symbolic input
    call_counter.assign_add(1)  # an op: runs on every call
    tf.print("  tf.print: x =", x)  # an op: runs on every call
    return 2 * x


for value in (1.0, 2.0, 3.0):
    double(tf.constant(value))
print(f"after 3 scalar calls: Python counter {python_counter}, "
      f"tf.Variable counter {int(call_counter)}, list length {len(traced_inputs)}")
double(tf.constant([4.0, 5.0]))  # a new shape: a new trace
print(f"after a vector call:  Python counter {python_counter}, "
      f"tf.Variable counter {int(call_counter)}, list length {len(traced_inputs)}")
print("Python counter == tracing count:",
      python_counter == double.experimental_get_tracing_count())
print("the list holds symbolic tensors, not values:",
      all(tf.is_symbolic_tensor(t) for t in traced_inputs))

# %% [markdown]
# The list did not collect the values 1, 2, 3, 4, 5: it holds two placeholders of graphs that
# have finished tracing, which have no value and cannot be used outside their graph. To
# collect values across calls, return them, or write them into a variable or a
# `tf.TensorArray`.
#
# ### AutoGraph: Python control flow on tensors
#
# Python's `if` and `while` need `True` or `False` the moment they run, but while tracing, a
# condition that depends on an input tensor has no value yet. So `tf.function` first passes
# the function through *AutoGraph*, which rewrites every `if`, `for` and `while` whose
# condition is a tensor into graph control flow (`tf.cond`, `tf.while_loop`); statements on
# plain Python values run during tracing, as before. Our example is Newton's method for
# $\sqrt{a}$, $x \leftarrow (x + a/x)/2$, started at $\max(a, 1)$ and repeated until
# $|x^2 - a| \le 10^{-12} a$, so the number of iterations depends on the data. `to_code` shows
# the rewritten Python (we list only the control-flow calls it makes) and the concrete function
# the graph ops they became:

# %%
# NBVAL_CHECK_OUTPUT
def newton_sqrt(a):
    if a > 1.0:  # a tensor condition
        x = a
    else:
        x = tf.ones_like(a)
    n_iter = tf.constant(0)
    while tf.abs(x * x - a) > 1e-12 * a:  # a tensor condition: a loop inside the graph
        x = 0.5 * (x + a / x)
        n_iter += 1
    return x, n_iter


newton_sqrt_graph = tf.function(newton_sqrt)
rewritten = tf.autograph.to_code(newton_sqrt)
print("AutoGraph's control-flow calls:", sorted(set(re.findall(r"ag__\.\w+_stmt", rewritten))))
sqrt_graph = newton_sqrt_graph.get_concrete_function(tf.TensorSpec((), tf.float64)).graph
print("control-flow ops in the graph: ",
      [op.type for op in sqrt_graph.get_operations() if "If" in op.type or "While" in op.type])

# %% [markdown]
# Called eagerly, the same Python function runs its `if` and `while` as ordinary Python on
# eager tensors. Both must agree, with each other and with NumPy, for inputs that take each
# branch and different numbers of iterations, all from one graph:

# %%
# NBVAL_CHECK_OUTPUT
for a in (0.25, 2.0, 1e6):
    a_t = tf.constant(a, tf.float64)
    root_eager, n_eager = newton_sqrt(a_t)
    root_graph, n_graph = newton_sqrt_graph(a_t)
    same = float(root_graph) == float(root_eager) and int(n_graph) == int(n_eager)
    near = abs(float(root_graph) - np.sqrt(a)) <= 1e-12 * np.sqrt(a)
    print(f"a = {a:9g}: {int(n_graph):2d} iterations, graph == eager: {same}, "
          f"within 1e-12 of np.sqrt: {near}")
print("traces:", newton_sqrt_graph.experimental_get_tracing_count())

# %% [markdown]
# ### Eager versus graph: measured
#
# How much does compiling save? `tfpcourse.timing.measure` calls a function once untimed (so
# tracing is not counted), then reports the median of repeated timed rounds. An eager step
# makes Python dispatch each of its operations one by one; a graph step hands them all to
# TensorFlow's C++ runtime in one call. So the saving should be large when each operation does
# little work, and shrink when the arithmetic dominates. We time the step on our 1,000 rows
# and on 100 times more data (the numbers depend on your machine; on the machine that made
# these outputs, the speed-up does shrink with the larger data):

# %%
# TOLERANCE: timing
x_big = tf.constant(np.tile(x_data, (100, 1)))
y_big = tf.constant(np.tile(y_data, (100, 1)))
for label, (xs, ys) in [("1,000 rows", (x_tf, y_tf)), ("100,000 rows", (x_big, y_big))]:
    t_eager = timing.measure(lambda xs=xs, ys=ys: gd_step_eager(xs, ys).numpy(), repeats=7,
                             number=10)
    t_graph = timing.measure(lambda xs=xs, ys=ys: gd_step_graph(xs, ys).numpy(), repeats=7,
                             number=10)
    print(f"{label}: eager {t_eager.median * 1e3:.2f} ms, tf.function "
          f"{t_graph.median * 1e3:.2f} ms per step, "
          f"speed-up {t_eager.median / t_graph.median:.1f}x")

# %% [markdown]
# ## 6. A small classifier on MNIST
#
# Now a real dataset. MNIST {cite:p}`lecun1998mnist` (licence CC BY-SA 3.0) has
# 70,000 images of handwritten digits, 28 by 28 grey-scale pixels. `tfpcourse.data` downloads
# the original files once, checks each against a pinned SHA-256 checksum, and caches them, so
# everybody trains on exactly the same bytes.

# %%
mnist = data.mnist()  # downloads and verifies on first use; later loads come from the cache

# %%
# NBVAL_CHECK_OUTPUT
print("train:", mnist.train.images.shape, mnist.train.images.dtype,
      "| labels", mnist.train.labels.shape)
print("test: ", mnist.test.images.shape, mnist.test.images.dtype,
      "| labels", mnist.test.labels.shape)
print("first ten training labels:", mnist.train.labels[:10])
print("examples per class (train):", np.bincount(mnist.train.labels))

# %%
# NBVAL_CHECK_OUTPUT
fig = image_grid(mnist.train.images[:20], labels=mnist.train.labels[:20], ncols=10,
                 title="The first 20 MNIST training images and their labels")
plt.show()

# %% [markdown]
# *Figure 5.* The first twenty training images, each titled with its label.
#
# The input pipeline scales pixels to $[0, 1]$ (no binarisation: this classifier uses the
# intensities), shuffles with a fixed seed, batches, and prefetches the next batch while the
# current one trains. In the `smoke` profile it takes only a small subset.

# %%
# TOLERANCE: abs=0 -- epochs and batches per epoch, fixed by the profile
BATCH = 128
EPOCHS = cfg.pick(full=5, smoke=1)
train_ds = pipelines.image_dataset(
    mnist.train.images, mnist.train.labels, batch_size=BATCH, shuffle=True, seed=0,
    subset=cfg.pick(full=None, smoke=2048), add_channel=False,
)
test_ds = pipelines.image_dataset(
    mnist.test.images, mnist.test.labels, batch_size=1000,
    subset=cfg.pick(full=None, smoke=1000), add_channel=False,
)
print(f"{EPOCHS} epoch(s) of {len(train_ds)} batches of {BATCH}")

# %% [markdown]
# The model is a multi-layer perceptron: flatten the image, one hidden layer of 256 ReLU units,
# and 10 outputs, the *logits* of the ten classes. The training step is the pattern every
# later chapter uses: compute the loss under a `GradientTape`, take its gradient with respect
# to the trainable variables, and let the optimiser apply it, all inside one `tf.function`.

# %%
# NBVAL_CHECK_OUTPUT
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((28, 28)),
    keras.layers.Flatten(),
    keras.layers.Dense(256, activation="relu"),
    keras.layers.Dense(10),
])
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        value = xent(labels, logits)
    grads = tape.gradient(value, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    correct = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels)
    return value, tf.reduce_mean(tf.cast(correct, tf.float32))


@tf.function
def count_correct(images, labels):
    predicted = tf.argmax(model(images, training=False), axis=1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int32))


def test_accuracy():
    correct = sum(int(count_correct(x, y)) for x, y in test_ds)
    return correct / sum(int(tf.shape(y)[0]) for _, y in test_ds)


print(f"{model.count_params():,} parameters")

# %%
# TOLERANCE: abs=0.005 -- test accuracies; step and trace counts must not change
step_accuracy, epoch_test_accuracy = [], []
start = time.perf_counter()
for epoch in range(EPOCHS):
    for images, labels in train_ds:
        _, acc = train_step(images, labels)
        step_accuracy.append(float(acc))
    epoch_test_accuracy.append(test_accuracy())
    print(f"epoch {epoch + 1}: test accuracy {epoch_test_accuracy[-1]:.4f}")
elapsed = time.perf_counter() - start
n_steps = len(step_accuracy)
print(f"{n_steps} steps in {elapsed:.1f} s, test evaluation included "
      f"({1e3 * elapsed / n_steps:.1f} ms per step); "
      f"train_step traced {train_step.experimental_get_tracing_count()} time(s)")

# %% [markdown]
# The step was traced three times, then ran as a graph for every batch. The first call traces
# twice, because it creates Adam's moment variables (a `tf.function` may create variables only
# on its first trace, so it traces once more without creating them). The third trace is for
# the smaller last batch of each epoch (60,000 = 468 x 128 + 96), a new input shape.

# %%
# NBVAL_CHECK_OUTPUT
fig, ax = plt.subplots(figsize=(6.5, 3.5))
steps = np.arange(1, len(step_accuracy) + 1)
window = max(1, min(50, len(step_accuracy) // 10))
smoothed = np.convolve(step_accuracy, np.ones(window) / window, mode="valid")
ax.plot(steps, step_accuracy, color="C0", alpha=0.25, lw=0.8, label="training batch")
ax.plot(steps[window - 1:], smoothed, color="C0", label=f"training, mean of {window} batches")
epoch_ends = np.arange(1, EPOCHS + 1) * len(train_ds)
ax.plot(epoch_ends, epoch_test_accuracy, "o-", color="C3", label="test set, end of epoch")
ax.set_xlabel("training step")
ax.set_ylabel("accuracy")
ax.set_ylim(0.8, 1.0)
ax.legend(loc="lower right")
ax.set_title("MLP on MNIST")
plt.show()

# %% [markdown]
# *Figure 6.* Accuracy on each training batch (light), its running mean, and accuracy on the
# 10,000 test images after each epoch (red); the first few dozen steps, below 80%, are cut
# off. A network with one hidden layer gets about 97.5% of the test digits right within five
# epochs. Training batches end about a point higher than the test set: a small
# generalisation gap.

# %% [markdown]
# ## Summary
#
# * A TensorFlow graph has placeholders (fed at run time), variables (persistent state, the
#   only thing optimisers change) and operations (recomputed on demand). Python objects are
#   handles to nodes, and every TensorFlow call in graph mode adds a node.
# * A session runs the fetched nodes and only what they depend on, each once per run: fetch
#   together what must come from the same evaluation. Placeholders must be fed. `eval()` uses
#   the default session.
# * Fitting logistic regression by gradient descent or Adam reaches the maximum-likelihood
#   estimate, which we checked against an independent Newton solver.
# * Use the stable `sigmoid_cross_entropy_with_logits`, not `log(sigmoid(t) + eps)`.
# * `compute_gradients` and `apply_gradients` (or a tape and `apply_gradients`) let you change
#   gradients before a step; {term}`gradient clipping` by the global norm shortens a long
#   step and keeps its direction.
# * Name scopes prefix op names and let graph pictures collapse whole parts of a model.
# * A tape gives one gradient unless persistent, ignores unwatched constants (gradient
#   `None`), and nested tapes give higher derivatives.
# * `print` runs while building or tracing; `tf.print` runs with the graph.
# * `tf.function` traces Python into the same kind of graph; it retraces for new shapes and
#   for new Python values, so pass tensors and give signatures. Python side effects run once
#   per trace; count calls with a `tf.Variable`. {term}`AutoGraph` turns `if` and `while` on
#   tensors into graph control flow.
# * A compiled training step is the building block of every later chapter.
#
# **Glossary:** {term}`computation graph`, {term}`tracing`, {term}`AutoGraph`,
# {term}`gradient clipping`, {term}`nat`.
#
# The next chapter introduces TensorFlow Probability's distributions.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your answer, followed by a *check cell* that tells you whether
# the answer is right and, if not, what differs. In this copy the answer cells hold worked
# solutions; the student version of the notebook (`tfpcourse student`) replaces them by hints
# and answers set to `None`. Fill in an answer cell, run it, then run the check below it.
#
# **1 (warm-up). The gradient by hand.** The gradient of the mean logistic loss is
# $X^\top(\sigma(X\beta) - y)/n$. Compute it with NumPy at $\beta$ = `true_beta`, as a vector
# of 5 numbers `grad_numpy`. Then compute `grad_tape`, the gradient that `tf.GradientTape`
# gives for `mean_nll` (section 5) at the same $\beta$. How large is the largest difference?

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: grad_numpy, grad_tape
# hint: x_data @ true_beta gives one logit per row; the sigmoid turns them into probabilities.
# hint: the formula gives shape (5, 1): .ravel() turns it into a vector of 5 numbers.
# hint: mean_nll reads the variable beta_v: set it to true_beta first (beta_v.assign), then
# hint: record mean_nll(x_tf, y_tf) on a tape and ask the tape for the gradient.
# wrong: grad_numpy = (x_data.T @ (y_data - sigma) / N_OBS).ravel()  # sign flipped
# wrong: grad_numpy = (x_data.T @ (sigma - y_data)).ravel()  # the sum's gradient, not the mean's
# wrong: grad_tape = grad_tape.reshape(-1, 1)  # forgot .ravel(): shape (5, 1)
sigma = 1.0 / (1.0 + np.exp(-(x_data @ true_beta)))
grad_numpy = (x_data.T @ (sigma - y_data) / N_OBS).ravel()
beta_v.assign(true_beta)
with tf.GradientTape() as tape:
    value = mean_nll(x_tf, y_tf)
grad_tape = tape.gradient(value, beta_v).numpy().ravel()
print("NumPy        :", np.round(grad_numpy, 4))
print("GradientTape :", np.round(grad_tape, 4))
print("agree to 1e-6:", np.allclose(grad_numpy, grad_tape, atol=1e-6))

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: automatic differentiation of the loss in float64.
beta_ref = tf.Variable(true_beta.astype(np.float64))
with tf.GradientTape() as tape_ref:
    loss_ref = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=y64, logits=x64 @ beta_ref))
grad_ref = tape_ref.gradient(loss_ref, beta_ref).numpy().ravel()
print(check.close("grad_numpy", grad_numpy, expected=grad_ref, atol=1e-6))
print(check.close("grad_tape", grad_tape, expected=grad_ref, atol=1e-6))

# %% [markdown]
# **2 (formula). How precise is the MLE?** The curvature of the loss at its minimum says how
# sharply the data pin $\beta$ down. For large $n$ the MLE is approximately Normal around the
# true $\beta$, with covariance $(nH)^{-1}$, where $H$ is the Hessian of the *mean* loss at the
# MLE (section 3). Compute the standard errors `std_errors` (the square roots of the diagonal
# of that covariance, a vector of 5) and the z-scores `z_scores`, the differences between
# `mle_beta` and `true_beta` in units of the standard errors. Are the differences of the size
# that sampling error predicts?

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: std_errors, z_scores
# hint: H is hess_formula from section 3; np.linalg.inv inverts a matrix, np.diag takes a
# hint: diagonal. Mind the factor n.
# hint: true_beta has shape (5, 1) and mle_beta shape (5,): subtract true_beta.ravel().
# wrong: std_errors = np.sqrt(np.diag(np.linalg.inv(hess_formula)))  # forgot the factor n
# wrong: std_errors = 1 / np.sqrt(np.diag(N_OBS * hess_formula))  # inverted the diagonal only
# wrong: z_scores = (mle_beta - true_beta) / std_errors  # broadcasts to shape (5, 5)
# wrong: z_scores = (true_beta.ravel() - mle_beta) / std_errors  # sign flipped
covariance = np.linalg.inv(N_OBS * hess_formula)
std_errors = np.sqrt(np.diag(covariance))
z_scores = (mle_beta - true_beta.ravel()) / std_errors
print("standard errors:", np.round(std_errors, 3))
print("z-scores       :", np.round(z_scores, 2))
print("largest |z|    :", f"{np.abs(z_scores).max():.2f}")
# All |z| are below 1: the MLE differs from the truth by ordinary sampling error. (A |z|
# above 3 would be a surprise, and a sign that the model or the data were not as assumed.)

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
# Reference: the Hessian from tape.jacobian (section 3), not the formula.
se_ref = np.sqrt(np.diag(np.linalg.inv(N_OBS * hess_tf)))
print(check.close("std_errors", std_errors, expected=se_ref, rtol=1e-4))
print(check.close("z_scores", z_scores, expected=(mle_beta - true_beta.ravel()) / se_ref,
                  atol=1e-3))

# %% [markdown]
# **3 (tracing). One trace for every batch size.** Write `predict_any` like `predict`
# (section 5), but with `input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32)]`.
# Call it on batches of 10, 20 and 3 rows and show that it was traced once. The check calls it
# on more batch sizes and counts the traces again.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: predict_any
# hint: the signature goes into the decorator: @tf.function(input_signature=[...]).
# hint: predict_any.experimental_get_tracing_count() counts the traces.
# wrong: predict_any = tf.function(lambda x: tf.sigmoid(x @ beta_v))  # no signature: retraces
# wrong: predict_any = tf.function(lambda x: x @ beta_v, input_signature=any_rows)  # no sigmoid
any_rows = [tf.TensorSpec([None, N_FEATURES], tf.float32)]  # None: any number of rows


@tf.function(input_signature=any_rows)
def predict_any(x):
    return tf.sigmoid(x @ beta_v)


for n in (10, 20, 3):
    predict_any(x_tf[:n])
print("number of traces:", predict_any.experimental_get_tracing_count())


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def returns_sigmoid(f):
    if f is None:
        return None  # not answered yet
    x4 = x_tf[:4]
    return np.allclose(f(x4).numpy(), tf.sigmoid(x4 @ beta_v).numpy(), atol=1e-6)


def traced_once(f):
    if f is None:
        return None
    for n in (7, 1, 50):  # more batch sizes
        f(x_tf[:n])
    return f.experimental_get_tracing_count() == 1


print(check.that("predict_any", lambda: returns_sigmoid(predict_any),
                 "predict_any(x) returns sigmoid(x @ beta_v)"))
print(check.that("predict_any", lambda: traced_once(predict_any),
                 "predict_any was traced once, for batches of 10, 20, 3, 4, 7, 1 and 50 rows"))

# %% [markdown]
# **4 (explore). Learning rates.** Refit the hand-built graph with gradient descent at learning
# rates 0.05, 0.5, 5 and 20. Which ones reach the MLE's loss `mle_loss` to 4 decimals (a
# difference below $5 \times 10^{-5}$) within 300 steps? Store them, in increasing order, in
# the list `reached`. Why does a larger step not always help? Near a minimum the loss is
# almost quadratic, and gradient descent on a quadratic is stable only when the learning rate
# is below $2/\lambda_{\max}$, where $\lambda_{\max}$ is the largest eigenvalue of the
# Hessian. Store that eigenvalue at the MLE as `lambda_max`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: lambda_max, reached
# hint: np.linalg.eigvalsh gives the eigenvalues of a symmetric matrix, in increasing order;
# hint: the Hessian at the MLE is hess_formula.
# hint: build each optimiser's step op as in section 3, inside `with graph.as_default():`.
# hint: fit(step_op, N_STEPS) resets beta to 0, takes the steps and returns the loss history.
# wrong: lambda_max = np.linalg.eigvalsh(hess_formula)[0]  # eigvalsh sorts increasing: smallest
# wrong: reached = [lr for lr in (0.05, 0.5, 5.0, 20.0) if lr < 2 / lambda_max]  # bound, no runs
# wrong: reached = [0.5, 5.0, 20.0]  # "a larger step is always at least as good"
lambda_max = np.linalg.eigvalsh(hess_formula)[-1]
print(f"largest Hessian eigenvalue at the MLE {lambda_max:.3f}, "
      f"so 2 / lambda_max = {2 / lambda_max:.1f}")
reached = []
for lr in (0.05, 0.5, 5.0, 20.0):
    with graph.as_default():
        step_op = tf.compat.v1.train.GradientDescentOptimizer(lr).minimize(loss)
    history, _ = fit(step_op, N_STEPS)
    if abs(history[-1] - mle_loss) < 5e-5:
        reached.append(lr)
    print(f"lr {lr:4}: final loss {history[-1]:.4f}")
print("reached the MLE's loss:", reached)
# 0.05 is stable but too slow: 300 small steps are not enough. 20 is above 2 / lambda_max:
# near the minimum each step overshoots by more than it corrects, so the iterates cannot
# settle. (At beta = 0 the largest eigenvalue is larger, so the stable range starts smaller.)

# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def numpy_gd_reaches(lr, n_steps=N_STEPS):
    """Gradient descent in float64 NumPy from beta = 0: does it reach the MLE's loss?"""
    x, y = x_data.astype(np.float64), y_data.ravel().astype(np.float64)
    b = np.zeros(N_FEATURES)
    for _ in range(n_steps):
        p = 0.5 * (1.0 + np.tanh(0.5 * (x @ b)))  # the sigmoid, without overflow
        b -= lr * x.T @ (p - y) / N_OBS
    t = x @ b
    return abs(np.mean(np.logaddexp(0.0, t) - y * t) - mle_loss) < 5e-5


print(check.close("lambda_max", lambda_max, expected=np.linalg.eigvalsh(hess_tf)[-1],
                  rtol=1e-4))
print(check.equal("reached", reached,
                  [lr for lr in (0.05, 0.5, 5.0, 20.0) if numpy_gd_reaches(lr)]))

# %% [markdown]
# **5 (trap). Count calls, not traces.** Write `counted_predict`, a `tf.function` that returns
# `tf.sigmoid(x @ beta_v)` like `predict` and counts how often it *runs* in `n_runs`, a
# `tf.Variable(0)` that you create before the function. Call it on the first 10, 10, 20, 10
# and 3 rows of `x_tf`. Then store `int(n_runs)` in `runs_seen` and the number of traces in
# `traces_seen`. The check calls `counted_predict` again and watches `n_runs`.

# %% tags=["solution"]
# NBVAL_CHECK_OUTPUT
# answer: counted_predict, n_runs, runs_seen, traces_seen
# hint: a Python `+= 1` inside a tf.function runs only while tracing; n_runs.assign_add(1) is
# hint: an op, so it runs on every call.
# hint: counted_predict.experimental_get_tracing_count() counts the traces.
# wrong: runs_seen = traces_seen  # the tracing count, not the call count
# wrong: traces_seen = runs_seen  # "Python runs on every call"
# wrong: counted_predict = tf.function(lambda x: tf.sigmoid(x @ beta_v))  # forgot to count
n_runs = tf.Variable(0)


@tf.function
def counted_predict(x):
    n_runs.assign_add(1)
    return tf.sigmoid(x @ beta_v)


for n in (10, 10, 20, 10, 3):
    counted_predict(x_tf[:n])
runs_seen = int(n_runs)
traces_seen = counted_predict.experimental_get_tracing_count()
print(f"runs: {runs_seen}, traces: {traces_seen} (one per new batch size)")


# %% tags=["check"]
# NBVAL_CHECK_OUTPUT
def counts_every_run(f, counter):
    """Call f twice more: it must return the sigmoid and add 2 to the counter."""
    if f is None or counter is None:
        return None  # not answered yet
    before = int(counter)
    x4 = x_tf[:4]
    right = all(np.allclose(f(x4).numpy(), tf.sigmoid(x4 @ beta_v).numpy(), atol=1e-6)
                for _ in range(2))
    return right and int(counter) - before == 2


batch_sizes = (10, 10, 20, 10, 3)
probe = tf.function(lambda x: x)  # an independent count of the traces these calls need
for n in batch_sizes:
    probe(x_tf[:n])
print(check.equal("runs_seen", runs_seen, len(batch_sizes)))
print(check.equal("traces_seen", traces_seen, probe.experimental_get_tracing_count()))
print(check.that("counted_predict", lambda: counts_every_run(counted_predict, n_runs),
                 "two more calls return sigmoid(x @ beta_v) and add 2 to n_runs"))
