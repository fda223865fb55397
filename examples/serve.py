"""Pan-sharpen a scene with a SavedModel or a Keras model; write GeoTIFF + PNG.

With the SavedModel written by `examples/train_multi.py` (or
`keras_pansharp.export_saved_model`), TensorFlow and this package's readers:

    python examples/serve.py --saved_model runs/train_multi/saved_model \
        --ms ms.tif --pan pan.tif --sensor wv3 --output fused.tif

    python examples/serve.py --saved_model runs/train_multi/saved_model \
        --scene scene.mat --sensor wv3 --output fused.tif

With a Keras model (a `.keras` file or a preset name such as the shipped,
pretrained `pantiny_multisensor`), its detail gains calibrated on the scene
(`--calibrate`, default on: `keras_pansharp.calibrate_detail_gain`), or
fine-tuned on the scene itself first (`--adapt`: `keras_pansharp.adapt`,
no-reference, bounded steps, then calibration; on a centred crop of at most
`--adapt_crop` PAN pixels a side):

    python examples/serve.py --model pantiny_multisensor --adapt \
        --ms ms.tif --pan pan.tif --sensor qb --output fused.tif

The scene (GeoTIFF pair or one `.mat` file, DN) is normalised by the sensor's
max DN, fused tile by tile (`keras_pansharp.predict_scene`, overlap blending,
bounded memory) and written as a GeoTIFF at PAN resolution in DN (uint16,
clipped to [0, max DN]) carrying the PAN file's georeferencing tags
(ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
GeoDoubleParams, GeoAsciiParams, GDAL metadata / nodata), plus an RGB PNG
quicklook (2-98 % stretch, at most `--quicklook_size` pixels a side).

If the model has 4 bands and the scene 8 (WV2/WV3 trained with
`--bands=rgbn`), the scene's blue/green/red/NIR bands are used.

The same model (SavedModel or Keras) can be scored on test files first, with
the library's toolbox-exact per-sensor table (`keras_pansharp.evaluate`;
reduced resolution against `gt`, full resolution without reference), printed
and written as `<scores>.csv`, `.json` and `.md`; with or without a scene:

    python examples/serve.py --saved_model runs/train_multi/saved_model \
        --test_rr wv3=test_wv3_multiExm1.h5 \
        --test_fr wv3=test_wv3_OrigScale_multiExm1.h5 --scores runs/served_scores
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (sibling helper module: flag parsing)

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "SavedModel directory.")
flags.DEFINE_string(
    "model", None, "Keras model: a .keras file or a preset (pantiny_multisensor)."
)
flags.DEFINE_bool("adapt", False, "Fine-tune --model on the scene first (no GT).")
flags.DEFINE_bool(
    "calibrate",
    True,
    "Rescale a Keras --model's details per band to the scene first "
    "(keras_pansharp.calibrate_detail_gain, no GT; --adapt includes it). Skipped "
    "for models whose output does not add a convolution to the upsampled MS.",
)
flags.DEFINE_integer("adapt_steps", 100, "Optimiser steps of --adapt.")
flags.DEFINE_float(
    "adapt_time_limit",
    60.0,
    "Seconds --adapt may take at most (fine-tuning stops early); 0: no limit.",
)
flags.DEFINE_integer(
    "adapt_crop", 1024, "Max PAN side of the crop --adapt / --calibrate use."
)
flags.DEFINE_string("ms", None, "MS image file (GeoTIFF, .mat) or .mat scene.")
flags.DEFINE_string("pan", None, "PAN image file (GeoTIFF, .mat).")
flags.DEFINE_string("scene", None, "One .mat file holding both MS and PAN.")
flags.DEFINE_string("sensor", None, "Sensor of the scene (wv3, wv2, gf2, qb, ...).")
flags.DEFINE_string("output", "fused.tif", "Output GeoTIFF path.")
flags.DEFINE_string("quicklook", None, "PNG quicklook path (default: output.png).")
flags.DEFINE_integer("quicklook_size", 1024, "Max side of the quicklook in pixels.")
flags.DEFINE_integer("tile", 512, "Tile side (PAN pixels).")
flags.DEFINE_integer("overlap", 64, "Tile overlap (PAN pixels).")
flags.DEFINE_integer("batch_size", 2, "Tiles per call.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.DEFINE_multi_string(
    "test_rr", None, "Score the model on RR test data SENSOR=PATH (with gt)."
)
flags.DEFINE_multi_string(
    "test_fr", None, "Score the model on FR test data SENSOR=PATH (no gt)."
)
flags.DEFINE_integer("test_images", 0, "Max test images per sensor (0: all).")
flags.DEFINE_integer("dim_cut", 0, "RR border cut of the scores (21 for 256^2).")
flags.DEFINE_string(
    "scores",
    None,
    "Path stem of the score table (.csv, .json, .md); default <output>_scores "
    "with a scene, else ./scores.",
)


class ServedModel:
    """Adapter: a loaded SavedModel as a `predict_on_batch(dict)` model."""

    def __init__(self, path: str):
        import tensorflow as tf

        self._tf = tf
        meta_file = Path(path) / "keras_pansharp.json"
        self.meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        self.loaded = tf.saved_model.load(path)
        sigs = self.loaded.signatures
        self.default = sigs["serving_default"]
        self.with_lms = sigs.get("serving_with_lms")
        self.accepts_interp23tap_lms = self.with_lms is not None
        spec = self.default.structured_input_signature[1]["ms"]
        self.bands = int(spec.shape[-1])
        # Batches arrive normalised; a raw-DN export expects DN.
        self.scale = 1.0
        if self.meta.get("raw_dn", False):
            self.scale = float(self.meta["max_value"])

    def predict_on_batch(self, batch):
        tf = self._tf
        args = {k: tf.constant(v * self.scale, tf.float32) for k, v in batch.items()}
        fn = self.default
        if "lms" in args:
            if self.with_lms is None:
                args.pop("lms")
            else:
                fn = self.with_lms
        return fn(**args)["fused"].numpy() / self.scale


def _geo_tags(path: str | None) -> tuple[tuple, float | None]:
    """Georeferencing tags and nodata of the GeoTIFF `path` (library `GeoInfo`)."""
    if not path or Path(path).suffix.lower() not in (".tif", ".tiff"):
        return (), None
    from keras_pansharp.data.geotiff import GeoTiffReader

    with GeoTiffReader(path) as src:
        return src.geo.tags, src.geo.nodata


def _quicklook(fused: np.ndarray, rgb: tuple[int, int, int], size: int) -> np.ndarray:
    step = max(1, int(np.ceil(max(fused.shape[:2]) / size)))
    img = np.asarray(fused[::step, ::step][..., list(rgb)], np.float64)
    out = np.empty(img.shape, np.uint8)
    for b in range(3):
        lo, hi = np.percentile(img[..., b], (2, 98))
        out[..., b] = np.clip((img[..., b] - lo) / max(hi - lo, 1e-12) * 255, 0, 255)
    return out


def _keras_model():
    """`--model`: a `.keras` file or a PanTiny preset name."""
    import keras

    import keras_pansharp as kp

    if FLAGS.model.endswith(".keras"):
        if not Path(FLAGS.model).is_file():
            raise app.UsageError(f"--model {FLAGS.model}: file not found")
        model = keras.saving.load_model(FLAGS.model)
    else:
        model = kp.PanTiny.from_preset(FLAGS.model)
    model.bands = getattr(model, "bands", model.output_shape[-1])
    return model


def _adapt(model, ms, pan, sensor):
    """Fine-tune on a centred crop of the scene; print FR scores."""
    import keras_pansharp as kp

    h, w = ms.shape[:2]
    side = max(FLAGS.adapt_crop // 4, 8)
    i0, j0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    ms_c = np.asarray(ms[i0 : i0 + side, j0 : j0 + side])
    pan_c = np.asarray(pan[4 * i0 : 4 * (i0 + side), 4 * j0 : 4 * (j0 + side)])
    print(f"Adapting on a {pan_c.shape} PAN crop for {FLAGS.adapt_steps} steps")
    res = kp.adapt(
        model,
        ms_c,
        pan_c,
        sensor=sensor,
        steps=FLAGS.adapt_steps,
        time_limit=FLAGS.adapt_time_limit or None,
    )
    print(
        f"Crop {res.summary()}; no-reference loss {res.loss_before:.4f} -> "
        f"{res.loss_after:.4f}"
    )
    return res.model


def _calibrate(model, ms, pan, sensor):
    """Per-band detail gains from a centred crop of the scene (no GT)."""
    import keras_pansharp as kp
    from keras_pansharp.calibration import detail_gain_layer, has_detail_calibration

    if has_detail_calibration(model):
        print("The model calibrates its details on the scene itself.")
        return model
    try:
        detail_gain_layer(model)
    except ValueError as err:
        print(f"Not calibrated: {err}")
        return model
    cal = kp.calibrate_detail_gain(
        model, np.asarray(ms), np.asarray(pan), sensor=sensor, crop=FLAGS.adapt_crop
    )
    print(
        f"Detail gains {np.round(cal.gains, 3).tolist()} (crop D_s "
        f"{cal.d_s_before:.4f} -> {cal.d_s_after:.4f}, {cal.seconds:.1f} s)"
    )
    return cal.model


def _score_tests(model, stem: Path) -> None:
    """Score `model` on --test_rr / --test_fr with the library's table."""
    from keras_pansharp.evaluation import evaluate

    rr = _common.parse_sources(FLAGS.test_rr, "test_rr")
    fr = _common.parse_sources(FLAGS.test_fr, "test_fr")
    table = evaluate(
        model,
        rr=rr or None,
        fr=fr or None,
        bands="rgbn" if model.bands == 4 else "native",
        max_images=FLAGS.test_images or None,
        dim_cut=FLAGS.dim_cut,
        batch_size=FLAGS.batch_size,
    )
    table.meta["model"] = FLAGS.saved_model or FLAGS.model
    saved = table.save(stem)
    print(
        f"Scores of {table.meta['model']} (mean per sensor):\n"
        f"{table.to_markdown()}\nSaved {saved['csv']}, {saved['json']} and "
        f"{saved['md']}"
    )


def main(argv):
    del argv
    from keras_pansharp.utils.perf import retain_freed_host_memory

    retain_freed_host_memory(jax_only=True)  # glibc keeps XLA's buffers (JAX)
    import imageio.v3 as iio

    from keras_pansharp.data import read_scene
    from keras_pansharp.data.geotiff import GeoTiffWriter
    from keras_pansharp.scene import predict_scene
    from keras_pansharp.sensors import get_sensor
    from keras_pansharp.utils.io import atomic_path

    t0 = time.time()
    has_scene = bool(FLAGS.scene or (FLAGS.ms and FLAGS.pan))
    has_tests = bool(FLAGS.test_rr or FLAGS.test_fr)
    if not has_scene and not has_tests:
        raise app.UsageError(
            "give --scene FILE.mat, or --ms and --pan (and/or --test_rr/--test_fr "
            "to score the model)"
        )
    if has_scene and not FLAGS.sensor:
        raise app.UsageError("give the scene's --sensor (wv3, wv2, gf2, qb, ...)")
    if bool(FLAGS.saved_model) == bool(FLAGS.model):
        raise app.UsageError("give exactly one of --saved_model and --model")
    if FLAGS.adapt and not (FLAGS.model and has_scene):
        raise app.UsageError(
            "--adapt fine-tunes a Keras model on the scene: use --model"
        )
    out_path = Path(FLAGS.output)
    ql_path = Path(FLAGS.quicklook or out_path.with_suffix(".png"))
    stem = Path(
        FLAGS.scores
        or (out_path.with_name(f"{out_path.stem}_scores") if has_scene else "scores")
    )
    targets = [out_path, ql_path] if has_scene else []
    if has_tests:
        targets += [stem.with_name(f"{stem.name}.{e}") for e in ("csv", "json", "md")]
    for p in targets:
        if p.exists() and not FLAGS.overwrite:
            raise app.UsageError(f"{p} exists; pass --overwrite to replace it")
    scene = None
    geo_source = None
    if FLAGS.scene:
        scene = read_scene(FLAGS.scene, sensor=FLAGS.sensor)
    elif has_scene:
        scene = read_scene(FLAGS.ms, FLAGS.pan, sensor=FLAGS.sensor)
        geo_source = FLAGS.pan
    model = ServedModel(FLAGS.saved_model) if FLAGS.saved_model else _keras_model()
    if scene is None:
        _score_tests(model, stem)
        print(f"Done in {time.time() - t0:.1f} s")
        return
    sensor = get_sensor(FLAGS.sensor)
    ms = scene.ms
    if model.bands != ms.shape[-1]:
        if model.bands == 4 and ms.shape[-1] > 4:
            print(f"Model has 4 bands: using {sensor.name} bands {sensor.rgbn_indices}")
            ms = ms[..., list(sensor.rgbn_indices)]
            sensor = sensor.rgbn()
        else:
            raise ValueError(
                f"{FLAGS.saved_model or FLAGS.model} expects {model.bands} bands, "
                f"the scene has {ms.shape[-1]}"
            )
    max_value = float(sensor.max_value)
    print(
        f"Scene {scene.source}: ms {ms.shape}, pan {scene.pan.shape}, "
        f"{sensor.name} (max DN {max_value:g})"
    )
    if FLAGS.adapt:
        model = _adapt(model, ms, scene.pan, sensor)
        model.bands = ms.shape[-1]
    elif FLAGS.calibrate and FLAGS.model:
        model = _calibrate(model, ms, scene.pan, sensor)
        model.bands = ms.shape[-1]
    if has_tests:
        _score_tests(model, stem)
    fused = predict_scene(
        model,
        ms,
        scene.pan,
        tile=FLAGS.tile,
        overlap=FLAGS.overlap,
        batch_size=FLAGS.batch_size,
        max_value=max_value,  # DN in, DN out; tiles normalised on the fly
        verbose=1,
    )
    dn = np.clip(np.rint(fused), 0, max_value).astype(np.uint16)

    # Tiled, deflate-compressed GeoTIFF with overviews, written atomically
    # (`keras-pansharp fuse` streams scenes larger than memory instead).
    geo_tags, nodata = _geo_tags(geo_source)
    with GeoTiffWriter(
        out_path, dn.shape, geo_tags=geo_tags, nodata=nodata, overwrite=True
    ) as writer:
        writer.write(dn)
    rgb = tuple(sensor.rgbn_indices[i] for i in (2, 1, 0))
    with atomic_path(ql_path) as tmp:
        iio.imwrite(tmp, _quicklook(dn, rgb, FLAGS.quicklook_size), extension=".png")
    print(
        f"Wrote {out_path} {dn.shape} uint16 DN"
        + (" with georeferencing" if geo_source else "")
        + f" and {ql_path} in {time.time() - t0:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(app.run(main))
