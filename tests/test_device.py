import json
import os
import subprocess
import sys
import textwrap

import pytest

from tfpcourse import device

NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795289078.513615    2287 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1795289078.515078    2287 cudart_stub.cc:31] Could not find cuda drivers\n"
    "E0000 00:00:1795289081.131006    2287 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.\n"
    "W1121 19:22:37.000001    2287 some_file.cc:12] a warning line\n"
)


def _without_stack_notice(stderr: str) -> str:
    """Drop the one line `import tfpcourse` prints on a stack other than the stored outputs'
    (the Python matrix runs these tests with, e.g., another Keras)."""
    from tfpcourse import stack

    notice = stack.notice()
    return stderr.replace(notice + "\n", "", 1) if notice else stderr


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=environment, timeout=300,
    )


def test_filter_removes_tensorflow_startup_lines_and_keeps_real_errors():
    real = "E0000 00:00:1.5 77 session.cc:1] Out of memory while allocating\nTraceback: boom\n"
    kept = device.filter_tf_noise(NOISE + real)
    assert kept == real


def test_filter_understands_the_log_format_of_tensorflow_2_18_and_2_19():
    # Seen on TensorFlow 2.19 (the Colab-like test): TSL's own timestamped format.
    noise = (
        "2026-12-03 15:10:50.744021: E tensorflow/core/util/util.cc:131] oneDNN supports "
        "DT_INT32 only on platforms with AVX-512. Falling back to the default Eigen-based "
        "implementation if present.\n"
        "2026-12-03 14:53:38.417168: I tensorflow/core/util/port.cc:153] oneDNN custom "
        "operations are on.\n"
        "2026-12-03 14:53:38.435117: E external/local_xla/xla/stream_executor/cuda/"
        "cuda_fft.cc:477] Unable to register cuFFT factory: Attempting to register factory\n"
    )
    real = "2026-12-03 14:53:38.435117: E tensorflow/core/framework/op.cc:1] Out of memory\n"
    assert device.filter_tf_noise(noise + real) == real


def test_filter_drops_the_lazy_onednn_integer_note():
    line = ("E0000 00:00:1795290745.020089   14028 util.cc:131] oneDNN supports DT_INT32 only on "
            "platforms with AVX-512. Falling back to the default Eigen-based implementation.\n")
    assert device.filter_tf_noise(line) == ""


def test_stderr_filter_in_a_kernel_hides_noise_written_after_setup(tmp_path):
    """In a Jupyter kernel the filter stays on: C++ noise written later never reaches the
    notebook, while other stderr text still does."""
    import nbformat

    from tfpcourse import notebooks

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os\nfrom tfpcourse import device\ndevice.setup(verbose=False)\n"
        f"os.write(2, {NOISE!r}.encode() + b'a real problem\\n')\n"
        "import time; time.sleep(0.5)\nprint('done')"
    )]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    result = notebooks.execute(path, profile="smoke", output=path)
    assert result.ok, result.error
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    stderr = "".join(o.text for o in outputs if o.get("name") == "stderr")
    assert _without_stack_notice(stderr) == "a real problem\n", outputs


def test_filter_rejects_non_text():
    with pytest.raises(TypeError, match="text must be a string"):
        device.filter_tf_noise(b"bytes")


def test_quiet_stderr_filters_writes_to_file_descriptor_2(capfd):
    with device.quiet_stderr():
        os.write(2, (NOISE + "a real problem\n").encode())
    captured = capfd.readouterr()
    assert captured.err == "a real problem\n"


def test_setup_validates_its_arguments():
    with pytest.raises(TypeError, match="xla must be True or False"):
        device.setup(xla="yes")
    with pytest.raises(ValueError, match="logical_cpus must be >= 2, got 1"):
        device.setup(logical_cpus=1)
    with pytest.raises(ValueError, match=r"mixed_precision must be one of .*got 1"):
        device.setup(mixed_precision=1)
    with pytest.raises(ValueError, match=r"mixed_precision must be one of .*got 'bf16'"):
        device.setup(mixed_precision="bf16")


def test_report_describes_the_last_setup(tf):
    rep = device.report()
    assert isinstance(rep, device.DeviceReport)
    assert rep.tensorflow_version == tf.__version__
    assert rep.strategy == "default (one device, no distribution)"
    assert "/device:CPU:0" in rep.logical_devices
    text = str(rep)
    assert text.splitlines()[0].startswith("TensorFlow 2.21")
    assert "Mixed precision: off; XLA auto-clustering: off" in text


def test_setup_in_a_fresh_process_prints_a_report_and_no_startup_noise():
    result = _run_python(
        """
        from tfpcourse import device
        strategy = device.setup()
        import tensorflow as tf
        print("replicas", strategy.num_replicas_in_sync)
        print("sum", float(tf.reduce_sum(tf.ones(3))))
        """
    )
    assert result.returncode == 0, result.stderr
    stderr = _without_stack_notice(result.stderr)
    assert stderr == "", f"unexpected stderr:\n{stderr}"
    assert "TensorFlow 2.21" in result.stdout
    assert "GPUs: none" in result.stdout  # this machine has no GPU
    assert "replicas 1" in result.stdout and "sum 3.0" in result.stdout


def test_importing_the_package_does_not_import_tensorflow():
    result = _run_python(
        """
        import sys
        import tfpcourse, tfpcourse.config, tfpcourse.data, tfpcourse.toy2d, tfpcourse.timing
        import tfpcourse.device, tfpcourse.seeding, tfpcourse.pipelines, tfpcourse.graphs
        print(sorted(m for m in ("tensorflow", "tensorflow_probability", "keras", "pooch")
                     if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


MIRRORED_STEP = """
import json
from tfpcourse import device
strategy = device.setup(logical_cpus=2, verbose=False)
import numpy as np
import tensorflow as tf

x = tf.constant(np.random.default_rng(0).normal(size=(64, 3)), tf.float32)
y = tf.constant(np.random.default_rng(1).normal(size=(64, 1)), tf.float32)
GLOBAL_BATCH = 64

def make_variable():
    return tf.Variable(tf.zeros((3, 1)))

def loss_fn(w, xb, yb):
    # Sum over the replica's examples, divided by the GLOBAL batch size: the per-replica
    # gradients then add up to the full-batch gradient.
    return tf.reduce_sum((xb @ w - yb) ** 2) / GLOBAL_BATCH

# One device.
w1 = make_variable()
for _ in range(3):
    with tf.GradientTape() as tape:
        loss = loss_fn(w1, x, y)
    w1.assign_sub(0.1 * tape.gradient(loss, w1))

# Two logical CPUs, the batch split between them.
with strategy.scope():
    w2 = make_variable()
    optimizer = tf.keras.optimizers.SGD(0.1)
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
dist = strategy.experimental_distribute_dataset(dataset)

@tf.function
def step(batch):
    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(w2, xb, yb)
        optimizer.apply_gradients([(tape.gradient(loss, w2), w2)])
        return tf.shape(xb)[0]
    return strategy.run(replica_step, args=batch)

for _ in range(3):
    for batch in dist:
        per_replica = step(batch)
sizes = [int(t) for t in strategy.experimental_local_results(per_replica)]
print(json.dumps({
    "strategy": type(strategy).__name__,
    "replicas": strategy.num_replicas_in_sync,
    "sizes": sizes,
    "one_device": w1.numpy().ravel().tolist(),
    "mirrored": w2.numpy().ravel().tolist(),
}))
"""


@pytest.mark.slow
def test_training_step_under_mirrored_strategy_matches_one_device():
    result = _run_python(MIRRORED_STEP)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["strategy"] == "MirroredStrategy"
    assert out["replicas"] == 2
    assert out["sizes"] == [32, 32]  # each logical CPU really got half the batch
    assert out["one_device"] != [0.0, 0.0, 0.0]  # training moved the weights
    for a, b in zip(out["one_device"], out["mirrored"]):
        assert a == pytest.approx(b, abs=1e-6)


AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


def test_bfloat16_hardware_is_read_from_the_cpu_flags():
    assert device.cpu_has_bfloat16(AMX_CPUINFO)
    assert device.cpu_has_bfloat16("flags : avx512_bf16\n")
    assert not device.cpu_has_bfloat16(OLD_CPUINFO)
    assert not device.cpu_has_bfloat16("")


def test_mixed_precision_auto_picks_what_pays_on_the_hardware(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bfloat16", lambda cpuinfo=None: True)
    assert device._choose_policy(True, gpus=0) == ("mixed_bfloat16", None)
    assert device._choose_policy("auto", gpus=2) == ("mixed_float16", None)
    assert device._choose_policy(False, gpus=2) == ("float32", None)
    monkeypatch.setattr(device, "cpu_has_bfloat16", lambda cpuinfo=None: False)
    policy, note = device._choose_policy(True, gpus=0)
    assert policy == "float32" and "no bfloat16 units" in note
    policy, note = device._choose_policy("bfloat16", gpus=0)  # forced: done, with a warning
    assert policy == "mixed_bfloat16" and "emulated" in note
    policy, note = device._choose_policy("float16", gpus=0)
    assert policy == "mixed_float16" and "emulated" in note


def test_the_environment_can_split_the_cpu_for_a_rehearsal():
    result = _run_python(
        """
        from tfpcourse import device
        strategy = device.setup(verbose=False)
        print(type(strategy).__name__, strategy.num_replicas_in_sync)
        """,
        TFPCOURSE_LOGICAL_CPUS="2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MirroredStrategy", "2"]
    bad = _run_python("from tfpcourse import device\ndevice.setup()\n",
                      TFPCOURSE_LOGICAL_CPUS="two")
    assert bad.returncode != 0
    assert "TFPCOURSE_LOGICAL_CPUS must be a whole number >= 2, got 'two'" in bad.stderr
