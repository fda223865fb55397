"""Generalisation to unseen real scenes: leave-one-scene-out and -sensor-out.

For every real full-resolution scene of `../shared/data` that training may
use (`real_scenes.TRAINABLE`), train the pretraining recipe of
`examples/pretrain.py` on the *other* such scenes only, then score the
left-out scene; the test-only scenes (no licence to train on: the 8-bit
pairs) are scored by the recipe trained on all trainable scenes, which is
exactly how the shipped weights are made:

- FR (whole scene, native resolution): D_lambda, D_s, QNR, D_lambda^K, HQNR,
  and Scarpa & Ciotola's D_rho and reprojection indices R-Q2n, R-SAM,
  R-ERGAS;
- RR (the scene Wald-degraded by 4, its MS as reference): Q2n, SAM, ERGAS,
  SCC;

for the model (built as the shipped preset: it calibrates its details on
each image inside the model, `--calibrate_details`), the model with its
detail gains calibrated on each input it fuses
(`keras_pansharp.calibrate_detail_gain`), the model after `keras_pansharp.adapt`
on each input it fuses (no-reference fine-tuning plus calibration, default
budget), and the classical EXP, BT-H and MTF-GLP-HPM-R, side by side: a
balanced panel per scene (RR Q2n / SAM / ERGAS, FR D_lambda^K, D_rho, HQNR,
R-Q2n), wins against the best classical method and against MTF-GLP-HPM-R,
means, and a quicklook PNG per scene (PAN | MTF-GLP-HPM-R | BT-H | model |
adapted, centred crop, one stretch for all fused panels).
Then the same with whole sensor groups left out (sensors with several
trainable scenes: WV3).

No leakage: nothing is trained or tuned on the scene being scored. Training
never sees it. Calibration and `adapt` see only the pair they fuse: the
full-resolution scene for the FR scores, its Wald-degraded copy (never the
original MS, which is the RR reference) for the RR scores; `adapt` runs
once on each.

What chooses and what judges (never the same index):
- the fold model: fixed training steps of `pretrain.py` (no checkpoint
  selection);
- the calibration gains: D_s's per-band term of the fused input, so the HQNR
  (which contains D_s) of the calibrated rows and of the preset is partly
  selected;
- `adapt`'s candidates: the HQNR of the fused input, and its loss holds
  D_lambda^K and the reprojection's ERGAS / Q2n, so the adapted rows' HQNR,
  D_lambda^K and R-Q2n are partly selected or trained on;
- judges nothing chose: D_rho (no structural term is trained or selected on;
  `adapt`'s gamma is 0) and the RR indices (reference never seen).

Measured time on 2 CPU cores (TensorFlow), defaults: see docs/generalization.md.

Usage:
    python benchmarks/bench_generalization.py                 # everything
    python benchmarks/bench_generalization.py --folds=scene --scenes=qb_abfnet
    python benchmarks/bench_generalization.py --steps=100 --noadapt  # quick
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pretrain  # noqa: E402
import real_scenes  # noqa: E402
from absl import app, flags  # noqa: E402

import keras_pansharp as kp  # noqa: E402
from keras_pansharp.utils.io import atomic_path  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "folds",
    ["scene", "sensor"],
    "Protocols: scene, sensor; or split (one training without --scenes, the "
    "quick protocol of the ablations).",
)
flags.DEFINE_list("scenes", [], "Only these left-out scenes (default: all).")
flags.DEFINE_bool("adapt", True, "Also score the model after kp.adapt.")
flags.DEFINE_list(
    "adapt_blends",
    [str(f) for f in kp.adaptation.ADAPT_DEFAULTS["blends"]],
    "kp.adapt's blends: fractions of the way to the fine-tuned weights also "
    "scored (each candidate's HQNR is saved as adapt_candidates in the JSON).",
)
flags.DEFINE_float(
    "adapt_learning_rate",
    kp.adaptation.ADAPT_DEFAULTS["learning_rate"],
    "kp.adapt's initial learning rate.",
)
flags.DEFINE_float(
    "adapt_time_limit",
    kp.adaptation.ADAPT_DEFAULTS["time_limit"],
    "kp.adapt's time_limit in seconds (0: none); the steps run are saved as "
    "adapt_steps in the JSON.",
)
flags.DEFINE_float(
    "adapt_epsilon",
    kp.adaptation.ADAPT_DEFAULTS["loss_weights"]["epsilon"],
    "Weight of HQNR's D_lambda^K in kp.adapt's loss (loss_weights epsilon; 0: "
    "the pretraining recipe's loss).",
)
flags.DEFINE_float(
    "adapt_gamma",
    kp.adaptation.ADAPT_DEFAULTS["loss_weights"]["gamma"],
    "Weight of lambda-PNN's structural (PAN correlation) term in kp.adapt's "
    "loss (loss_weights gamma; the pretraining recipe's is "
    f"{kp.recipes.NO_REFERENCE_LOSS['gamma']:g}).",
)
flags.DEFINE_string("output_dir", "runs/generalization", "Output directory.")
flags.DEFINE_bool(
    "save_weights",
    False,
    "Also save each fold's trained weights as <output_dir>/weights/<fold>.weights.h5 "
    "(for analyses of the fold models, e.g. bench_detail_gain.py).",
)
flags.DEFINE_bool(
    "calibrate",
    True,
    "Also score the model with its detail gains calibrated on the scored "
    "input (kp.calibrate_detail_gain; no reference).",
)
flags.DEFINE_string(
    "weights_dir",
    "",
    "Load each fold's weights from <weights_dir>/<fold>.weights.h5 (written by "
    "--save_weights with --detail_gain=1) instead of training; --detail_gain is "
    "applied after loading. Folds without a file are trained.",
)
flags.DEFINE_bool(
    "calibrate_details",
    True,
    "Build each fold model as the shipped preset is built: PanTiny with "
    "calibrate_details=True, so the 'model' row calibrates its details on each "
    "image inside the model (DetailCalibration). --nocalibrate_details scores "
    "the raw network.",
)
flags.DEFINE_bool(
    "shipped_for_test_only",
    True,
    "Score the test-only scenes with the shipped pantiny_multisensor weights "
    "(trained by pretrain.py on the whole pool) instead of retraining them.",
)

FR_KEYS = (
    "d_lambda", "d_s", "qnr", "d_lambda_k", "hqnr", "d_rho", "r_q2n", "r_sam",
    "r_ergas",
)  # fmt: skip
RR_KEYS = ("q2n", "sam", "ergas", "scc")
CLASSICAL = ("EXP", "BT-H", "MTF-GLP-HPM-R")
#: The balanced panel: (JSON key, label, higher is better).
PANEL = (
    ("rr_q2n", "RR Q2n", True),
    ("rr_sam", "RR SAM", False),
    ("rr_ergas", "RR ERGAS", False),
    ("fr_d_lambda_k", "D_lambda^K", False),
    ("fr_d_rho", "D_rho", False),
    ("fr_hqnr", "HQNR", True),
    ("fr_r_q2n", "R-Q2n", True),
)
#: PAN side of the quicklook crops.
QUICKLOOK = 256


def four_band(scene):
    """`(ms, pan, sensor)` of the 4-band view, float64 DN.

    Cropped (top-left) to a multiple of 32 PAN pixels, which the toolbox's
    D_lambda^K needs (the WV3 SpaceNet scene: 1300 -> 1280).
    """
    sensor, ms = scene.sensor, np.asarray(scene.ms, np.float64)
    if sensor.num_bands != 4:
        ms = ms[..., list(sensor.rgbn_indices)]
        sensor = sensor.rgbn()
    h, w = (ms.shape[0] // 8) * 8, (ms.shape[1] // 8) * 8
    pan = np.asarray(scene.pan, np.float64)[: 4 * h, : 4 * w]
    return ms[:h, :w], pan, sensor


def classical(method: str, ms, pan, sensor):
    if method == "EXP":
        return kp.exp_method(ms)
    if method == "BT-H":
        return kp.bt_h(ms, pan)
    return kp.mtf_glp_hpm_r(ms, pan, sensor)


def model_fuse(model, ms, pan, sensor):
    m = sensor.max_value
    x = {"ms": (ms / m)[None].astype("float32"), "pan": (pan / m)[None, ..., None]}
    return np.asarray(model.predict_on_batch(x), np.float64)[0] * m


def score(fuse, ms, pan, sensor, images: dict | None = None, key: str = "") -> dict:
    """FR scores of `fuse(ms, pan)` and RR scores on the Wald-degraded pair.

    `fuse` is called once on each pair and sees nothing else: the RR
    reference (`ms`) never reaches it. With `images`, the FR fused image is
    kept as `images[key]` (for the quicklook).
    """
    fused = fuse(ms, pan)
    if images is not None:
        images[key] = fused
    fr = kp.evaluate_fr(fused, ms, pan, sensor=sensor)
    ms_lr, pan_lr = kp.wald_degrade(ms, pan, sensor)
    rr = kp.evaluate_rr(fuse(ms_lr, pan_lr), ms, sensor=sensor)
    out = {f"fr_{k}": float(fr[k]) for k in FR_KEYS}
    out.update({f"rr_{k}": float(rr[k]) for k in RR_KEYS})
    return out


def adapt_options() -> dict:
    """`kp.adapt` keyword arguments set by the `--adapt_*` flags."""
    return {
        "blends": [float(f) for f in FLAGS.adapt_blends],
        "learning_rate": FLAGS.adapt_learning_rate,
        "time_limit": FLAGS.adapt_time_limit or None,
        "loss_weights": {"epsilon": FLAGS.adapt_epsilon, "gamma": FLAGS.adapt_gamma},
    }


def adapted_score(model, ms, pan, sensor, images: dict) -> dict:
    """`score` of the model adapted (`kp.adapt`) on each input it fuses: the
    scene for FR, its Wald-degraded copy for RR (never the RR reference)."""
    runs = []

    def fuse(a, b):
        res = kp.adapt(
            model, a, b, sensor=sensor, seed=FLAGS.seed, **adapt_options(), verbose=0
        )
        runs.append(res)
        return model_fuse(res.model, a, b, sensor)

    row = score(fuse, ms, pan, sensor, images, "adapted")
    for tag, res in zip(("fr", "rr"), runs):
        row[f"adapt_{tag}"] = {
            "seconds": res.seconds,
            "improved": res.improved,
            "steps": res.steps,
            "blend": res.blend,
            "candidates": {str(f): h for f, h in res.candidates.items()},
            "gains": None if res.gains is None else res.gains.tolist(),
        }
    return row


def evaluate_scene(model, scene, name: str, out_dir: Path) -> dict:
    ms, pan, sensor = four_band(scene)
    images: dict = {}
    rows = {
        m: score(
            lambda a, b, m=m: classical(m, a, b, sensor), ms, pan, sensor, images, m
        )
        for m in CLASSICAL
    }
    rows["model"] = score(
        lambda a, b: model_fuse(model, a, b, sensor), ms, pan, sensor, images, "model"
    )
    if FLAGS.calibrate:
        rows["calibrated"] = calibrated_score(model, ms, pan, sensor)
    if FLAGS.adapt:
        rows["adapted"] = adapted_score(model, ms, pan, sensor, images)
    best = max(CLASSICAL, key=lambda m: rows[m]["fr_hqnr"])
    summary = {"best_classical": best, "best_classical_hqnr": rows[best]["fr_hqnr"]}
    learned = ", ".join(
        f"{m} {rows[m]['fr_hqnr']:.4f} / {rows[m]['fr_d_rho']:.4f}"
        for m in learned_methods()
    )
    mtf = rows["MTF-GLP-HPM-R"]
    print(
        f"  {name}: HQNR / D_rho {learned}; MTF-GLP-HPM-R {mtf['fr_hqnr']:.4f} / "
        f"{mtf['fr_d_rho']:.4f}",
        flush=True,
    )
    path = out_dir / "quicklooks" / f"{name}.png"
    quicklook(path, pan, images, sensor)
    return {"rows": rows, **summary, "quicklook": str(path)}


def _stretch(x: np.ndarray, lo, hi) -> np.ndarray:
    return (np.clip((x - lo) / np.maximum(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)


def quicklook(path: Path, pan, images: dict, sensor, side: int = QUICKLOOK) -> None:
    """One PNG: PAN | MTF-GLP-HPM-R | BT-H | model [| adapted], a centred
    `side` x `side` PAN crop, RGB bands, each fused panel with the 1-99 %
    stretch of MTF-GLP-HPM-R's crop (a blurrier panel looks blurrier, not
    re-stretched), a 4-pixel white gap between panels, labels above."""
    from PIL import Image, ImageDraw

    h, w = pan.shape
    s = min(side, h, w)
    r0, c0 = (h - s) // 2, (w - s) // 2
    crop = (slice(r0, r0 + s), slice(c0, c0 + s))
    rgb = [sensor.band_names.index(b) for b in ("red", "green", "blue")]
    ref = images["MTF-GLP-HPM-R"][crop][..., rgb]
    lo = np.percentile(ref, 1, axis=(0, 1))
    hi = np.percentile(ref, 99, axis=(0, 1))
    p = pan[crop]
    panels = [
        ("PAN", np.repeat(_stretch(p, *np.percentile(p, (1, 99)))[..., None], 3, -1))
    ]
    for key in ("MTF-GLP-HPM-R", "BT-H", "model", "adapted"):
        if key in images:
            panels.append((key, _stretch(images[key][crop][..., rgb], lo, hi)))
    gap = np.full((s, 4, 3), 255, np.uint8)
    strip = np.concatenate([x for _, a in panels for x in (a, gap)][:-1], axis=1)
    header = Image.new("RGB", (strip.shape[1], 14), "white")
    draw = ImageDraw.Draw(header)
    for i, (label, _) in enumerate(panels):
        draw.text((i * (s + 4) + 2, 1), label, fill="black")
    strip = np.concatenate([np.asarray(header), strip], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")


def as_shipped(model):
    """`model` with `calibrate_details` set as --calibrate_details asks."""
    if model.get_config().get("calibrate_details") == FLAGS.calibrate_details:
        return model
    config = dict(model.get_config(), calibrate_details=FLAGS.calibrate_details)
    out = type(model).from_config(config)
    out.set_weights(model.get_weights())
    return out


def learned_methods() -> list[str]:
    """The model's rows, in table order."""
    methods = ["model"] + (["calibrated"] if FLAGS.calibrate else [])
    return methods + (["adapted"] if FLAGS.adapt else [])


def calibrated_score(model, ms, pan, sensor) -> dict:
    """`score` of the model with detail gains calibrated on each input it
    fuses (the scene, then its Wald-degraded copy): from that input only."""
    gains = {}

    def fuse(a, b):
        cal = kp.calibrate_detail_gain(model, a, b, sensor=sensor)
        gains["fr" if not gains else "rr"] = cal.gains.tolist()
        return model_fuse(cal.model, a, b, sensor)

    row = score(fuse, ms, pan, sensor)
    row["gains_fr"], row["gains_rr"] = gains["fr"], gains["rr"]
    return row


def _beats(v: float, ref: float, higher: bool) -> bool:
    return v > ref if higher else v < ref


def table(results: dict) -> str:
    """Markdown: the balanced panel of every left-out scene (one row per
    method), then per learned row and index the wins over the best classical
    method and over MTF-GLP-HPM-R, and the means."""
    learned = learned_methods()
    methods = learned + list(CLASSICAL)
    head = ["scored scene", "method"] + [label for _, label, _ in PANEL]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    wins = {(m, k, ref): 0 for m in learned for k, _, _ in PANEL for ref in "bm"}
    values = {(m, k): [] for m in methods for k, _, _ in PANEL}
    count = 0
    for fold, scenes in results.items():
        for name, res in scenes.items():
            rows, count = res["rows"], count + 1
            for m in methods:
                cells = [f"{name} ({fold})" if m == methods[0] else "", m]
                for k, _, higher in PANEL:
                    v = rows[m][k]
                    values[m, k].append(v)
                    pick = max if higher else min
                    best = pick(rows[c][k] for c in CLASSICAL)
                    won = m in learned and _beats(v, best, higher)
                    if m in learned:
                        wins[m, k, "b"] += won
                        wins[m, k, "m"] += _beats(v, rows["MTF-GLP-HPM-R"][k], higher)
                    cells.append(f"**{v:.4f}**" if won else f"{v:.4f}")
                lines.append("| " + " | ".join(cells) + " |")
    out = ["\n".join(lines)]
    head = ["method"] + [label for _, label, _ in PANEL]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        lines.append(
            f"| mean {m} | "
            + " | ".join(f"{np.nanmean(values[m, k]):.4f}" for k, _, _ in PANEL)
            + " |"
        )
    for m in learned:
        for ref, label in (("b", "best classical"), ("m", "MTF-GLP-HPM-R")):
            lines.append(
                f"| {m} beats {label} | "
                + " | ".join(f"{wins[m, k, ref]}/{count}" for k, _, _ in PANEL)
                + " |"
            )
    out.append("\n".join(lines))
    return "\n\n".join(out)


def fold_path(folder, fold: str) -> Path:
    """`<folder>/<fold name, non-alphanumerics as _>.weights.h5`."""
    slug = "".join(c if c.isalnum() else "_" for c in fold).strip("_")
    return Path(folder) / f"{slug}.weights.h5"


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    t_start = time.perf_counter()
    scenes = real_scenes.load_scenes(FLAGS.shared_dir)
    pool = [n for n in FLAGS.train_scenes if n in scenes]
    folds: list[tuple[str, list[str]]] = []
    if "scene" in FLAGS.folds:
        folds += [(n, [n]) for n in pool]
        # Test-only scenes (no licence to train on) are never seen by any
        # fold: the model trained on the whole pool scores them.
        rest = [n for n in scenes if n not in pool]
        if rest:
            folds.append(("none (test-only scenes)", rest))
    if "sensor" in FLAGS.folds:
        for group, names in real_scenes.groups().items():
            held = [n for n in names if n in pool]
            if len(held) > 1:
                folds.append((f"sensor {group}", held))
    if FLAGS.folds == ["split"]:
        if not FLAGS.scenes:
            raise app.UsageError("--folds=split needs --scenes=held,out,scenes")
        rest = [n for n in scenes if n not in pool]
        folds = [("split: " + ",".join(FLAGS.scenes), FLAGS.scenes + rest)]
    elif FLAGS.scenes:
        folds = [f for f in folds if set(f[1]) & set(FLAGS.scenes)]
    out_dir = Path(FLAGS.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for fold, held in folds:
        train = {k: scenes[k] for k in pool if k not in held}
        t0 = time.perf_counter()
        if (
            FLAGS.shipped_for_test_only
            and set(train) == set(pool)
            and FLAGS.folds != ["split"]
        ):
            print(f"[{fold}] shipped pantiny_multisensor weights", flush=True)
            model = kp.PanTiny.from_preset(
                "pantiny_multisensor", calibrate_details=FLAGS.calibrate_details
            )
        elif FLAGS.weights_dir and fold_path(FLAGS.weights_dir, fold).exists():
            path = fold_path(FLAGS.weights_dir, fold)
            print(f"[{fold}] weights {path} x detail gain {FLAGS.detail_gain:g}")
            model = kp.PanTiny(bands=4)
            model.load_weights(path)
            kp.apply_detail_gain(model, FLAGS.detail_gain)
        else:
            print(f"[{fold}] training on {sorted(train)}", flush=True)
            model = pretrain.train(train, verbose=0)
        train_s = time.perf_counter() - t0
        model = as_shipped(model)
        if FLAGS.save_weights:
            target = fold_path(out_dir / "weights", fold)
            with atomic_path(target, suffix=".weights.h5") as tmp:
                model.save_weights(tmp, overwrite=True)
        results[fold] = {}
        for name in held:
            results[fold][name] = evaluate_scene(model, scenes[name], name, out_dir)
            results[fold][name]["train_seconds"] = train_s
        meta = {
            "flags": {k: FLAGS[k].value for k in FLAGS},
            "seconds": time.perf_counter() - t_start,
        }
        text = json.dumps({"meta": meta, "results": results}, indent=1, default=str)
        _common.write_atomic(out_dir / "generalization.json", text)
    md = table(results)
    _common.write_atomic(out_dir / "generalization.md", md + "\n")
    print(md)
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    app.run(main)
