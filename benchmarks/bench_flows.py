"""Benchmark the normalizing flows: a first trainable flow, compiled vs eager training steps,
and MAF / RealNVP quality and training time on two moons.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_flows.py           # the full run (about 2.5 minutes, 2 cores)
    .venv/bin/python benchmarks/bench_flows.py --quick   # a fast sanity run; writes no results

It prints one Markdown table per section and writes ``benchmarks/results/flows.json`` and
``flows.md``.

What is measured
----------------
1. *First flow* (chapter 04): a standard 2-D Normal pushed through a learnable ``LeakyReLU``
   and an affine map, fitted by maximum likelihood (``fit_max_likelihood``) to samples from
   N([1, 1], 2^2 I). The affine scale is ``L (I + u u^T)``: a lower-triangular ``L`` with a
   softplus-positive diagonal times a rank-one update of the identity. That product *is* a
   lower-triangular matrix plus a rank-one matrix (``L + (L u) u^T``) and it is invertible for
   every value of the variables (a triangular factor with positive diagonal times a symmetric
   positive-definite factor). Everything starts at the identity (``u`` at 1e-2, so that its
   gradient is not exactly zero). Reported: held-out NLL, its gap to the exact entropy of the
   target and to the exact target density's NLL on the same held-out points, epochs, steps and
   wall time.
2. *Compiled vs eager*: one Python train step (``log_prob``, gradient, Keras 3 Adam update) for
   a MAF (4 layers, hidden (64, 64)) and a RealNVP (6 layers, hidden (64, 64)) on standardised
   two moons, batch 256, run eagerly, under ``tf.function`` and under
   ``tf.function(jit_compile=True)``; steps per second after warm-up (``timing.measure``,
   median) and the ratio to eager. The same fixed batch is fed every step, so the input
   pipeline is not part of the number.
3. *Two moons*: 3000 training points (seed 0), 3000 held-out points (seed 1) standardised with
   the training mean and std; MAF and RealNVP (the models of section 2) trained with
   ``fit_max_likelihood`` and early stopping on the held-out NLL, in two stages (Adam at 2e-3,
   then a fresh Adam at 3e-4 from the best weights). Reported: the best held-out NLL in nats in
   the standardised space, beside the keras.io RealNVP example's 1.30 nats and beside the NLL of
   the exact two-moons density on the same held-out points (the floor no model can beat on
   average).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from _machine import machine_info

_T0 = time.perf_counter()
HERE = Path(__file__).resolve().parent
KERAS_IO_REALNVP_NLL = 1.30  # nats, keras.io "Density estimation using Real NVP" on two moons
MOONS_NOISE = 0.05


# --------------------------------------------------------------------------------------------
# 1. The first flow
# --------------------------------------------------------------------------------------------


def first_flow(quick: bool) -> dict:
    import tensorflow as tf
    import tensorflow_probability as tfp

    from tfpcourse import flows
    from tfpcourse.training import fit_max_likelihood, mean_nll

    tfb, tfd = tfp.bijectors, tfp.distributions
    mu, sigma, dim = np.array([1.0, 1.0]), 2.0, 2
    n_train, n_valid = 10_000, 20_000
    rng = np.random.default_rng(0)
    train = (mu + sigma * rng.standard_normal((n_train, dim))).astype(np.float32)
    valid = (mu + sigma * rng.standard_normal((n_valid, dim))).astype(np.float32)
    # Differential entropy of N(mu, sigma^2 I) in `dim` dimensions.
    entropy = 0.5 * dim * math.log(2 * math.pi * math.e) + dim * math.log(sigma)
    target = tfd.MultivariateNormalDiag(loc=mu.astype(np.float32),
                                        scale_diag=np.full(dim, sigma, np.float32))
    target_nll = float(-tf.reduce_mean(target.log_prob(valid)))

    alpha = tfp.util.TransformedVariable(1.0, tfb.Softplus(), name="alpha")
    tril = tfp.util.TransformedVariable(
        tf.eye(dim), tfb.FillScaleTriL(diag_bijector=tfb.Softplus(), diag_shift=None),
        name="tril")
    u = tf.Variable(np.full((dim, 1), 1e-2, np.float32), name="u")
    shift = tf.Variable(tf.zeros(dim), name="shift")
    scale = tf.linalg.LinearOperatorComposition([
        tf.linalg.LinearOperatorLowerTriangular(tril),
        tf.linalg.LinearOperatorLowRankUpdate(
            tf.linalg.LinearOperatorIdentity(dim), u=u,
            is_self_adjoint=True, is_positive_definite=True),
    ])
    flow = flows.Flow(
        [flows.LeakyReLU(alpha), tfb.ScaleMatvecLinearOperator(scale), tfb.Shift(shift)],
        event_size=dim, name="first_flow")
    initial_nll = mean_nll(flow.distribution, valid)

    lr, batch_size, patience = 0.05, 500, 5
    epochs = 15 if quick else 40
    history = fit_max_likelihood(flow.distribution, train, valid=valid, epochs=epochs,
                                 batch_size=batch_size, learning_rate=lr, patience=patience)
    valid_nll = np.array(history.valid_nll)
    best = float(valid_nll.min())
    within = np.flatnonzero(valid_nll - entropy < 0.02)
    a = scale.to_dense().numpy()
    return {
        "data": {"distribution": "N([1, 1], 2^2 I)", "train": n_train, "valid": n_valid,
                 "seed": 0},
        "model": "N(0, I) -> LeakyReLU(alpha) -> x L (I + u u^T) -> + shift",
        "settings": {"optimizer": "Adam", "learning_rate": lr, "batch_size": batch_size,
                     "max_epochs": epochs, "patience": patience},
        "entropy_nats": entropy,
        "target_density_valid_nll_nats": target_nll,
        "initial_valid_nll_nats": initial_nll,
        "best_valid_nll_nats": best,
        "gap_to_entropy_nats": best - entropy,
        "gap_to_target_density_nats": best - target_nll,
        "first_epoch_within_0.02_nats": int(within[0]) + 1 if within.size else None,
        "epochs": history.epochs,
        "best_epoch": history.best_epoch + 1,
        "steps": history.steps,
        "train_seconds": history.seconds,
        "learned": {"alpha": float(alpha.numpy()), "shift": shift.numpy().tolist(),
                    "scale_scale_T": (a @ a.T).tolist()},
    }


# --------------------------------------------------------------------------------------------
# 2. Compiled vs eager training steps
# --------------------------------------------------------------------------------------------


def _builders():
    from tfpcourse import flows

    return {
        "MAF (4 layers, hidden 64x64)": lambda: flows.maf(2, 4, (64, 64)),
        "RealNVP (6 layers, hidden 64x64)": lambda: flows.realnvp(2, 6, (64, 64)),
    }


def compiled_vs_eager(moons_train: np.ndarray, moons_valid: np.ndarray, quick: bool) -> dict:
    import keras
    import tensorflow as tf

    from tfpcourse import timing
    from tfpcourse.training import mean_nll

    batch = tf.constant(moons_train[:256])
    valid = tf.constant(moons_valid)
    results = {}
    for label, build in _builders().items():
        flow = build()
        variables = list(flow.trainable_variables)
        optimizer = keras.optimizers.Adam(1e-3)
        optimizer.build(variables)

        def train_step(x, flow=flow, variables=variables, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = -tf.reduce_mean(flow.distribution.log_prob(x))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        modes = {
            "eager": (train_step, 5 if not quick else 2),
            "tf.function": (tf.function(train_step), 100 if not quick else 20),
            "tf.function(jit_compile=True)": (tf.function(train_step, jit_compile=True),
                                              100 if not quick else 20),
        }
        rows = {}
        for mode, (fn, number) in modes.items():
            start = time.perf_counter()
            try:
                fn(batch).numpy()  # traces (and compiles) the compiled versions
            except Exception as error:  # XLA may refuse an op: record it, go on
                rows[mode] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
                continue
            first_call = time.perf_counter() - start
            t = timing.measure(lambda fn=fn: fn(batch).numpy(), repeats=3 if quick else 5,
                               number=number, warmup=2)
            rows[mode] = {"first_call_s": first_call, "step_s_median": t.median,
                          "step_s_best": t.best, "steps_per_s": t.per_second}
        eager = rows["eager"]["steps_per_s"]
        for row in rows.values():
            if "steps_per_s" in row:
                row["ratio_to_eager"] = row["steps_per_s"] / eager

        # The held-out pass after every epoch: eager `mean_nll` against the same pass compiled
        # (which is what fit_max_likelihood now runs; measuring this found the eager one).
        nll_graph = tf.function(lambda x, flow=flow: -tf.reduce_mean(flow.log_prob(x)))
        eval_eager = timing.measure(lambda flow=flow: mean_nll(flow.distribution, moons_valid),
                                    repeats=3, warmup=1)
        eval_graph = timing.measure(lambda f=nll_graph: f(valid).numpy(), repeats=5, number=5,
                                    warmup=1)
        results[label] = {
            "batch_size": int(batch.shape[0]),
            "modes": rows,
            "heldout_pass_3000_points": {"eager_mean_nll_s": eval_eager.median,
                                         "tf_function_s": eval_graph.median},
        }
    return results


# --------------------------------------------------------------------------------------------
# 3. Two moons: quality and time
# --------------------------------------------------------------------------------------------


def two_moons_true_nll(points: np.ndarray, noise: float = MOONS_NOISE,
                       grid: int = 2000) -> float:
    """Mean NLL (nats, original coordinates) of the exact two-moons density at ``points``.

    ``toy2d.two_moons`` picks a moon with probability 1/2, a uniform angle on [0, pi] and adds
    N(0, noise^2 I): the density is a continuous mixture of Gaussians along the two arcs,
    integrated here with the midpoint rule (``grid`` angles per arc, spacing << ``noise``).
    """
    t = (np.arange(grid) + 0.5) / grid * np.pi
    centres = np.concatenate([np.stack([np.cos(t), np.sin(t)], 1),
                              np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1)])
    log_norm = -np.log(len(centres)) - np.log(2 * np.pi * noise**2)
    out = []
    for chunk in np.array_split(np.asarray(points, np.float64), max(1, len(points) // 500)):
        d2 = ((chunk[:, None, :] - centres[None]) ** 2).sum(-1)
        e = -d2 / (2 * noise**2)
        peak = e.max(axis=1, keepdims=True)
        out.append(peak[:, 0] + np.log(np.exp(e - peak).sum(axis=1)) + log_norm)
    return float(-np.concatenate(out).mean())


def two_moons_quality(train: np.ndarray, valid: np.ndarray, floor: float, quick: bool) -> dict:
    from tfpcourse.training import fit_max_likelihood, mean_nll

    stages = [  # (learning rate, batch size, patience, max epochs)
        (2e-3, 256, 25, 400),
        (3e-4, 256, 10, 200),
    ]
    if quick:
        stages = [(2e-3, 256, 5, 15), (3e-4, 256, 3, 5)]
    results = {}
    for label, build in _builders().items():
        flow = build()
        variables = list(flow.trainable_variables)
        runs, kept = [], (float("inf"), None)
        for lr, batch_size, patience, epochs in stages:
            h = fit_max_likelihood(flow.distribution, train, valid=valid, epochs=epochs,
                                   batch_size=batch_size, learning_rate=lr, patience=patience)
            # Each stage restores its own best epoch; keep the best over all stages.
            if min(h.valid_nll) < kept[0]:
                kept = (min(h.valid_nll), [v.numpy() for v in variables])
            else:
                for v, value in zip(variables, kept[1]):
                    v.assign(value)
            runs.append({"learning_rate": lr, "batch_size": batch_size, "patience": patience,
                         "max_epochs": epochs, "epochs": h.epochs, "best_epoch": h.best_epoch + 1,
                         "steps": h.steps, "seconds": h.seconds,
                         "best_valid_nll_nats": min(h.valid_nll)})
        best = mean_nll(flow.distribution, valid)  # the best weights are in place
        results[label] = {
            "stages": runs,
            "best_valid_nll_nats": best,
            "gap_to_true_density_nats": best - floor,
            "train_nll_nats": mean_nll(flow.distribution, train),
            "epochs": sum(r["epochs"] for r in runs),
            "steps": sum(r["steps"] for r in runs),
            "train_seconds": sum(r["seconds"] for r in runs),
        }
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(result: dict) -> str:
    m = result["machine"]
    header = (f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, "
              f"TensorFlow {m['tensorflow']}, TFP {m['tfp']}, Keras {m['keras']}")
    f = result["first_flow"]
    first = _table(["measurement", "value"], [
        ["model", f["model"].replace("->", "→")],
        ["data", f"{f['data']['train']:,} train / {f['data']['valid']:,} held-out from "
                 f"{f['data']['distribution']}"],
        ["settings", f"Adam lr {f['settings']['learning_rate']}, batch "
                     f"{f['settings']['batch_size']}, patience {f['settings']['patience']}"],
        ["held-out NLL at initialisation", f"{f['initial_valid_nll_nats']:.4f} nats"],
        ["best held-out NLL", f"{f['best_valid_nll_nats']:.4f} nats"],
        ["target entropy log(2πe) + log 4", f"{f['entropy_nats']:.4f} nats"],
        ["**gap to entropy** (target < 0.02)", f"**{f['gap_to_entropy_nats']:.4f} nats**"],
        ["exact target density's NLL on the same held-out points",
         f"{f['target_density_valid_nll_nats']:.4f} nats"],
        ["gap to the exact density on the same points",
         f"{f['gap_to_target_density_nats']:+.4f} nats"],
        ["first epoch within 0.02 nats of the entropy", str(f["first_epoch_within_0.02_nats"])],
        ["epochs run (best) / steps", f"{f['epochs']} ({f['best_epoch']}) / {f['steps']}"],
        ["**training wall time** (target < 60 s)", f"**{f['train_seconds']:.1f} s**"],
        ["learned alpha / shift", f"{f['learned']['alpha']:.3f} / "
                                  f"[{', '.join(f'{s:.3f}' for s in f['learned']['shift'])}]"],
        ["learned scale·scaleᵀ (target 4 I)",
         "[" + "; ".join(", ".join(f"{v:.3f}" for v in r)
                         for r in f["learned"]["scale_scale_T"]) + "]"],
    ])
    rows = []
    for label, r in result["compiled_vs_eager"].items():
        for mode, row in r["modes"].items():
            if "error" in row:
                rows.append([label, f"`{mode}`", "failed", row["error"], "", ""])
                continue
            rows.append([label, f"`{mode}`", f"{row['first_call_s']:.2f} s",
                         f"{row['step_s_median'] * 1e3:.2f} ms", f"{row['steps_per_s']:,.0f}",
                         f"{row['ratio_to_eager']:.1f}x"])
    compiled = _table(["model", "mode", "first call (trace/compile)", "step (median)",
                       "steps/s", "vs eager"], rows)
    notes = "\n".join(
        f"- {label}: held-out pass on 3000 points, eager `mean_nll` "
        f"{r['heldout_pass_3000_points']['eager_mean_nll_s'] * 1e3:.0f} ms vs compiled "
        f"{r['heldout_pass_3000_points']['tf_function_s'] * 1e3:.1f} ms (the compiled pass is "
        "what `fit_max_likelihood` runs after every epoch)."
        for label, r in result["compiled_vs_eager"].items())
    q = result["two_moons"]
    rows = []
    for label, r in q["models"].items():
        stages = " then ".join(
            f"lr {s['learning_rate']:g}: {s['epochs']} ep (best {s['best_epoch']})"
            for s in r["stages"])
        rows.append([label, f"**{r['best_valid_nll_nats']:.3f}**", f"{r['train_nll_nats']:.3f}",
                     f"{r['gap_to_true_density_nats']:+.3f}", stages, str(r["steps"]),
                     f"{r['train_seconds']:.1f} s"])
    rows.append(["keras.io RealNVP example (anchor, target ≤)", f"{KERAS_IO_REALNVP_NLL:.2f}",
                 "", "", "", "", ""])
    rows.append(["exact two-moons density (floor)", f"{q['true_density_valid_nll_nats']:.3f}",
                 "", "0", "", "", ""])
    moons = _table(["model", "held-out NLL (nats)", "train NLL", "vs exact density",
                    "epochs (batch 256)", "steps", "training wall time"], rows)
    return (
        f"{header}\n\nTotal run time: {result['total_seconds']:.0f} s"
        f"{' (quick run)' if result['quick'] else ''}.\n\n"
        f"## 1. First flow: LeakyReLU + affine (lower-triangular + rank-one scale, shift)\n\n"
        f"{first}\n\n"
        f"## 2. Train-step throughput, batch 256 on standardised two moons (Keras 3 Adam)\n\n"
        f"{compiled}\n\n{notes}\n\n"
        f"## 3. Two moons: {q['data']}\n\n{moons}\n\n"
        "NLL in nats per point in the standardised space. Best held-out NLL over the epochs "
        "(early stopping selects on the same held-out set, so it is slightly optimistic); "
        "runs differ by about ±0.02 nats (multi-threaded float sums are not deterministic).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="short budgets, for a sanity check; writes no result files")
    args = parser.parse_args()

    from tfpcourse import device, toy2d

    device.setup(verbose=False)

    raw_train = toy2d.two_moons(3000, noise=MOONS_NOISE, seed=0)
    raw_valid = toy2d.two_moons(3000, noise=MOONS_NOISE, seed=1)
    moons_train, mean, std = toy2d.standardize(raw_train)
    moons_valid, _, _ = toy2d.standardize(raw_valid, mean=mean, std=std)
    # log p_z(z) = log p_x(x) + sum(log std): standardising shifts every NLL by -sum(log std).
    floor = two_moons_true_nll(raw_valid) - float(np.log(std).sum())

    print("1/3 first flow ...", flush=True)
    first = first_flow(args.quick)
    print("2/3 compiled vs eager ...", flush=True)
    compiled = compiled_vs_eager(moons_train, moons_valid, args.quick)
    print("3/3 two moons ...", flush=True)
    quality = two_moons_quality(moons_train, moons_valid, floor, args.quick)

    result = {
        "machine": machine_info(),
        "quick": args.quick,
        "units": {"nll": "nats per example", "time": "seconds", "throughput": "steps per second"},
        "first_flow": first,
        "compiled_vs_eager": compiled,
        "two_moons": {
            "data": "3000 train (seed 0) / 3000 held-out (seed 1), noise 0.05, standardised "
                    "with the training mean and std",
            "true_density_valid_nll_nats": floor,
            "keras_io_realnvp_anchor_nats": KERAS_IO_REALNVP_NLL,
            "models": quality,
        },
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
    (out_dir / "flows.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / "flows.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
