"""Side-by-side benchmark: keras_pansharp PanTiny vs a plain PyTorch eager PanTiny.

Each framework runs in its own worker process (so thread pools and memory are
attributable), driven by this script in ONE run, alternating round by round:

1. Same numerics: the Keras model's weights are copied into the PyTorch model
   (`benchmarks/torch_pantiny.py`) and both must give equal outputs (max abs
   difference <= 1e-4) on the same inputs before anything is timed.
2. Training s/step: batch 16 of 128x128 PAN patches, Adam (lr 5e-4) + L1 loss.
3. Inference s/image: one PAN of 512x512 and of 2048x2048 (4 bands).
4. Peak inference memory: a fresh subprocess per framework builds the model and
   fuses one 2048x2048 scene; `resource.getrusage(RUSAGE_SELF).ru_maxrss`.

Run (needs the optional `bench` extra, `pip install keras-pansharp[bench]`)::

    python benchmarks/bench_vs_torch.py                 # full run, TF backend
    python benchmarks/bench_vs_torch.py --quick         # a few seconds/minutes
    python benchmarks/bench_vs_torch.py --backends tensorflow,jax

Without PyTorch installed the Keras backends are compared with each other
(ratios against the first backend).

The Keras side uses the library defaults (`jit_compile="auto"` resolution of the
library, float32) unless `--jit-compile` is given. Timings are medians over the
repeats; the host load (`os.getloadavg`) is printed with the numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
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


# --------------------------------------------------------------------------- data
def make_batch(seed: int, batch: int, size: int, bands: int):
    """Deterministic float32 inputs in [0, 1]: lms (B,S,S,C), pan (B,S,S,1), gt."""
    rng = np.random.default_rng(seed)
    ms = rng.random((batch, size // 4, size // 4, bands), dtype=np.float32)
    # A smooth-ish upsampled MS (nearest x4 + noise) keeps values realistic.
    lms = np.repeat(np.repeat(ms, 4, axis=1), 4, axis=2)
    lms = np.clip(lms + 0.02 * rng.standard_normal(lms.shape, dtype=np.float32), 0, 1)
    pan = rng.random((batch, size, size, 1), dtype=np.float32)
    gt = np.clip(lms + 0.05 * rng.standard_normal(lms.shape, dtype=np.float32), 0, 1)
    return ms, lms.astype(np.float32), pan, gt.astype(np.float32)


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ torch worker
class TorchRunner:
    name = "torch"

    def __init__(self, bands: int, threads: int | None):
        import torch

        sys.path.insert(0, str(HERE))
        from torch_pantiny import TorchPanTiny

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.model = TorchPanTiny(num_bands=bands)
        self.opt = None

    def load(self, weights_npz: str):
        self.model.load_state_dict(
            keras_to_torch_state(dict(np.load(weights_npz)), self.model)
        )

    def _t(self, x):  # NHWC numpy -> NCHW tensor
        return self.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def predict(self, lms, pan, ms=None):
        torch = self.torch
        self.model.eval()
        with torch.inference_mode():
            y = self.model(self._t(lms), self._t(pan))
        return y.numpy().transpose(0, 2, 3, 1)

    def train_steps(self, lms, pan, gt, steps: int, ms=None):
        torch = self.torch
        self.model.train()
        if self.opt is None:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=5e-4)
        lms_t, pan_t, gt_t = self._t(lms), self._t(pan), self._t(gt)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.l1_loss(self.model(lms_t, pan_t), gt_t)
            loss.backward()
            self.opt.step()
            times.append(time.perf_counter() - t0)
        return times


# ------------------------------------------------------------------ keras worker
class KerasRunner:
    def __init__(self, bands: int, jit_compile, seed: int = 0):
        import keras

        sys.path.insert(0, str(ROOT))
        from keras_pansharp.models.pantiny import PanTiny

        keras.utils.set_random_seed(seed)
        self.keras = keras
        self.name = "keras-" + keras.backend.backend()
        self.model = PanTiny(bands=bands)
        if jit_compile is None:  # the library's default for this backend/device
            from keras_pansharp.utils.perf import default_jit_compile

            jit_compile = default_jit_compile()
        self.jit_compile = jit_compile
        self.name += "+xla" if jit_compile is True else ""
        self.compiled = False

    @staticmethod
    def _inputs(ms, lms, pan):
        # The precomputed "lms" is given, as for the torch model: both time
        # the network itself, not the upsampler.
        return {"ms": ms, "pan": pan, "lms": lms}

    def save(self, weights_npz: str):
        arrays = {}
        for i, w in enumerate(self.model.weights):
            arrays[f"{i:03d}|{w.path}"] = self.keras.ops.convert_to_numpy(w)
        np.savez(weights_npz, **arrays)

    def load(self, weights_npz: str):
        data = np.load(weights_npz)
        keys = sorted(data.files)
        assert len(keys) == len(self.model.weights)
        for k, w in zip(keys, self.model.weights):
            w.assign(data[k])

    def _compile(self):
        if self.compiled:
            return
        kwargs = {"jit_compile": self.jit_compile}
        self.model.compile(
            optimizer=self.keras.optimizers.Adam(5e-4),
            loss="mean_absolute_error",
            **kwargs,
        )
        self.compiled = True

    def predict(self, lms, pan, ms=None):
        self._compile()
        y = self.model.predict_on_batch(self._inputs(ms, lms, pan))
        return np.asarray(y)

    def train_steps(self, lms, pan, gt, steps: int, ms=None):
        self._compile()
        x = self._inputs(ms, lms, pan)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = self.model.train_on_batch(x, gt)
            float(np.asarray(loss))  # block until done
            times.append(time.perf_counter() - t0)
        return times


# ------------------------------------------------------------- weight conversion
def keras_to_torch_state(arrays: dict, torch_model) -> dict:
    """Map Keras weights (saved in `model.weights` order) onto the torch model.

    Pairs weights in order (both models create them in the same order: embed,
    blocks [norm1, qkv, qkv depthwise, temperature, proj, norm2, ffn in,
    ffn depthwise, ffn out], fusion, body blocks, refine, output) and converts
    layouts: conv (kh, kw, in, out) -> (out, in, kh, kw); depthwise
    (kh, kw, C, 1) -> (C, 1, kh, kw); 1x1 kernels given as (in, out) ->
    (out, in, 1, 1); temperature (heads,) -> (heads, 1, 1).
    """
    import torch

    keys = sorted(arrays)
    tparams = list(torch_model.state_dict().items())
    if len(keys) != len(tparams):
        raise ValueError(
            f"Keras model has {len(keys)} weights, torch model {len(tparams)}: "
            f"{[k.split('|')[1] for k in keys]} vs {[n for n, _ in tparams]}"
        )
    state = {}
    for k, (name, p) in zip(keys, tparams):
        a = arrays[k]
        tshape = tuple(p.shape)
        if (
            a.ndim == 4
            and tshape[1] == 1
            and a.shape[3] == 1
            and p.ndim == 4
            and a.shape[2] == tshape[0]
        ):
            a = a.transpose(2, 3, 0, 1)  # depthwise
        elif a.ndim == 4:
            a = a.transpose(3, 2, 0, 1)  # regular conv
        elif a.ndim == 2 and p.ndim == 4:
            a = a.T.reshape(tshape)  # dense / 1x1 kernel
        elif a.ndim == 3 and p.ndim == 4:  # depthwise stored as (kh, kw, C)
            a = a.transpose(2, 0, 1)[:, None]
        else:
            a = a.reshape(tshape)
        if tuple(a.shape) != tshape:
            raise ValueError(
                f"shape mismatch mapping {k} {arrays[k].shape} -> {name} {tshape}"
            )
        state[name] = torch.from_numpy(np.ascontiguousarray(a))
    return state


# ------------------------------------------------------------------ worker main
def worker_main(args):
    """Serve JSON commands on stdin; answer on the original stdout fd."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything frameworks print goes to stderr
    if args.worker == "torch":
        runner = TorchRunner(args.bands, args.threads)
    else:
        os.environ["KERAS_BACKEND"] = args.worker
        runner = KerasRunner(args.bands, parse_jit(args.jit_compile))
    out.write(json.dumps({"ready": runner.name}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        res = {}
        if op == "save":
            runner.save(cmd["path"])
        elif op == "load":
            runner.load(cmd["path"])
        elif op == "predict_to":
            ms, lms, pan, _ = make_batch(
                cmd["seed"], cmd["batch"], cmd["size"], args.bands
            )
            np.save(cmd["path"], runner.predict(lms, pan, ms))
        elif op == "infer":
            ms, lms, pan, _ = make_batch(cmd["seed"], 1, cmd["size"], args.bands)
            times = []
            for _ in range(cmd["n"]):
                t0 = time.perf_counter()
                runner.predict(lms, pan, ms)
                times.append(time.perf_counter() - t0)
            res["times"] = times
        elif op == "train":
            ms, lms, pan, gt = make_batch(
                cmd["seed"], cmd["batch"], cmd["size"], args.bands
            )
            res["times"] = runner.train_steps(lms, pan, gt, cmd["n"], ms)
        elif op == "memory":
            ms, lms, pan, _ = make_batch(cmd["seed"], 1, cmd["size"], args.bands)
            res["rss_before_mb"] = current_rss_mb()
            res["peak_before_mb"] = peak_rss_mb()
            runner.predict(lms, pan, ms)
            res["peak_mb"] = peak_rss_mb()
        elif op == "quit":
            out.write(json.dumps({"ok": True}) + "\n")
            break
        out.write(json.dumps({"ok": True, **res}) + "\n")


def parse_jit(value):
    if value in (None, "default"):
        return None
    return {"true": True, "false": False, "auto": "auto"}[value.lower()]


#: glibc settings equal to `keras_pansharp.utils.perf.retain_freed_host_memory()`.
RETAIN_MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "1000000000000",
}


def worker_env(kind: str, args) -> dict:
    """Extra environment of a worker: the glibc settings for JAX (`--jax-malloc`)."""
    if kind == "jax" and args.jax_malloc == "retain":
        return dict(RETAIN_MALLOC_ENV)
    return {}


class Worker:
    def __init__(self, kind: str, args, extra_env=None):
        env = dict(os.environ)
        env.update(extra_env or {})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        cmd = [sys.executable, __file__, "--worker", kind, "--bands", str(args.bands)]
        if args.jit_compile:
            cmd += ["--jit-compile", args.jit_compile]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        self.kind = kind
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if args.verbose else subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.name = self._read()["ready"]

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.kind} died (rerun with --verbose)")
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
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------ orchestrator
def load_str():
    la = os.getloadavg()
    return f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}"


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--backends",
        default="tensorflow",
        help="Keras backends, comma separated (tensorflow,jax)",
    )
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds")
    p.add_argument(
        "--train-steps", type=int, default=1, help="timed train steps per round"
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=128, help="training PAN patch size")
    p.add_argument("--sizes", default="512,2048", help="inference PAN sizes")
    p.add_argument(
        "--large-repeats", type=int, default=1, help="rounds for sizes >= 1024"
    )
    p.add_argument(
        "--memory-size", type=int, default=2048, help="0 disables the memory test"
    )
    p.add_argument("--bands", type=int, default=4)
    p.add_argument(
        "--jit-compile", default=None, help="true/false/auto; default: library default"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument(
        "--quick",
        action="store_true",
        help="batch 4, 64^2 patches, 256^2 inference, 512^2 memory",
    )
    p.add_argument(
        "--jax-malloc",
        choices=("retain", "default"),
        default="retain",
        help="JAX workers: 'retain' runs them with glibc keeping freed memory "
        "(MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e12, what "
        "keras_pansharp.utils.perf.retain_freed_host_memory() sets), 'default' "
        "leaves glibc's defaults",
    )
    p.add_argument("--verbose", action="store_true", help="show worker stderr")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker_main(args)
    if args.quick:
        args.batch, args.patch, args.sizes, args.memory_size = 4, 64, "256", 512
        args.repeats = min(args.repeats, 2)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if "model name" in ln)
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, {os.cpu_count()} logical cores; backends {backends}")
    print(f"load before: {load_str()} (medians over alternating rounds)")
    tmp = tempfile.mkdtemp(prefix="kp_bench_")
    wpath = os.path.join(tmp, "weights.npz")

    # --- build workers, copy weights, check equal numerics
    workers = []
    for b in backends:
        workers.append(Worker(b, args, extra_env=worker_env(b, args)))
    workers[0]("save", path=wpath)
    for w in workers[1:]:
        w("load", path=wpath)
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch:
        tw = Worker("torch", args)
        tw("load", path=wpath)
        workers.append(tw)
    else:
        print(
            "PyTorch is not installed (pip install 'keras-pansharp[bench]'): "
            f"comparing the Keras backends only, ratios against {workers[0].name}"
        )
    check = dict(seed=123, batch=2, size=64)
    outs = {}
    for w in workers:
        path = os.path.join(tmp, f"out_{w.name}.npy")
        w("predict_to", path=path, **check)
        outs[w.name] = np.load(path)
    ref_name = "torch" if has_torch else workers[0].name
    ref = outs[ref_name]
    for name, y in outs.items():
        if name == ref_name:
            continue
        diff = float(np.max(np.abs(y - ref)))
        status = "OK" if diff <= TOL else "MISMATCH"
        print(
            f"equal outputs {name} vs {ref_name}: max |diff| = {diff:.2e}  [{status}]"
        )
        if diff > TOL:
            raise SystemExit(
                f"outputs differ by {diff} > {TOL}: the comparison would not be fair"
            )

    # --- warm up (traces/compiles) then alternate timed rounds
    results = {w.name: {} for w in workers}
    if not args.skip_train:
        for w in workers:
            w("train", seed=1, batch=args.batch, size=args.patch, n=1)
    for s in sizes:
        for w in workers:
            w("infer", seed=2, size=min(s, 512), n=1)
    for r in range(args.repeats):
        order = workers if r % 2 == 0 else workers[::-1]
        for w in order:
            if not args.skip_train:
                t = w(
                    "train",
                    seed=1,
                    batch=args.batch,
                    size=args.patch,
                    n=args.train_steps,
                )["times"]
                results[w.name].setdefault("train", []).extend(t)
            for s in sizes:
                if s >= 1024 and r >= args.large_repeats:
                    continue
                t = w("infer", seed=2, size=s, n=1)["times"]
                results[w.name].setdefault(f"infer{s}", []).extend(t)
        print(f"  round {r + 1}/{args.repeats} done, load {load_str()}", flush=True)
    for w in workers:
        w.close()

    # --- memory: fresh process per framework, one inference on memory_size^2
    if args.memory_size:
        for kind in [*backends, "torch"] if has_torch else backends:
            w = Worker(kind, args, extra_env=worker_env(kind, args))
            res = w("memory", seed=3, size=args.memory_size)
            w.close()
            results[w.name]["mem_peak"] = [res["peak_mb"]]
            results[w.name]["mem_base"] = [res["peak_before_mb"]]

    # --- table
    metrics = []
    if not args.skip_train:
        metrics.append(("train", f"train s/step (B={args.batch}, {args.patch}^2)"))
    metrics += [(f"infer{s}", f"infer s/image ({s}^2)") for s in sizes]
    if args.memory_size:
        metrics += [
            ("mem_peak", f"peak RSS MB ({args.memory_size}^2 infer)"),
            ("mem_base", "  RSS MB after model build"),
        ]
    names = [w.name for w in workers]
    print()
    if has_torch:
        ratios = [("torch", n) for n in names[:-1]]
    else:
        ratios = [(n, names[0]) for n in names[1:]]
    head = ["metric", *names, *[f"{a} / {b}" for a, b in ratios]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, label in metrics:
        vals = {
            n: statistics.median(results[n][key]) for n in names if key in results[n]
        }
        cells = [label, *[f"{vals.get(n, float('nan')):.3f}" for n in names]]
        cells += [f"{vals[a] / vals[b]:.2f}x" for a, b in ratios]
        print("| " + " | ".join(cells) + " |")
    note = "keras faster / smaller" if has_torch else f"{names[0]} faster / smaller"
    print(f"(ratio > 1: {note})  load after: {load_str()}")
    print("raw:", json.dumps(results))


if __name__ == "__main__":
    main()
