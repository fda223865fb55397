"""The paper's claim, measured: one model per sensor vs one joint model.

Trains one model per sensor and one model on all sensors together (4-band
"rgbn" data so sensors mix within a batch), with the same total number of
optimiser steps by default (`--budget=total`: the joint model gets
`--total_steps`, each single-sensor model `total_steps / n_sensors`, so every
sensor contributes the same number of training samples to both setups), then
prints per-sensor RR (Q2n, SAM, ERGAS, SCC, PSNR) and FR (D_lambda, D_s, QNR,
HQNR) scores side by side with the toolbox's classical EXP, BT-H and
MTF-GLP-HPM-R as references. `--budget=per_model` gives every model
`--total_steps` instead.

    # built-in synthetic WV2 / WV3 / GF2 data
    python examples/single_vs_multi.py

    # real scenes of ../shared/data (WV3, QB, Pleiades, SPOT-6): the top 3/4
    # of each scene is cut into RR training patches with Wald's protocol
    # (`make_training_set`), the bottom 1/4 is held out for RR and FR tests
    python examples/single_vs_multi.py --data=shared

Results: `<output_dir>/single_vs_multi.{csv,json}` and the printed tables.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402

from keras_pansharp import recipes  # noqa: E402
from keras_pansharp.data import (  # noqa: E402
    ArrayReader,
    MultiSensorDataset,
    PanCollectionReader,
    Scene,
    make_training_set,
    read_scene,
    synthetic,
)
from keras_pansharp.models.registry import MODEL_NAMES, get_model  # noqa: E402
from keras_pansharp.sensors import generic_sensor, get_sensor  # noqa: E402
from keras_pansharp.signal import bt_h, exp_method, mtf_glp_hpm_r  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("data", "synthetic", ["synthetic", "shared"], "Which data.")
flags.DEFINE_string(
    "shared_dir",
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "Folder of the real scenes (for --data=shared).",
)
flags.DEFINE_enum("model", "pantiny", list(MODEL_NAMES), "Model.")
flags.DEFINE_integer("total_steps", 240, "Optimiser steps of the joint model.")
flags.DEFINE_enum("budget", "total", ["total", "per_model"], "Step budget rule.")
flags.DEFINE_integer("epochs", 4, "Epochs per model (steps are split evenly).")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("patch_size", 64, "PAN-scale training patch size.")
flags.DEFINE_integer("test_images", 0, "Max test images per sensor (0: all).")
flags.DEFINE_bool("classical", True, "Also score EXP, BT-H, MTF-GLP-HPM-R.")
flags.DEFINE_string("output_dir", "runs/single_vs_multi", "Output directory.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.")

# Real scenes of ../shared/data: (ms file, pan file, sensor).
SHARED_SCENES = {
    "wv3": ("wv3_spacenet_fr/ms.tif", "wv3_spacenet_fr/pan.tif", "wv3"),
    "qb": ("qb_abfnet/fr_ms.tif", "qb_abfnet/fr_pan.tif", "qb"),
    "pleiades": ("pleiades_urban_fr/ms.tif", "pleiades_urban_fr/pan.tif", None),
    "spot6": ("spot6_cropland_fr/ms.tif", "spot6_cropland_fr/pan.tif", None),
}
CLASSICAL = {
    "EXP": lambda ms, pan, s: exp_method(ms, pan),
    "BT-H": lambda ms, pan, s: bt_h(ms, pan),
    "MTF-GLP-HPM-R": lambda ms, pan, s: mtf_glp_hpm_r(ms, pan, s),
}


def _shared_sources(cache: Path):
    """Cut the real scenes into train / RR-test / FR-test readers."""
    root = Path(FLAGS.shared_dir)
    if not root.is_dir():
        raise app.UsageError(f"--shared_dir {root} does not exist")
    out = {"train": {}, "test_rr": {}, "test_fr": {}}
    for name, (ms_file, pan_file, sensor_name) in SHARED_SCENES.items():
        # Pleiades and SPOT-6 are not in the registry: 12-bit, toolbox defaults.
        sensor = (
            get_sensor(sensor_name)
            if sensor_name
            else generic_sensor(4, bit_depth=12, name=name.upper())
        )
        scene = read_scene(root / ms_file, root / pan_file, sensor=sensor)
        h = scene.ms.shape[0]
        r = int(0.75 * h) // 4 * 4  # train rows (MS), multiple of 4
        t = (h - r) // 4 * 4  # held-out rows
        train = Scene(scene.ms[:r], scene.pan[: 4 * r], sensor, source=f"{name} top")
        test = Scene(
            scene.ms[r : r + t], scene.pan[4 * r : 4 * (r + t)], sensor, source=name
        )
        paths = {}
        for split, sc, stride in (("train", train, 16), ("test_rr", test, 64)):
            p = cache / f"{split}_{name}.h5"
            if not p.is_file():
                make_training_set(
                    sc, sensor=sensor, patch_size=64, stride=stride, out=p
                )
            paths[split] = p
        out["train"][name] = PanCollectionReader(paths["train"], sensor=sensor)
        out["test_rr"][name] = PanCollectionReader(paths["test_rr"], sensor=sensor)
        # FR test: PAN 128 x 128 crops (MS 32 x 32) of the held-out rows.
        ms_t, pan_t = test.ms, test.pan
        crops = [
            (i, j)
            for i in range(0, ms_t.shape[0] - 31, 32)
            for j in range(0, ms_t.shape[1] - 31, 32)
        ]
        ms_c = np.stack([ms_t[i : i + 32, j : j + 32] for i, j in crops])
        pan_c = np.stack(
            [pan_t[4 * i : 4 * i + 128, 4 * j : 4 * j + 128] for i, j in crops]
        )
        out["test_fr"][name] = ArrayReader(
            ms_c, pan_c, sensor=sensor, name=f"{name} FR"
        )
    return out


def _eval_sets(sources):
    n = FLAGS.test_images or None
    res = {}
    for split in ("test_rr", "test_fr"):
        ds = MultiSensorDataset.for_evaluation(
            sources[split], batch_size=4, bands="rgbn"
        )
        data = ds.evaluation_data(max_samples=n)
        keys = _common.source_keys(ds)
        res[split] = {keys[k]: (v, ds.sensors[keys[k]]) for k, v in data.items()}
    return res


def _train(name, train_sources, steps):
    keras.utils.set_random_seed(FLAGS.seed)
    epochs = max(1, min(FLAGS.epochs, steps))
    per_epoch = max(1, steps // epochs)
    ds = MultiSensorDataset(
        train_sources,
        batch_size=FLAGS.batch_size,
        patch_size=FLAGS.patch_size,
        bands="rgbn",
        balance="equal",
        seed=FLAGS.seed,
        steps_per_epoch=per_epoch,
    )
    model = get_model(FLAGS.model, bands=4)
    recipes.paper(model, epochs=epochs, steps_per_epoch=per_epoch)
    t = time.time()
    print(f"--- training {name}: {epochs} x {per_epoch} steps on {list(train_sources)}")
    model.fit(ds, epochs=epochs, verbose=FLAGS.verbose)
    print(f"    {time.time() - t:.0f} s")
    return model, epochs * per_epoch


def _score(fuse_for, evals, sensor_names):
    rows = {}
    for s in sensor_names:
        rr, rr_sensor = evals["test_rr"][s]
        fr, fr_sensor = evals["test_fr"][s]
        fuse = fuse_for(s, rr_sensor)
        row = _common.evaluate_fused(
            fuse,
            {"k": rr},
            {"k": fr},
            {"k": rr_sensor},
        )["k"]
        rows[s] = row
    return rows


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    t0 = time.time()
    out = Path(FLAGS.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if FLAGS.data == "synthetic":
        sources = synthetic.ensure_datasets()
    else:
        cache = out / "data"
        cache.mkdir(exist_ok=True)
        sources = _shared_sources(cache)
    sensors = list(sources["train"])
    evals = _eval_sets(sources)

    n = len(sensors)
    single_steps = (
        FLAGS.total_steps // n if FLAGS.budget == "total" else FLAGS.total_steps
    )
    results: dict[str, dict] = {}
    steps_used = {}

    joint, steps_used["joint"] = _train("joint", sources["train"], FLAGS.total_steps)
    joint_rows = _score(lambda s, _: _common.model_fuser(joint), evals, sensors)
    singles = {}
    for s in sensors:
        singles[s], steps_used[f"single_{s}"] = _train(
            f"single {s}", {s: sources["train"][s]}, single_steps
        )
    single_rows = _score(lambda s, _: _common.model_fuser(singles[s]), evals, sensors)
    for s in sensors:
        results[f"{s} / single"] = single_rows[s]
        results[f"{s} / joint"] = joint_rows[s]
    if FLAGS.classical:
        for label, fn in CLASSICAL.items():
            rows = _score(
                lambda s, sensor, fn=fn: _common.classical_fuser(fn, sensor),
                evals,
                sensors,
            )
            for s in sensors:
                results[f"{s} / {label}"] = rows[s]
    # Group rows per sensor.
    ordered = {}
    for s in sensors:
        for k, v in results.items():
            if k.startswith(f"{s} / "):
                ordered[k] = v

    title = (
        f"{FLAGS.model} on {FLAGS.data} data ({', '.join(sensors)}); joint "
        f"{steps_used['joint']} steps, single {single_steps} steps each, batch "
        f"{FLAGS.batch_size}, patch {FLAGS.patch_size}; backend "
        f"{keras.backend.backend()}"
    )
    table = _common.format_table(ordered, first="sensor / method")
    print(f"\n{title}\n\n{table}")
    meta = {
        "title": title,
        "data": FLAGS.data,
        "model": FLAGS.model,
        "budget": FLAGS.budget,
        "steps": steps_used,
        "batch_size": FLAGS.batch_size,
        "patch_size": FLAGS.patch_size,
        "backend": keras.backend.backend(),
        "sam_units": "degrees",
        "seconds": round(time.time() - t0, 1),
    }
    _common.save_results(out, "single_vs_multi", ordered, meta)
    print(f"\nSaved {out / 'single_vs_multi.csv'} and .json ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    app.run(main)
