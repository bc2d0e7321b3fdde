"""The training loop on several devices and in mixed precision.

There is no GPU here, so several devices are two *logical* CPUs (``device.setup(logical_cpus=2)``),
which must be configured before TensorFlow starts: each scenario runs in a fresh Python process.
What a real multi-GPU box adds (NCCL all-reduce, float16 speed) is not tested here.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Float tolerance between one and two devices: the two replicas' gradients are summed in another
# order than one device sums its batch, so results agree to float32 round-off (a few ulps per
# step, amplified by Adam's division by sqrt(v)), not bit for bit.
RTOL = 1e-5
ATOL = 1e-6

SCENARIO = r"""
import json, sys
from tfpcourse import device

devices, resume_from, save_to = int(sys.argv[1]), sys.argv[2], sys.argv[3]
strategy = device.setup(logical_cpus=devices if devices > 1 else None, verbose=False)
import numpy as np
import tensorflow as tf

tf.config.experimental.enable_op_determinism()
from tfpcourse import training


class Regression(tf.Module):
    # A deterministic loss: the same on any number of devices.
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.zeros((3, 1)), name="w")
        self.b = tf.Variable(tf.zeros(1), name="b")

    def loss(self, batch, seed):
        x, y = batch
        error = tf.matmul(x, self.w) + self.b - y
        return tf.reduce_mean(tf.square(error)), {"mae": tf.reduce_mean(tf.abs(error))}


rng = np.random.default_rng(0)
x = rng.normal(size=(70, 3)).astype(np.float32)
y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(70, 1)))
# Batches of 15, 15, 15, 15 and 10: each 15 splits 8 + 7 between two replicas, so the metrics
# must weight the replicas by their shares (a plain mean of replica means would not match).
data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32))).batch(15)


def build():
    with strategy.scope():
        return Regression()


def summary(model, history):
    return {"loss": history.train["loss"], "mae": history.train["mae"],
            "valid": history.valid.get("loss", []),
            "w": model.w.numpy().ravel().tolist(), "b": model.b.numpy().tolist(),
            "traces": history.traces, "replicas": history.replicas,
            "resumed_from": history.resumed_from_epoch, "steps": history.steps}


out = {"replicas": strategy.num_replicas_in_sync}
model = build()
out["straight"] = summary(model, training.fit(model, data, epochs=4, learning_rate=0.05,
                                              seed=3, valid=data))
model = build()
training.fit(model, data, epochs=2, learning_rate=0.05, seed=3, checkpoint_dir=save_to)
if resume_from != "-":
    model = build()
    out["resumed"] = summary(model, training.fit(model, data, epochs=4, learning_rate=0.05,
                                                 seed=3, checkpoint_dir=resume_from))

# A model built outside the scope must not train silently on one device.
outside = Regression()
try:
    training.fit(outside, data, epochs=1, strategy=strategy)
    out["outside"] = "trained"
except ValueError as err:
    out["outside"] = str(err)

# A stochastic model (a VAE): random draws differ between device counts, so only check that it
# trains, once traced, with metrics reduced over the replicas. The last batch of 1 example
# would leave one replica empty: it is skipped.
from tfpcourse import vae

images = (rng.random((33, 28, 28, 1)) < 0.3).astype(np.float32)
with strategy.scope():
    model = vae.VAE(vae.Encoder(2, kind="mlp", hidden=(16,)),
                    vae.Decoder(2, kind="mlp", hidden=(16,)), vae.standard_normal_prior(2))
h = vae.fit(model, tf.data.Dataset.from_tensor_slices(images).batch(16), epochs=2, seed=1)
out["vae"] = {"loss": h.train["loss"], "elbo": h.train["elbo"], "kl": h.train["kl"],
              "reconstruction": h.train["reconstruction"], "traces": h.traces,
              "replicas": h.replicas, "steps": h.steps}
print("RESULT " + json.dumps(out))
"""


def _run(code: str, *args: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or {})),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two devices (saving a checkpoint), then one device resuming it, then two devices
    resuming the one-device checkpoint."""
    root = tmp_path_factory.mktemp("distributed")
    two = _run(SCENARIO, "2", "-", str(root / "two"))
    shutil.copytree(root / "two", root / "two_for_one")
    one = _run(SCENARIO, "1", str(root / "two_for_one"), str(root / "one"))
    shutil.copytree(root / "one", root / "one_for_two")
    two_again = _run(SCENARIO, "2", str(root / "one_for_two"), str(root / "unused"))
    return {"one": one, "two": two, "two_again": two_again}


def _assert_same_training(a: dict, b: dict) -> None:
    for key in ("loss", "mae", "valid", "w", "b"):
        np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_the_scenarios_ran_on_the_devices_they_asked_for(runs):
    assert runs["one"]["replicas"] == 1
    assert runs["two"]["replicas"] == runs["two"]["straight"]["replicas"] == 2
    assert runs["one"]["straight"]["replicas"] == 1


def test_two_devices_give_the_losses_and_variables_of_one_device(runs):
    one, two = runs["one"]["straight"], runs["two"]["straight"]
    _assert_same_training(one, two)
    assert one["traces"] == two["traces"] == 1
    assert one["steps"] == two["steps"] == 4 * 5
    # Not vacuous: training moved the variables far from zero and lowered the loss a lot.
    assert np.abs(np.asarray(two["w"])).max() > 0.5
    assert two["loss"][-1] < 0.5 * two["loss"][0]


def test_metrics_are_the_global_batch_means_not_a_sum_over_replicas(runs):
    one, two = runs["one"]["straight"], runs["two"]["straight"]
    # A sum over the 2 replicas would double the loss; a plain mean of the replicas' means would
    # weight the 8 and 7 examples of each 8 + 7 split equally.
    assert two["loss"][0] == pytest.approx(one["loss"][0], rel=RTOL)
    assert two["valid"][-1] == pytest.approx(one["valid"][-1], rel=RTOL)


def test_a_checkpoint_written_on_two_devices_resumes_on_one(runs):
    resumed = runs["one"]["resumed"]
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 20
    _assert_same_training({**resumed, "valid": []}, {**runs["two"]["straight"], "valid": []})


def test_a_checkpoint_written_on_one_device_resumes_on_two(runs):
    resumed = runs["two_again"]["resumed"]
    assert resumed["resumed_from"] == 2 and resumed["replicas"] == 2
    _assert_same_training({**resumed, "valid": []}, {**runs["one"]["straight"], "valid": []})


def test_a_model_built_outside_the_strategy_scope_is_refused(runs):
    message = runs["two"]["outside"]
    assert "created outside the scope of the MirroredStrategy over 2 replicas" in message
    assert "with strategy.scope()" in message
    assert runs["one"]["outside"] == "trained"  # one device: there is no scope to miss


def test_a_vae_trains_on_two_devices_with_reduced_metrics(runs):
    result = runs["two"]["vae"]
    assert result["replicas"] == 2 and result["traces"] == 1
    assert result["steps"] == 2 * 2  # 16 + 16 per epoch; the batch of 1 is skipped
    assert all(np.isfinite(result["loss"]))
    # The reduced metrics keep the ELBO identity: loss = -elbo = kl - reconstruction.
    np.testing.assert_allclose(result["loss"], -np.asarray(result["elbo"]), rtol=1e-5)
    np.testing.assert_allclose(
        result["elbo"], np.asarray(result["reconstruction"]) - result["kl"], rtol=1e-5
    )
    # Per-image nats of a 784-pixel image near p = 0.3: hundreds, not twice that.
    assert 300 < result["loss"][0] < 700


MIXED = r"""
import json, sys
from tfpcourse import device

device.setup(mixed_precision=sys.argv[1], verbose=False)
import keras
import numpy as np
import tensorflow as tf
from tfpcourse import flows, training, vae

rng = np.random.default_rng(0)
images = (rng.random((64, 28, 28, 1)) < 0.3).astype(np.float32)
data = tf.data.Dataset.from_tensor_slices(images).batch(32)
model = vae.VAE(vae.Encoder(4), vae.Decoder(4), vae.standard_normal_prior(4))
loss, metrics = model.loss(images[:8], tf.constant([1, 2], tf.int32))
h = vae.fit(model, data, epochs=8, seed=1)
flow = flows.realnvp(num_layers=2, hidden_units=(8,), seed=0)


class SixteenBitLoss(tf.Module):
    def __init__(self):
        super().__init__()
        self.layer = keras.layers.Dense(1)
        self.layer.build((None, 784))

    @property
    def trainable_variables(self):
        return self.layer.trainable_variables

    def loss(self, x, seed):
        return tf.reduce_mean(self.layer(tf.reshape(x, (-1, 784)))), {}


try:
    training.fit(SixteenBitLoss(), data, epochs=1)
    refused = ""
except TypeError as err:
    refused = str(err)
print("RESULT " + json.dumps({
    "policy": keras.mixed_precision.global_policy().name,
    "layer_compute": model.encoder.net.layers[0].compute_dtype,
    "variables": sorted({v.dtype for v in model.trainable_variables}),
    "loss_dtype": loss.dtype.name, "elbo_dtype": metrics["elbo"].dtype.name,
    "flow_log_prob": flow.distribution.log_prob(np.zeros((3, 2), np.float32)).dtype.name,
    "mlp_compute": flows.MLP(2, (4,), 2, zero_last=False).compute_dtype,
    "mlp_output": flows.MLP(2, (4,), 2)(np.ones((1, 2), np.float32)).dtype.name,
    "train_loss": h.train["loss"], "precision": h.precision, "loss_scale": h.loss_scale,
    "refused": refused,
}))
"""


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_computes_in_16_bits_and_keeps_the_elbo_float32(precision):
    result = _run(MIXED, precision)
    assert result["policy"] == f"mixed_{precision}"
    assert result["layer_compute"] == precision
    assert result["variables"] == ["float32"]
    assert result["loss_dtype"] == result["elbo_dtype"] == "float32"
    assert result["flow_log_prob"] == result["mlp_output"] == "float32"
    assert result["mlp_compute"] == precision
    assert result["precision"] == f"mixed_{precision}"
    assert all(np.isfinite(result["train_loss"]))
    assert result["train_loss"][-1] < result["train_loss"][0]
    if precision == "float16":
        # Loss scaling is on: the dynamic scale starts at 2**15 and halves after every step
        # whose float16 gradients overflow (a loss of ~540 nats times 2**15 does), skipping it.
        assert result["loss_scale"] is not None and np.log2(result["loss_scale"]) % 1 == 0
        assert result["loss_scale"] < 2**15
    else:
        assert result["loss_scale"] is None  # bfloat16 has float32's range: no scaling
    assert f"got a {precision} tensor" in result["refused"]
    assert "cast the networks' outputs to float32" in result["refused"]
