"""PanTiny under JAX vs TensorFlow on CPU: model timings and per-op micro-benchmarks.

Timings are medians; every comparison is measured alternately in one run, so
that the host load affects all sides alike; the load average is printed with
the numbers.

``model``: one worker process per variant, alternating round by round:
PanTiny train step (Adam + L1, library default `jit_compile`) at the given
batch/patch sizes and one-image inference at the given PAN sizes. A variant is
a backend with options, e.g. ``jax``, ``jax:off=all`` (every JAX fast path of
`keras_pansharp.utils.perf` switched off: the straightforward formulation),
``jax:off=conv3x3+gelu_gate``, ``jax:malloc`` (glibc keeps freed memory, see
below), ``jax:xla=--xla_backend_optimization_level=0`` (the test suite's
flag), ``jax:src=/path/to/other/checkout`` (the package imported from another
source tree, e.g. an export of the previous commit). Before timing, every
variant's output is checked against the first one on the same weights (max abs
difference <= 1e-4). Each worker keeps its peak memory (~6 GB for a batch-16
128^2 PanTiny step): mind the host's RAM when listing many variants::

    python benchmarks/profile_jax.py model --variants tensorflow,jax,jax:off=all
    python benchmarks/profile_jax.py model --train 16x128,4x64 --infer 512 \\
        --variants tensorflow:malloc,jax:malloc

``ops``: per-op micro-benchmarks under JAX (forward and forward+backward,
wall and CPU time) of alternative formulations of PanTiny's hot spots: the
3x3 depthwise convolution and its kernel gradient, the channel LayerNorm, the
GELU gate, the 1x1 convolutions and the 3x3 convolution::

    python benchmarks/profile_jax.py ops --batch 16 --size 128

``malloc``: glibc returns big freed blocks to the OS; XLA on CPU allocates its
temporary buffers afresh for every execution, so each JAX training step then
page-faults its whole working set in again (the page faults per call are
printed). The option sets ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=<1 TB>`` for that worker, the environment equivalent of
`keras_pansharp.utils.perf.retain_freed_host_memory()`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOL = 1e-4
MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(10**12),
}


def load_str() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def make_batch(seed: int, batch: int, size: int, bands: int = 4):
    """Deterministic inputs (with the precomputed "lms") and targets in [0, 1]."""
    rng = np.random.default_rng(seed)
    ms = rng.random((batch, size // 4, size // 4, bands), dtype=np.float32)
    lms = np.repeat(np.repeat(ms, 4, axis=1), 4, axis=2)
    lms = np.clip(lms + 0.02 * rng.standard_normal(lms.shape, dtype=np.float32), 0, 1)
    pan = rng.random((batch, size, size, 1), dtype=np.float32)
    gt = np.clip(lms + 0.05 * rng.standard_normal(lms.shape, dtype=np.float32), 0, 1)
    return {"ms": ms, "pan": pan, "lms": lms.astype(np.float32)}, gt.astype(np.float32)


# ------------------------------------------------------------------- model mode
def parse_variant(spec: str) -> tuple[str, dict]:
    backend, *opts = spec.split(":")
    options: dict = {"off": [], "malloc": False, "xla": None, "src": None}
    for opt in opts:
        if opt == "malloc":
            options["malloc"] = True
        elif opt.startswith("off="):
            options["off"] = [o for o in opt[4:].split("+") if o]
        elif opt.startswith("xla="):
            options["xla"] = opt[4:]
        elif opt.startswith("src="):
            options["src"] = opt[4:]
        else:
            raise SystemExit(f"unknown variant option {opt!r} in {spec!r}")
    return backend, options


def worker_main(spec: str):
    """Serve JSON commands on stdin, answer on the original stdout."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    _, options = parse_variant(spec)
    import keras

    sys.path.insert(0, options["src"] or str(ROOT))
    from keras_pansharp.models.pantiny import PanTiny
    from keras_pansharp.utils import perf

    off = options["off"]
    for key in getattr(perf, "JAX_FAST_PATHS", {}):
        if "all" in off or key in off:
            perf.JAX_FAST_PATHS[key] = False
    keras.utils.set_random_seed(0)
    model = PanTiny()
    model.compile(
        optimizer=keras.optimizers.Adam(5e-4),
        loss="mean_absolute_error",
        jit_compile=perf.default_jit_compile(),
    )
    out.write(json.dumps({"ready": spec}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        res: dict = {}
        if op == "save":
            arrays = [keras.ops.convert_to_numpy(w) for w in model.weights]
            np.savez(cmd["path"], *arrays)
        elif op == "load":
            data = np.load(cmd["path"])
            for i, w in enumerate(model.weights):
                w.assign(data[f"arr_{i}"])
        elif op == "predict_to":
            x, _ = make_batch(cmd["seed"], cmd["batch"], cmd["size"])
            np.save(cmd["path"], np.asarray(model.predict_on_batch(x)))
        elif op in ("train", "infer"):
            x, y = make_batch(cmd["seed"], cmd["batch"], cmd["size"])
            times, cpu, faults = [], [], []
            for _ in range(cmd["n"]):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                c0, t0 = time.process_time(), time.perf_counter()
                if op == "train":
                    float(np.asarray(model.train_on_batch(x, y)))
                else:
                    np.asarray(model.predict_on_batch(x))
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            res = {"times": times, "cpu": cpu, "faults": faults}
        elif op == "quit":
            out.write(json.dumps({"ok": True}) + "\n")
            break
        out.write(json.dumps({"ok": True, **res}) + "\n")


class Worker:
    def __init__(self, spec: str, verbose: bool):
        backend, options = parse_variant(spec)
        env = dict(os.environ, KERAS_BACKEND=backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if options["malloc"]:
            env.update(MALLOC_ENV)
        if options["xla"]:
            env["XLA_FLAGS"] = options["xla"]
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if verbose else subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.spec} died (rerun with --verbose)")
        return json.loads(line)

    def __call__(self, op, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self("quit")
        except Exception:
            pass
        self.proc.wait(timeout=120)


def model_main(args):
    variants = [v for v in args.variants.split(",") if v]
    trains = [tuple(int(v) for v in s.split("x")) for s in args.train.split(",") if s]
    infers = [int(s) for s in args.infer.split(",") if s]
    print(f"variants {variants}; load before: {load_str()}", flush=True)
    workers = [Worker(v, args.verbose) for v in variants]
    tmp = tempfile.mkdtemp(prefix="kp_profile_")
    wpath = os.path.join(tmp, "weights.npz")
    workers[0]("save", path=wpath)
    outs = []
    for w in workers:
        w("load", path=wpath)
        path = os.path.join(tmp, f"out{len(outs)}.npy")
        w("predict_to", path=path, seed=123, batch=2, size=64)
        outs.append(np.load(path))
    for w, y in zip(workers[1:], outs[1:]):
        diff = float(np.max(np.abs(y - outs[0])))
        status = "OK" if diff <= TOL else "MISMATCH"
        print(
            f"same outputs {w.spec} vs {variants[0]}: max |diff| {diff:.2e} [{status}]"
        )
        if diff > TOL:
            raise SystemExit("outputs differ: the comparison would not be fair")
    keys = [("train", b, s) for b, s in trains] + [("infer", 1, s) for s in infers]
    for w in workers:  # warm-up: compile every shape
        for op, b, s in keys:
            w(op, seed=1, batch=b, size=s, n=1)
    fields = ("times", "cpu", "faults")
    results = {v: {k: {f: [] for f in fields} for k in keys} for v in variants}
    for r in range(args.repeats):
        for w in workers if r % 2 == 0 else workers[::-1]:
            for op, b, s in keys:
                res = w(op, seed=1, batch=b, size=s, n=args.steps)
                for f in fields:
                    results[w.spec][(op, b, s)][f].extend(res[f])
        print(f"  round {r + 1}/{args.repeats}, load {load_str()}", flush=True)
    for w in workers:
        w.close()
    print()
    head = ["metric", *variants, *[f"{v} / {variants[0]}" for v in variants[1:]]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key in keys:
        op, b, s = key
        if op == "train":
            label = f"train s/step (batch {b}, {s}^2)"
        else:
            label = f"infer s/image ({s}^2)"
        med = {v: statistics.median(results[v][key]["times"]) for v in variants}
        cpu = {v: statistics.median(results[v][key]["cpu"]) for v in variants}
        cells = [label, *[f"{med[v]:.3f} (cpu {cpu[v]:.2f})" for v in variants]]
        cells += [f"{med[v] / med[variants[0]]:.2f}x" for v in variants[1:]]
        print("| " + " | ".join(cells) + " |")
    faults = {
        v: {
            f"{op}{b}x{s}": int(statistics.median(results[v][(op, b, s)]["faults"]))
            for op, b, s in keys
        }
        for v in variants
    }
    print("minor page faults per call (median):", faults)
    print(f"load after: {load_str()}")


# --------------------------------------------------------------------- ops mode
def ops_main(args):
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import jax.numpy as jnp
    from jax import lax

    sys.path.insert(0, str(ROOT))
    from keras_pansharp.utils import perf

    rng = np.random.default_rng(0)
    b, s = args.batch, args.size
    dims = ("NHWC", "HWIO", "NHWC")

    def arr(*shape, scale=1.0):
        return jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * scale)

    def pad(x):
        return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

    def timed(fn, *a):
        jax.block_until_ready(fn(*a))
        ts, cs = [], []
        for _ in range(args.calls):
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(fn(*a))
            ts.append(time.perf_counter() - t0)
            cs.append(time.process_time() - c0)
        return ts, cs

    def compare(title, fns, args_, grad=True):
        """Forward (summed against fixed weights) and forward+backward of each fn.

        Gradients are reduced to scalars inside the jitted function, so that
        no variant pays for writing large outputs.
        """
        wt = arr(*jax.eval_shape(fns[0][1], *args_).shape)
        argnums = tuple(range(1, len(args_) + 1))
        jitted = []
        ref = None
        for name, f in fns:
            fwd = jax.jit(lambda w, *a, f=f: jnp.sum(f(*a) * w))
            g = jax.grad(lambda w, *a, f=f: jnp.sum(f(*a) * w), argnums=argnums)
            bwd = jax.jit(lambda w, *a, g=g: [jnp.sum(t * t) for t in g(w, *a)])
            vals = [np.asarray(f(*args_))]
            if grad:
                vals += [np.asarray(t) for t in g(wt, *args_)]
            ref = vals if ref is None else ref
            err = max(
                float(np.max(np.abs(u - v)) / (np.max(np.abs(v)) + 1e-30))
                for u, v in zip(vals, ref)
            )
            jitted.append((name, fwd, bwd, err))
        res = {n: {"f": ([], []), "g": ([], [])} for n, *_ in jitted}
        for r in range(args.rounds):
            for name, fwd, bwd, _ in jitted if r % 2 == 0 else jitted[::-1]:
                for key, fn in (("f", fwd), ("g", bwd)) if grad else (("f", fwd),):
                    t, c = timed(fn, wt, *args_)
                    res[name][key][0].extend(t)
                    res[name][key][1].extend(c)
        print(f"\n{title}  (batch {b}, {s}^2; load {load_str()})")
        for name, *_, err in jitted:
            med = {
                k: [1e3 * statistics.median(res[name][k][i]) for i in (0, 1)]
                for k in ("f", "g")
                if res[name][k][0]
            }
            line = f"  {name:34s} fwd {med['f'][0]:7.1f} ms (cpu {med['f'][1]:6.1f})"
            if grad:
                line += f"  fwd+bwd {med['g'][0]:7.1f} ms (cpu {med['g'][1]:6.1f})"
            print(line + f"  rel.diff {err:.1e}", flush=True)

    def shifted(xp, k):
        out = None
        for i in range(3):
            for j in range(3):
                t = xp[:, i : i + s, j : j + s, :] * k[i, j]
                out = t if out is None else out + t
        return out

    def grouped_conv(x, k):
        return lax.conv_general_dilated(
            x, k[:, :, None, :], (1, 1), "SAME", dimension_numbers=dims,
            feature_group_count=x.shape[-1],
        )  # fmt: skip

    def im2col_dw(x, k):
        xp = pad(x)
        cols = [xp[:, i : i + s, j : j + s] for i in range(3) for j in range(3)]
        return jnp.einsum("bhwck,kc->bhwc", jnp.stack(cols, -1), k.reshape(9, -1))

    for c in (28, 56):
        compare(
            f"3x3 depthwise conv, {c} channels",
            [
                ("keras.ops.depthwise_conv (XLA)", grouped_conv),
                ("9 shifted mul-adds (autodiff)", lambda x, k: shifted(pad(x), k)),
                ("im2col + einsum", im2col_dw),
                ("perf.depthwise_conv3x3 (JAX path)", perf.depthwise_conv3x3),
            ],
            (arr(b, s, s, c), arr(3, 3, c)),
        )

    def dk_sums(xp, dy):
        return jnp.stack(
            [
                jnp.sum(xp[:, i : i + s, j : j + s] * dy, axis=(0, 1, 2))
                for i in range(3)
                for j in range(3)
            ]
        )

    compare(
        "depthwise kernel gradient only, 56 channels",
        [
            ("9 sums over shifted views", dk_sums),
            (
                "perf._depthwise_kernel_grad",
                lambda xp, dy: perf._depthwise_kernel_grad(xp, dy).reshape(9, -1),
            ),
        ],
        (pad(arr(b, s, s, 56)), arr(b, s, s, 56)),
        grad=False,
    )
    eps = 1e-5

    def ln_ref(x, g, bb):
        mean = jnp.mean(x, -1, keepdims=True)
        xc = x - mean
        return xc * lax.rsqrt(jnp.mean(xc * xc, -1, keepdims=True) + eps) * g + bb

    def ln_onepass(x, g, bb):
        m, m2 = jnp.mean(x, -1, keepdims=True), jnp.mean(x * x, -1, keepdims=True)
        return (x - m) * lax.rsqrt(jnp.maximum(m2 - m * m, 0) + eps) * g + bb

    def ln_standardize(x, g, bb):
        return jax.nn.standardize(x, axis=-1, epsilon=eps) * g + bb

    compare(
        "channel LayerNorm, 28 channels",
        [
            ("mean/var (autodiff) = JAX path", ln_ref),
            ("one pass E[x], E[x^2]", ln_onepass),
            ("jax.nn.standardize", ln_standardize),
            ("TF-style custom gradient", lambda x, g, bb: _custom_ln(x, eps) * g + bb),
        ],
        (arr(b, s, s, 28, scale=3.0), arr(28), arr(28)),
    )

    def gate_erf(a, v):
        return a * 0.5 * (1 + lax.erf(a * np.float32(np.sqrt(0.5)))) * v

    compare(
        "GELU gate gelu(a) * b, 56 channels",
        [
            ("jax.nn.gelu (erfc), autodiff", lambda a, v: jax.nn.gelu(a, False) * v),
            ("erf form, autodiff", gate_erf),
            ("perf.gelu_gate (JAX path)", perf.gelu_gate),
        ],
        (arr(b, s, s, 56, scale=2.0), arr(b, s, s, 56)),
    )

    def mm_2d(x, k):
        return (x.reshape(-1, x.shape[-1]) @ k).reshape(*x.shape[:-1], k.shape[-1])

    def conv_1x1(x, k):
        return lax.conv_general_dilated(x, k[None, None], (1, 1), "SAME", dims)

    for ci, co in ((28, 112), (112, 28)):
        compare(
            f"1x1 conv {ci}->{co}",
            [
                ("matmul on (..., C)", jnp.matmul),
                ("2-D reshape + matmul", mm_2d),
                ("lax.conv 1x1", conv_1x1),
            ],
            (arr(b, s, s, ci), arr(ci, co)),
        )
    compare(
        "3x3 conv 28->28",
        [
            (
                "lax.conv (autodiff)",
                lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dims),
            ),
            ("perf.conv3x3 (JAX path)", perf.conv3x3),
        ],
        (arr(b, s, s, 28), arr(3, 3, 28, 28)),
    )


def _custom_ln(x, eps):
    """LayerNorm normalisation with the hand-written gradient of the TF path."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def fwd(x):
        mean = jnp.mean(x, -1, keepdims=True)
        xc = x - mean
        inv = lax.rsqrt(jnp.mean(xc * xc, -1, keepdims=True) + eps)
        return xc * inv, (xc * inv, inv)

    def bwd(res, dy):
        xhat, inv = res
        mean_dy = jnp.mean(dy, -1, keepdims=True)
        return (inv * (dy - mean_dy - xhat * jnp.mean(dy * xhat, -1, keepdims=True)),)

    norm = jax.custom_vjp(lambda x: fwd(x)[0])
    norm.defvjp(fwd, bwd)
    return norm(x)


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("mode", nargs="?", choices=["model", "ops"], default="model")
    p.add_argument("--variants", default="tensorflow,jax,jax:off=all")
    p.add_argument("--train", default="16x128,4x64", help="BATCHxSIZE list")
    p.add_argument("--infer", default="512", help="PAN sizes ('' skips)")
    p.add_argument("--repeats", type=int, default=3, help="model: alternating rounds")
    p.add_argument("--steps", type=int, default=1, help="model: timed calls a round")
    p.add_argument("--batch", type=int, default=16, help="ops: batch")
    p.add_argument("--size", type=int, default=128, help="ops: image size")
    p.add_argument("--rounds", type=int, default=3, help="ops: alternating rounds")
    p.add_argument("--calls", type=int, default=2, help="ops: timed calls a round")
    p.add_argument("--verbose", action="store_true", help="show worker stderr")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker_main(args.worker)
    if args.mode == "ops":
        return ops_main(args)
    return model_main(args)


if __name__ == "__main__":
    main()
