"""How close the course's training steps come to what this machine can do, in float32 and in
bfloat16 mixed precision, side by side in one run.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_peak.py           # the full run (about 10 minutes)
    .venv/bin/python benchmarks/bench_peak.py --quick   # a fast sanity run; writes nothing

It writes ``benchmarks/results/peak.json`` and ``peak.md``.

1. **The machine's practical peak**: GFLOP/s of a large square matrix product (``tf.matmul``,
   4096 x 4096) in float32 and bfloat16, and the memory bandwidth of a large element-wise add
   (bytes read + written per second).
2. **Training steps**: :func:`tfpcourse.training.fit` itself, over a dataset that repeats one
   fixed batch (so the input pipeline is not in the number; the first epoch, which traces the
   step, is not timed): chapter 06's conv VAE (batch 128) and chapter 04's
   RealNVP (6 coupling layers of 64 x 64, batch 256), each built under the float32 and the
   ``mixed_bfloat16`` Keras policy, plus the importance-weighted evaluation of chapter 06
   (k = 100, 20 images per call). FLOPs per step are counted from the layer shapes (a dense
   layer ``2 * in * out`` per example, a convolution ``2 * H_out * W_out * k^2 * C_in * C_out``,
   a transposed one ``2 * H_in * W_in * k^2 * C_in * C_out``), times 3 for a training step
   (the backward pass costs about twice the forward one), times 1 for evaluation. Achieved
   GFLOP/s are divided by the matmul peak of the precision the step computes in.
3. **Quality after equal steps**: the conv VAE trained for the same number of steps in both
   precisions from the same seeds (two seeds each) and scored on the full test set (-ELBO,
   nats); the RealNVP likewise on two moons (held-out NLL, nats).

Times are medians over repeats, measured alternately (float32, bfloat16, float32, ...) so that
a change of the machine's speed during the run hits both alike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _machine import machine_info

OUT = Path(__file__).resolve().parent / "results"


def _median_seconds(fn, *, number: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            result = fn()
        _ = result.numpy() if hasattr(result, "numpy") else result
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def peaks(quick: bool) -> dict:
    import tensorflow as tf

    n = 1024 if quick else 4096
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.cast(tf.random.normal((n, n)), dtype)
        matmul = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        matmul()
        seconds = _median_seconds(matmul, number=3 if quick else 10, repeats=5)
        out[f"matmul_{dtype}_gflops"] = 2 * n**3 / seconds / 1e9
    size = 2**22 if quick else 2**26  # 256 MiB of float32
    x = tf.ones(size)
    add = tf.function(lambda: x + 1.0)
    add()
    seconds = _median_seconds(add, number=5, repeats=5)
    out["memory_gbps"] = 2 * 4 * size / seconds / 1e9  # read x, write the result
    out["matmul_size"] = n
    return out


def dense_flops(sizes) -> int:
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))


def conv_vae_forward_flops(latent: int = 16) -> int:
    """Forward FLOPs per image of vae.Encoder(latent, "conv") + vae.Decoder(latent, "conv")."""
    k2 = 9
    encoder = (2 * 14 * 14 * k2 * 1 * 32 + 2 * 7 * 7 * k2 * 32 * 64
               + dense_flops([7 * 7 * 64, 2 * latent]))
    decoder = (dense_flops([latent, 7 * 7 * 32])
               + 2 * 7 * 7 * k2 * 32 * 32      # transposed 7x7 -> 14x14, 32 -> 32 channels
               + 2 * 14 * 14 * k2 * 32 * 16    # transposed 14x14 -> 28x28, 32 -> 16 channels
               + 2 * 28 * 28 * k2 * 16 * 1)    # the 3x3 convolution to one logit per pixel
    return encoder + decoder


def decoder_forward_flops(latent: int = 16) -> int:
    return conv_vae_forward_flops(latent) - (2 * 14 * 14 * 9 * 32 + 2 * 7 * 7 * 9 * 32 * 64
                                             + dense_flops([7 * 7 * 64, 2 * latent]))


def realnvp_forward_flops(layers: int = 6, hidden=(64, 64), d: int = 2) -> int:
    half = d // 2
    return layers * dense_flops([half, *hidden, 2 * (d - half)])


def _set_policy(name: str) -> None:
    import keras

    keras.mixed_precision.set_global_policy(name)


def _loop_step(model, batch, number: int, *, static_shapes: bool = False):
    """A callable timing ``number`` steps of ``training.fit`` itself on one fixed batch (a
    dataset repeating it), after a first epoch that traces the step."""
    import tensorflow as tf

    from tfpcourse import training

    data = tf.data.Dataset.from_tensors(batch).repeat(number)

    def run():
        history = training.fit(model, data, epochs=2, seed=0, static_shapes=static_shapes)
        return history.epoch_seconds[1] / number

    return run


def steps(quick: bool, peak: dict) -> list[dict]:
    import numpy as np
    import tensorflow as tf

    from tfpcourse import flows, toy2d, vae
    from tfpcourse.training import MaxLikelihood

    rng = np.random.default_rng(0)
    images = tf.constant((rng.random((128, 28, 28, 1)) < 0.3).astype(np.float32))
    moons = tf.constant(toy2d.standardize(toy2d.two_moons(256, seed=0))[0])
    iwae_images = images[:20]
    builders = {}
    for policy in ("float32", "mixed_bfloat16"):
        _set_policy(policy)
        model = vae.VAE(vae.Encoder(16), vae.Decoder(16), vae.standard_normal_prior(16))
        flow = flows.realnvp(num_layers=6, hidden_units=(64, 64), seed=0)

        def iwae(model=model):
            return vae.importance_weighted_log_likelihood(
                iwae_images, model.encoder, model.decoder, model.prior, k=100,
                seed=tf.constant([1, 2], tf.int32))

        builders[("conv VAE training step, batch 128", policy)] = (
            _loop_step(model, images, 5 if quick else 40), 3 * conv_vae_forward_flops() * 128)
        builders[("RealNVP training step, batch 256", policy)] = (
            # as fit_max_likelihood trains it: traced for its static batch shape
            _loop_step(MaxLikelihood(flow.distribution), moons, 20 if quick else 400,
                       static_shapes=True),
            3 * realnvp_forward_flops() * 256)
        compiled_iwae = tf.function(iwae)
        compiled_iwae()

        def time_iwae(fn=compiled_iwae, number=2 if quick else 8):
            return _median_seconds(fn, number=number, repeats=1)

        builders[("IWAE k=100 evaluation, 20 images", policy)] = (
            time_iwae,
            20 * (conv_vae_forward_flops() - decoder_forward_flops())
            + 20 * 100 * decoder_forward_flops())
    _set_policy("float32")
    times: dict = {key: [] for key in builders}
    for _ in range(3 if quick else 5):  # alternate float32 and bfloat16 measurements
        for key, (fn, _) in builders.items():
            times[key].append(fn())
    rows = []
    for (name, policy), (_, flops) in builders.items():
        seconds = statistics.median(times[(name, policy)])
        peak_gflops = peak["matmul_bfloat16_gflops" if policy != "float32"
                           else "matmul_float32_gflops"]
        rows.append({"step": name, "policy": policy, "ms": 1e3 * seconds,
                     "gflop": flops / 1e9, "gflops": flops / seconds / 1e9,
                     "fraction_of_peak": flops / seconds / 1e9 / peak_gflops})
    return rows


def quality(quick: bool) -> list[dict]:
    """The conv VAE and the RealNVP trained for equal steps in both precisions."""
    from tfpcourse import data, flows, pipelines, seeding, toy2d, training, vae

    mnist = data.mnist()
    n_train = 2048 if quick else None
    epochs = 1 if quick else 3
    train = pipelines.image_dataset(mnist.train.images, batch_size=128, shuffle=True, seed=1,
                                    binarize="dynamic", subset=n_train)
    test = pipelines.image_dataset(mnist.test.images, batch_size=500, seed=2, binarize="static",
                                   subset=1000 if quick else None)
    moons_train, mean, std = toy2d.standardize(toy2d.two_moons(2000 if quick else 20000, seed=1))
    moons_test = toy2d.standardize(toy2d.two_moons(2000 if quick else 20000, seed=2),
                                   mean=mean, std=std)[0]
    rows = []
    for seed in (1, 2):
        for policy in ("float32", "mixed_bfloat16"):
            _set_policy(policy)
            seeding.seed_everything(seed)  # the same initial weights in both precisions
            model = vae.VAE(vae.Encoder(16), vae.Decoder(16), vae.standard_normal_prior(16))
            history = training.fit(model, train, epochs=epochs, learning_rate=2e-3, seed=seed)
            score = training.evaluate(model, test, seed=0)
            rows.append({"model": "conv VAE", "policy": policy, "seed": seed,
                         "steps": history.steps, "seconds": history.seconds,
                         "heldout": -score["elbo"], "measure": "test -ELBO (nats)"})
            flow = flows.realnvp(num_layers=6, hidden_units=(64, 64), seed=seed)
            fh = training.fit_max_likelihood(
                flow.distribution, moons_train, epochs=5 if quick else 30, batch_size=256,
                learning_rate=1e-3, seed=seed)
            rows.append({"model": "RealNVP", "policy": policy, "seed": seed,
                         "steps": fh.steps, "seconds": fh.seconds,
                         "heldout": training.mean_nll(flow.distribution, moons_test),
                         "measure": "held-out NLL (nats)"})
    _set_policy("float32")
    return rows


def markdown(result: dict) -> str:
    p = result["peak"]
    lines = [
        "# How close to the machine's peak (benchmarks/bench_peak.py)", "",
        f"Machine: {result['machine']['cpus']} CPUs, TensorFlow {result['machine']['tensorflow']}.",
        "",
        "| practical peak | value |", "|---|---:|",
        f"| matmul {p['matmul_size']}² float32 | {p['matmul_float32_gflops']:.0f} GFLOP/s |",
        f"| matmul {p['matmul_size']}² bfloat16 | {p['matmul_bfloat16_gflops']:.0f} GFLOP/s |",
        f"| memory bandwidth (large add) | {p['memory_gbps']:.1f} GB/s |",
        "",
        "| step | policy | ms | GFLOP per call | GFLOP/s | fraction of the matmul peak |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in result["steps"]:
        lines.append(f"| {r['step']} | {r['policy']} | {r['ms']:.2f} | {r['gflop']:.3f} | "
                     f"{r['gflops']:.1f} | {100 * r['fraction_of_peak']:.1f}% |")
    by = {}
    for r in result["steps"]:
        by.setdefault(r["step"], {})[r["policy"]] = r["ms"]
    lines += ["", "| step | float32 ms / bfloat16 ms |", "|---|---:|"]
    for name, t in by.items():
        lines.append(f"| {name} | {t['float32'] / t['mixed_bfloat16']:.2f} |")
    lines += ["", "| model | policy | seed | steps | seconds | held-out |",
              "|---|---|---:|---:|---:|---:|"]
    for r in result["quality"]:
        lines.append(f"| {r['model']} | {r['policy']} | {r['seed']} | {r['steps']} | "
                     f"{r['seconds']:.1f} | {r['heldout']:.3f} ({r['measure']}) |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TFPCOURSE_DATA_MIRROR", str(Path(__file__).resolve().parents[2]
                                                       / "shared" / "data"))
    from tfpcourse import device

    device.setup(verbose=False)
    result = {"machine": machine_info(), "quick": args.quick}
    result["peak"] = peaks(args.quick)
    print(json.dumps(result["peak"], indent=1), flush=True)
    result["steps"] = steps(args.quick, result["peak"])
    print(markdown({**result, "quality": []}), flush=True)
    result["quality"] = quality(args.quick)
    text = markdown(result)
    print(text)
    if not args.quick:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "peak.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (OUT / "peak.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
