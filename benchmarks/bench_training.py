"""Benchmark the course's two workhorse training steps four ways, side by side in one run.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_training.py           # the full run (a few minutes)
    .venv/bin/python benchmarks/bench_training.py --quick   # a fast sanity run; writes nothing

It prints Markdown tables and writes ``benchmarks/results/training.json`` and ``training.md``.

Models (the same model, data, batch size and optimizer in every mode)
-------------------------------------------------------------------
* **Conv VAE** of chapter 06: ``vae.Encoder(16, "conv")``, ``vae.Decoder(16, "conv")``, a
  standard Normal prior, the negative ELBO with the analytic KL; batch 128 of dynamically
  binarised MNIST; Adam at 1e-3.
* **RealNVP** (6 coupling layers, hidden 64x64) and **MAF** (4 layers, hidden 64x64) of
  chapter 04 on standardised two moons; batch 256; Adam at 1e-3.

Modes
-----
``eager``
    A Python step (forward, ``GradientTape``, Adam update) run op by op: the style of the
    original TF 1 / early TF 2 blog posts.
``tf.function``
    The same step compiled into a graph: what ``tfpcourse.vae.fit`` and
    ``tfpcourse.training.fit_max_likelihood`` run.
``tf.function(jit_compile=True)``
    The same graph compiled by XLA.
``Keras fit``
    ``model.fit`` on an equivalent Keras model: a Keras 3 ``keras.Model`` with a custom
    ``train_step`` for the VAE (the keras.io VAE pattern), and a ``tf_keras.Model`` for the
    flows (TFP's flows are built on tf_keras, which Keras 3 does not track). Keras chooses its
    own ``jit_compile`` (``"auto"``); the value it chose is recorded.

Step modes are timed on one fixed batch (so the input pipeline is not part of the number),
after warm-up, as the median over repeats of ``number`` steps. Keras ``fit`` is timed over an
epoch of the same fixed batch repeated; to compare like with like, ``vae.fit`` (the course's
whole loop, with its per-epoch bookkeeping) is timed over the same repeated-batch dataset.

Also measured: the ``tf.data`` pipeline alone (dynamic binarisation, batch 128, examples per
second, against what the VAE step consumes), and MNIST's load time from the decoded cache.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

_T0 = time.perf_counter()
HERE = Path(__file__).resolve().parent
VAE_BATCH = 128
FLOW_BATCH = 256


def _time_steps(fn, batch, *, number: int, repeats: int) -> dict:
    """First-call time (tracing/compiling) and steady-state steps per second of ``fn(batch)``."""
    from tfpcourse import timing

    start = time.perf_counter()
    _block(fn(batch))
    first = time.perf_counter() - start
    t = timing.measure(lambda: _block(fn(batch)), repeats=repeats, number=number, warmup=1)
    return {"first_call_s": first, "step_s_median": t.median, "steps_per_s": t.per_second}


def _block(value):
    """Wait for a step's result (a tensor or a dict of tensors)."""
    if isinstance(value, dict):
        value = next(iter(value.values()))
    return float(value)


# --------------------------------------------------------------------------------------------
# Conv VAE
# --------------------------------------------------------------------------------------------


def _vae_model(seed: int = 0):
    import keras

    from tfpcourse import vae

    keras.utils.set_random_seed(seed)
    return vae.VAE(vae.Encoder(16, kind="conv"), vae.Decoder(16, kind="conv"),
                   vae.standard_normal_prior(16), kl="analytic")


def _keras_vae(seed: int = 0):
    """The keras.io-style equivalent: a Keras 3 Model owning the same two networks, with a
    custom train_step computing the same loss (the course's ``VAE.loss``)."""
    import keras
    import tensorflow as tf

    inner = _vae_model(seed)

    class KerasVAE(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder_net = inner.encoder.net  # tracked by Keras: both are Keras models
            self.decoder_net = inner.decoder.net
            self.loss_tracker = keras.metrics.Mean(name="loss")

        def call(self, x):
            return inner.reconstruct(x)

        def train_step(self, x):
            seed = tf.cast(tf.random.experimental.stateless_fold_in(
                tf.constant([0, 0], tf.int64), self.optimizer.iterations), tf.int32)
            with tf.GradientTape() as tape:
                loss, _ = inner.loss(x, seed)
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

        @property
        def metrics(self):
            return [self.loss_tracker]

    model = KerasVAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model, inner


def bench_vae(images: np.ndarray, quick: bool) -> dict:
    import keras
    import tensorflow as tf

    from tfpcourse import pipelines, vae

    ds = pipelines.image_dataset(images[:VAE_BATCH * 4], batch_size=VAE_BATCH,
                                 binarize="dynamic", seed=0)
    batch = next(iter(ds))
    number, repeats = (5, 3) if quick else (30, 5)
    rows: dict[str, dict] = {}

    def make_step(model):
        variables = list(model.trainable_variables)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(variables)
        seed = tf.constant([0, 0], tf.int32)

        def step(x):
            with tf.GradientTape() as tape:
                loss, _ = model.loss(x, seed)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        return step

    rows["eager"] = _time_steps(make_step(_vae_model()), batch, number=max(2, number // 6),
                                repeats=3)
    rows["tf.function"] = _time_steps(tf.function(make_step(_vae_model())), batch,
                                      number=number, repeats=repeats)
    try:
        rows["tf.function(jit_compile=True)"] = _time_steps(
            tf.function(make_step(_vae_model()), jit_compile=True), batch, number=number,
            repeats=repeats)
    except Exception as error:  # XLA may refuse an op: record it
        rows["tf.function(jit_compile=True)"] = {"error": f"{type(error).__name__}: {error}"}

    # Whole loops over one epoch of the same batch repeated: Keras fit vs the course's fit.
    steps = 20 if quick else 150
    epoch = tf.data.Dataset.from_tensors(batch).repeat(steps)
    keras_model, _ = _keras_vae()
    keras_model.fit(epoch.take(3), epochs=1, verbose=0)  # trace/compile
    loops: dict[str, list[float]] = {"Keras fit": [], "vae.fit call": [], "vae.fit epoch": []}
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        keras_model.fit(epoch, epochs=1, verbose=0)
        loops["Keras fit"].append(time.perf_counter() - start)
        model = _vae_model()  # a fresh model: vae.fit traces its step once per call
        start = time.perf_counter()
        history = vae.fit(model, epoch, epochs=2)
        loops["vae.fit call"].append(time.perf_counter() - start)
        loops["vae.fit epoch"].append(history.epoch_seconds[1])  # after the trace, like Keras
    keras_s = float(np.median(loops["Keras fit"]))
    rows["Keras fit"] = {"loop_s_median": keras_s, "steps_per_s": steps / keras_s,
                         "keras_jit_compile": bool(keras_model.jit_compile)}
    # Both timed after their trace: Keras by its warm-up fit, vae.fit in its second epoch.
    course_s = float(np.median(loops["vae.fit epoch"]))
    rows["vae.fit (course loop)"] = {"loop_s_median": course_s, "steps_per_s": steps / course_s,
                                     "whole_call_s": float(np.median(loops["vae.fit call"]))}
    eager = rows["eager"]["steps_per_s"]
    for row in rows.values():
        if "steps_per_s" in row:
            row["ratio_to_eager"] = row["steps_per_s"] / eager
    rows["vae.fit (course loop)"]["ratio_to_keras_fit"] = keras_s / course_s
    rows["tf.function"]["ratio_to_keras_fit"] = (
        rows["tf.function"]["steps_per_s"] / rows["Keras fit"]["steps_per_s"])
    return {"batch_size": VAE_BATCH, "steps_per_loop": steps, "modes": rows}


# --------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------


def bench_flows(quick: bool) -> dict:
    import keras
    import tensorflow as tf
    import tf_keras

    from tfpcourse import flows, toy2d

    moons, _, _ = toy2d.standardize(toy2d.two_moons(3000, noise=0.05, seed=0))
    batch = tf.constant(moons[:FLOW_BATCH], tf.float32)
    builders = {
        "RealNVP (6 layers, hidden 64x64)": lambda: flows.realnvp(2, 6, (64, 64), seed=0),
        "MAF (4 layers, hidden 64x64)": lambda: flows.maf(2, 4, (64, 64), seed=0),
    }
    number, repeats = (20, 3) if quick else (200, 5)
    steps = 50 if quick else 500
    results = {}
    for label, build in builders.items():

        def make_step(flow):
            variables = list(flow.trainable_variables)
            optimizer = keras.optimizers.Adam(1e-3)
            optimizer.build(variables)

            def step(x):
                with tf.GradientTape() as tape:
                    loss = -tf.reduce_mean(flow.distribution.log_prob(x))
                grads = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(grads, variables))
                return loss

            return step

        rows = {
            "eager": _time_steps(make_step(build()), batch, number=3, repeats=3),
            "tf.function": _time_steps(tf.function(make_step(build())), batch, number=number,
                                       repeats=repeats),
        }
        try:
            rows["tf.function(jit_compile=True)"] = _time_steps(
                tf.function(make_step(build()), jit_compile=True), batch, number=number,
                repeats=repeats)
        except Exception as error:
            rows["tf.function(jit_compile=True)"] = {"error": f"{type(error).__name__}: {error}"}

        flow = build()

        class FlowModel(tf_keras.Model):
            def __init__(self, flow):
                super().__init__()
                self.flow = flow  # tf_keras tracks the tf.Module's variables

            def call(self, x):
                return self.flow.distribution.log_prob(x)

        model = FlowModel(flow)
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                      loss=lambda _, log_prob: -tf.reduce_mean(log_prob))
        if len(model.trainable_variables) != len(flow.trainable_variables):
            raise RuntimeError("the Keras wrapper does not see the flow's variables")
        data = tf.data.Dataset.from_tensors((batch, tf.zeros(FLOW_BATCH))).repeat(steps)
        model.fit(data.take(3), epochs=1, verbose=0)
        times = []
        for _ in range(1 if quick else 3):
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            times.append(time.perf_counter() - start)
        keras_s = float(np.median(times))
        rows["Keras fit (tf_keras)"] = {"loop_s_median": keras_s, "steps_per_s": steps / keras_s,
                                        "keras_jit_compile": bool(model._jit_compile)
                                        if hasattr(model, "_jit_compile") else None}
        eager = rows["eager"]["steps_per_s"]
        for row in rows.values():
            if "steps_per_s" in row:
                row["ratio_to_eager"] = row["steps_per_s"] / eager
        rows["tf.function"]["ratio_to_keras_fit"] = (
            rows["tf.function"]["steps_per_s"] / rows["Keras fit (tf_keras)"]["steps_per_s"])
        results[label] = {"batch_size": FLOW_BATCH, "steps_per_loop": steps, "modes": rows}
    return results


# --------------------------------------------------------------------------------------------
# Input pipeline and data loading
# --------------------------------------------------------------------------------------------


def bench_pipeline(images: np.ndarray, vae_steps_per_s: float, quick: bool) -> dict:
    from tfpcourse import pipelines

    n = 10_000 if quick else len(images)
    ds = pipelines.image_dataset(images[:n], batch_size=VAE_BATCH, shuffle=True, seed=0,
                                 binarize="dynamic")
    for _ in ds:  # first pass fills the cache
        pass
    times = []
    for _ in range(2 if quick else 3):
        start = time.perf_counter()
        for _ in ds:
            pass
        times.append(time.perf_counter() - start)
    rate = n / float(np.median(times))
    return {"examples": n, "examples_per_s": rate,
            "vae_step_examples_per_s": vae_steps_per_s * VAE_BATCH,
            "headroom": rate / (vae_steps_per_s * VAE_BATCH)}


def bench_mnist_load() -> dict:
    code = ("import time; t=time.perf_counter(); from tfpcourse import data; d=data.mnist(); "
            "print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return {"new_process_s": float(out.stdout.strip().splitlines()[-1])}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt_rate(row: dict) -> list[str]:
    if "error" in row:
        return ["—", "—", row["error"][:60], "—"]
    first = f"{row['first_call_s']:.2f} s" if "first_call_s" in row else "—"
    per_step = (f"{1000 * row['step_s_median']:.2f} ms" if "step_s_median" in row
                else f"{1000 * row['loop_s_median'] / row['_steps']:.2f} ms")
    return [first, per_step, f"{row['steps_per_s']:,.1f}", f"{row['ratio_to_eager']:.1f}x"]


def _markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, TensorFlow "
        f"{m['tensorflow']}, TFP {m['tfp']}, Keras {m['keras']}",
        "",
        f"Total run time: {result['total_seconds']:.0f} s.",
        "",
    ]
    sections = [("Conv VAE (chapter 06), batch 128, latent 16", {"": result["vae"]})]
    sections.append(("Flows (chapter 04), batch 256, two moons", result["flows"]))
    for title, models in sections:
        lines += [f"## {title}", "",
                  "| model | mode | first call | time per step | steps/s | vs eager |"
                  " vs Keras fit |", "|---|---|---|---|---|---|---|"]
        for name, res in models.items():
            for mode, row in res["modes"].items():
                row = dict(row, _steps=res["steps_per_loop"])
                keras_ratio = (f"{row['ratio_to_keras_fit']:.2f}x"
                               if "ratio_to_keras_fit" in row else "")
                label = name or "conv VAE"
                lines.append(f"| {label} | `{mode}` | " + " | ".join(_fmt_rate(row))
                             + f" | {keras_ratio} |")
        lines.append("")
    p = result["pipeline"]
    lines += [
        "## Input pipeline and data",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| tf.data, dynamic binarisation, batch 128 ({p['examples']:,} MNIST images) | "
        f"{p['examples_per_s']:,.0f} examples/s |",
        f"| what the compiled VAE step consumes | {p['vae_step_examples_per_s']:,.0f} "
        f"examples/s |",
        f"| pipeline headroom | {p['headroom']:.0f}x |",
        f"| MNIST load from the decoded cache, new process | "
        f"{1000 * result['mnist_load']['new_process_s']:.0f} ms |",
        "",
    ]
    kv = result["vae"]["modes"]["Keras fit"]
    lines += [f"Keras chose jit_compile={kv['keras_jit_compile']} for the VAE.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="short budgets, for a sanity check; writes no result files")
    args = parser.parse_args()

    from tfpcourse import data, device

    device.setup(verbose=False)
    images = data.mnist(splits=["train"]).train.images

    print("1/4 conv VAE ...", flush=True)
    vae_result = bench_vae(images, args.quick)
    print("2/4 flows ...", flush=True)
    flow_result = bench_flows(args.quick)
    print("3/4 pipeline ...", flush=True)
    pipeline = bench_pipeline(images, vae_result["modes"]["tf.function"]["steps_per_s"],
                              args.quick)
    print("4/4 MNIST load ...", flush=True)
    load = bench_mnist_load()
    result = {
        "machine": machine_info(),
        "quick": args.quick,
        "units": {"time": "seconds", "throughput": "steps per second"},
        "vae": vae_result,
        "flows": flow_result,
        "pipeline": pipeline,
        "mnist_load": load,
    }
    result["total_seconds"] = time.perf_counter() - _T0
    text = _markdown(result)
    print()
    print(text)
    if args.quick:
        print("(quick run: results not written)")
        return
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "training.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / "training.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
