"""Benchmark the data layer: MNIST load time from the cache, and tf.data pipeline throughput.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_data.py            # uses the normal cache / mirror

It prints a Markdown table and writes ``benchmarks/results/data.json`` and ``data.md``.

What is measured
----------------
* *cold process*: a new Python process imports ``tfpcourse.data`` and loads MNIST (train and
  test) from a warm cache: what a notebook pays in its first load. Median of 5 processes; the
  process start-up and import time are measured separately and excluded.
* *warm*: the same load repeated inside one process (median of 7).
* *first load*: from an empty cache folder with the files taken from the mirror (copy, verify
  with SHA-256, decode, write the decoded cache); only when ``TFPCOURSE_DATA_MIRROR`` is set.
* *pipeline*: examples per second through ``pipelines.image_dataset`` (scaling, shuffling,
  batching 128, prefetch), with and without dynamic binarisation, after one warm-up epoch that
  fills the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_info

HERE = Path(__file__).resolve().parent


def _cold_process_seconds(repeats: int = 5) -> float:
    code = (
        "import time; t0 = time.perf_counter(); from tfpcourse import data; "
        "t1 = time.perf_counter(); data.mnist(); t2 = time.perf_counter(); print(t2 - t1)"
    )
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def _first_load_seconds() -> float | None:
    if not os.environ.get("TFPCOURSE_DATA_MIRROR"):
        return None
    folder = tempfile.mkdtemp(prefix="tfpcourse-bench-")
    try:
        code = "import time; from tfpcourse import data; t=time.perf_counter(); data.mnist(); " \
               "print(time.perf_counter()-t)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=dict(os.environ, TFPCOURSE_DATA_DIR=folder))
        return float(out.stdout.strip())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    from tfpcourse import data, device, timing

    data.mnist()  # make sure the cache is filled
    cold = _cold_process_seconds()
    warm = timing.measure(data.mnist, repeats=7).median
    first = _first_load_seconds()

    device.setup(verbose=False)

    from tfpcourse import pipelines

    mnist = data.mnist()
    throughput = {}
    for label, binarize in [("scaled", None), ("dynamic binarisation", "dynamic")]:
        ds = pipelines.image_dataset(mnist.train.images, mnist.train.labels, batch_size=128,
                                     shuffle=True, seed=0, binarize=binarize)
        for _ in ds:  # warm-up epoch fills the cache
            pass
        start = time.perf_counter()
        n = 0
        for x, _ in ds:
            n += int(x.shape[0])
        throughput[label] = n / (time.perf_counter() - start)

    result = {
        "machine": machine_info(),
        "mnist_cache_load_cold_process_s": cold,
        "mnist_cache_load_warm_s": warm,
        "mnist_first_load_from_mirror_s": first,
        "pipeline_examples_per_s": throughput,
    }
    rows = [
        ("MNIST load from cache, new process (train+test)", f"{cold * 1e3:.0f} ms"),
        ("MNIST load from cache, same process", f"{warm * 1e3:.0f} ms"),
        ("MNIST first load from the mirror (verify + decode)",
         f"{first:.2f} s" if first is not None else "n/a (no mirror set)"),
    ] + [(f"tf.data pipeline, {k}", f"{v:,.0f} examples/s") for k, v in throughput.items()]
    table = "| measurement | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    header = (f"Machine: {result['machine']['cpus']} CPUs, {result['machine']['platform']}, "
              f"Python {result['machine']['python']}, TensorFlow {result['machine']['tensorflow']}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "data.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / "data.md").write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    print(header)
    print()
    print(table)


if __name__ == "__main__":
    main()
