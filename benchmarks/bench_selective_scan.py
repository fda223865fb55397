"""One selective scan: time and memory of its forward pass and gradient.

Pan-Mamba runs 30 selective scans per image at PAN resolution; how
`keras_pansharp.layers.selective_scan` computes the recurrence (`method`:
sequential or associative) decides its speed, and whether it scans a
sequence whole or in chunks (`chunk_size`) its memory. This benchmark times
one scan's forward pass, and the forward pass with the gradient of its sum
with respect to `delta`, on random `(batch, L, d)` inputs with `n` states,
each configuration in a fresh process so that the peak RSS is its own.

Usage:
    python benchmarks/bench_selective_scan.py
    KERAS_BACKEND=jax python benchmarks/bench_selective_scan.py --lengths=4096,16384
    python benchmarks/bench_selective_scan.py --batch=8 --lengths=4096 \
        --methods=sequential,associative --modes=chunked

Prints one line per (length, method, mode): first-call time of the gradient
(tracing or compiling included), then the mean time of the next `--repeats`
calls of the forward pass and of the gradient, and the peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["4096", "16384"], "Sequence lengths L (tokens).")
flags.DEFINE_list("modes", ["whole", "chunked"], "whole (chunk_size=0), chunked.")
flags.DEFINE_list("methods", ["sequential", "associative"], "Recurrence methods.")
flags.DEFINE_integer("batch", 1, "Batch size.")
flags.DEFINE_integer("d", 64, "Channels (Pan-Mamba: 2 x 32 filters).")
flags.DEFINE_integer("n", 16, "State size (Pan-Mamba: 16).")
flags.DEFINE_integer(
    "chunk", 0, "Chunk size of the chunked mode (0: the method's library default)."
)
flags.DEFINE_integer("repeats", 3, "Timed calls after the first.")
flags.DEFINE_string("one", "", "Internal: run one 'length,method,mode' and print JSON.")


def measure(length: int, method: str, mode: str) -> dict:
    """Time one scan's forward pass and gradient in this process."""
    import keras
    import numpy as np

    from keras_pansharp.layers import selective_scan as ss

    rng = np.random.default_rng(0)
    shape, d, n = (FLAGS.batch, length), FLAGS.d, FLAGS.n
    u, delta = (rng.normal(size=(*shape, d)).astype("float32") for _ in "ud")
    a = -np.exp(rng.normal(size=(d, n))).astype("float32")
    b, c = (rng.normal(size=(*shape, n)).astype("float32") for _ in "bc")
    default = ss.SEQUENTIAL_CHUNK if method == "sequential" else ss.CHUNK
    chunk = (FLAGS.chunk or default) if mode == "chunked" else 0

    def forward(delta):
        return ss.selective_scan(u, delta, a, b, c, chunk_size=chunk, method=method)

    def loss(delta):
        return keras.ops.sum(forward(delta))

    if keras.backend.backend() == "jax":
        import jax

        step, fwd = jax.jit(jax.grad(loss)), jax.jit(forward)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fwd = tf.function(forward)

        @tf.function
        def step(delta):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                value = loss(delta)
            return tape.gradient(value, delta)

        delta = tf.constant(delta)
    else:
        raise app.UsageError("this benchmark supports the TF and JAX backends")
    t = time.perf_counter()
    np.asarray(step(delta))
    first = time.perf_counter() - t
    np.asarray(fwd(delta))
    t = time.perf_counter()
    for _ in range(FLAGS.repeats):
        np.asarray(fwd(delta))
    forward_s = (time.perf_counter() - t) / FLAGS.repeats
    t = time.perf_counter()
    for _ in range(FLAGS.repeats):
        np.asarray(step(delta))
    return {
        "length": length,
        "method": method,
        "mode": mode,
        "backend": keras.backend.backend(),
        "first_s": round(first, 2),
        "forward_s": round(forward_s, 3),
        "step_s": round((time.perf_counter() - t) / FLAGS.repeats, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv):
    del argv
    if FLAGS.one:
        length, method, mode = FLAGS.one.split(",")
        print(json.dumps(measure(int(length), method, mode)))
        return
    bad = [m for m in FLAGS.modes if m not in ("whole", "chunked")]
    bad += [m for m in FLAGS.methods if m not in ("sequential", "associative")]
    if bad:
        raise app.UsageError(
            f"unknown modes or methods {bad}; use whole, chunked and "
            "sequential, associative"
        )
    print(
        f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}, batch "
        f"{FLAGS.batch}, d {FLAGS.d}, n {FLAGS.n}, chunk {FLAGS.chunk or 'default'}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        "| L | method | mode | first call (s) | forward (s) | forward + gradient (s)"
        " | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    keys = ("d", "n", "chunk", "repeats", "batch")
    for length in FLAGS.lengths:
        for method in FLAGS.methods:
            for mode in FLAGS.modes:
                args = [f"--{k}={getattr(FLAGS, k)}" for k in keys]
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        f"--one={length},{method},{mode}",
                        *args,
                    ],
                    capture_output=True,
                    text=True,
                )
                row = f"| {length} | {method} | {mode} |"
                if proc.returncode:
                    print(f"{row} failed: {proc.stderr.strip()[-300:]} |")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                print(
                    f"{row} {r['first_s']} | {r['forward_s']} | {r['step_s']} | "
                    f"{r['peak_rss_mb']} |",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
