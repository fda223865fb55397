"""Export a pan-sharpening model as a TensorFlow SavedModel for serving.

The exported `serving_default` signature takes

- `ms`: float32 `(batch, h, w, C)` low-resolution multispectral image,
- `pan`: float32 `(batch, 4h, 4w, 1)` panchromatic image,

of any spatial size (multiples of 4 at PAN scale) and returns
`{"fused": (batch, 4h, 4w, C)}`. By default values are normalised to
`[0, 1]` by the sensor's max DN, like the model's own inputs. With
`raw_dn=True` the signature takes and returns digital numbers and divides /
multiplies by `max_value` inside the graph (a second signature,
`serving_normalized`, then keeps the normalised interface). Models with the
optional `lms` input also get `serving_with_lms(ms, pan, lms)` (same units as
`serving_default`), which tiled inference uses to feed an exactly upsampled MS
(see `keras_pansharp.predict_scene`).

Loading needs TensorFlow only:

    import tensorflow as tf
    served = tf.saved_model.load("pantiny_savedmodel")
    fused = served.signatures["serving_default"](ms=ms, pan=pan)["fused"]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import keras

__all__ = ["export_saved_model", "METADATA_FILE"]

METADATA_FILE = "keras_pansharp.json"


def _model_bands(model: keras.Model) -> int:
    inputs = model.inputs
    names = {}
    for tensor in inputs:
        name = getattr(tensor, "name", "") or ""
        names[name.split(":")[0].split("/")[-1]] = tensor
    if isinstance(model.input, dict):
        names.update(model.input)
    if "ms" not in names or "pan" not in names:
        raise ValueError(
            "export_saved_model expects a pan-sharpening model with dict inputs "
            f"'ms' and 'pan'; got inputs named {sorted(names)}"
        )
    bands = names["ms"].shape[-1]
    if bands is None:
        raise ValueError("the model's 'ms' input must have a static band count")
    return int(bands)


def _accepts_lms(model: keras.Model) -> bool:
    return isinstance(model.input, dict) and "lms" in model.input


def _resolve_max_value(raw_dn: bool, max_value, sensor) -> float | None:
    if sensor is not None and max_value is None:
        from keras_pansharp.sensors import get_sensor

        max_value = get_sensor(sensor).max_value
    if raw_dn and max_value is None:
        raise ValueError(
            "raw_dn=True needs the sensor's max DN: pass max_value= (e.g. 2047 "
            "for 11-bit WV2/WV3, 1023 for GF2) or sensor="
        )
    if max_value is not None:
        max_value = float(max_value)
        if not max_value > 0:
            raise ValueError(f"max_value must be > 0, got {max_value}")
    return max_value


def _replace_dir(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished export `tmp` to `path` (same filesystem)."""
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists; pass overwrite=True to replace it"
            )
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.replace(path, old / path.name)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _export_tf(model, path: Path, bands: int, raw_dn: bool, max_value, overwrite):
    import tensorflow as tf

    def fuse(ms, pan, lms=None):
        tf.debugging.assert_equal(
            tf.shape(pan)[1:3],
            4 * tf.shape(ms)[1:3],
            message="pan must be (batch, 4h, 4w, 1) for ms (batch, h, w, C)",
        )
        inputs = {"ms": ms, "pan": pan}
        if lms is not None:
            inputs["lms"] = lms
        return model(inputs, training=False)

    ms_spec = tf.TensorSpec((None, None, None, bands), tf.float32, name="ms")
    pan_spec = tf.TensorSpec((None, None, None, 1), tf.float32, name="pan")
    lms_spec = tf.TensorSpec((None, None, None, bands), tf.float32, name="lms")
    signature = [ms_spec, pan_spec]
    scale = 1.0 if max_value is None else max_value

    def serve_normalized(ms, pan):
        return {"fused": fuse(ms, pan)}

    def serve_dn(ms, pan):
        s = tf.constant(scale, tf.float32)
        return {"fused": fuse(ms / s, pan / s) * s}

    def serve_with_lms(ms, pan, lms):
        if not raw_dn:
            return {"fused": fuse(ms, pan, lms)}
        s = tf.constant(scale, tf.float32)
        return {"fused": fuse(ms / s, pan / s, lms / s) * s}

    archive = keras.export.ExportArchive()
    archive.track(model)
    if raw_dn:
        archive.add_endpoint("serving_default", serve_dn, input_signature=signature)
        archive.add_endpoint(
            "serving_normalized", serve_normalized, input_signature=signature
        )
    else:
        archive.add_endpoint(
            "serving_default", serve_normalized, input_signature=signature
        )
    if _accepts_lms(model):
        archive.add_endpoint(
            "serving_with_lms",
            serve_with_lms,
            input_signature=[ms_spec, pan_spec, lms_spec],
        )

    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        out = work / path.name
        archive.write_out(str(out), verbose=False)
        meta = {
            "format": "keras_pansharp SavedModel",
            "model_class": type(model).__name__,
            "bands": bands,
            "ratio": 4,
            "raw_dn": bool(raw_dn),
            "max_value": max_value,
            "signatures": {
                "serving_default": {
                    "inputs": {
                        "ms": f"float32 (batch, h, w, {bands})",
                        "pan": "float32 (batch, 4h, 4w, 1)",
                    },
                    "outputs": {"fused": f"float32 (batch, 4h, 4w, {bands})"},
                    "units": "DN" if raw_dn else "normalised [0, 1] (DN / max_value)",
                }
            },
            "keras_version": keras.__version__,
        }
        (out / METADATA_FILE).write_text(json.dumps(meta, indent=2))
        _replace_dir(out, path, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_CHILD = r"""
import importlib, json, sys
import keras
import keras_pansharp  # registers the library's serializable classes
from keras_pansharp.export.saved_model import export_saved_model
args = json.loads(sys.argv[1])
for module in args.pop("modules"):
    importlib.import_module(module)  # registers the model's own classes
model = keras.saving.load_model(args.pop("model_file"), compile=False)
export_saved_model(model, **args)
"""


def _export_via_tf_subprocess(model, path, raw_dn, max_value, overwrite):
    """Re-build the model under the TensorFlow backend in a child process."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:  # pragma: no cover - TF is a dependency
        raise RuntimeError(
            "exporting a SavedModel needs TensorFlow installed "
            "(`pip install tensorflow`)"
        ) from e
    with tempfile.TemporaryDirectory() as tmp:
        model_file = os.path.join(tmp, "model.keras")
        try:
            model.save(model_file)
        except Exception as e:
            raise ValueError(
                f"cannot export from the {keras.backend.backend()} backend: the "
                "model must be serializable to .keras so it can be rebuilt under "
                f"the TensorFlow backend ({type(e).__name__}: {e})"
            ) from e
        modules = sorted(
            {
                type(obj).__module__
                for obj in [model, *model._flatten_layers(include_self=False)]
                if type(obj).__module__ not in ("__main__",)
                and not type(obj).__module__.startswith("keras.")
            }
        )
        args = {
            "modules": modules,
            "model_file": model_file,
            "path": str(path),
            "raw_dn": raw_dn,
            "max_value": max_value,
            "overwrite": overwrite,
        }
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in sys.path if p] + [env.get("PYTHONPATH", "")]
        )
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args)],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(
                f"SavedModel export from the {keras.backend.backend()} backend "
                "(model rebuilt under the TensorFlow backend in a subprocess) "
                f"failed:\n{tail}"
            )


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike,
    raw_dn: bool = False,
    max_value: float | None = None,
    sensor: str | None = None,
    overwrite: bool = False,
) -> str:
    """Write `model` as a TensorFlow SavedModel with a dynamic-size signature.

    The export is written into a temporary directory next to `path` and moved
    into place only when complete, so an interrupted export never leaves a
    half-written model at `path`.

    Under the TensorFlow backend the model is traced directly
    (`keras.export.ExportArchive`). Under JAX or PyTorch the model is saved to
    a temporary `.keras` file and rebuilt and exported by a child Python
    process running the TensorFlow backend (weights are backend independent),
    which gives exactly the graph a TF-built model would; this needs the model
    to be serializable (all keras_pansharp models are). Any failure there is
    re-raised with the child's error.

    Args:
        model: pan-sharpening model with dict inputs `ms` `(h, w, C)` and `pan`
            `(4h, 4w, 1)` (optional `lms` inputs are computed inside).
        path: output directory of the SavedModel.
        raw_dn: if True, `serving_default` takes and returns digital numbers
            and normalises by `max_value` inside the graph; the normalised
            interface stays available as `serving_normalized`.
        max_value: max DN of the sensor (e.g. 2047 for 11-bit data); required
            with `raw_dn=True` unless `sensor` is given. Recorded in the
            metadata file either way.
        sensor: sensor name whose `max_value` to use (e.g. `"wv3"`).
        overwrite: replace an existing `path`.

    Returns:
        The export path as a string. The directory also holds
        `keras_pansharp.json` describing bands, units and signatures.

    Example:
    >>> model = keras_pansharp.PanTiny()
    >>> keras_pansharp.export_saved_model(model, "pantiny_savedmodel")
    >>> served = tf.saved_model.load("pantiny_savedmodel")
    >>> fused = served.signatures["serving_default"](ms=ms, pan=pan)["fused"]
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"expected a keras.Model, got {type(model).__name__}")
    bands = _model_bands(model)
    max_value = _resolve_max_value(raw_dn, max_value, sensor)
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if keras.backend.backend() == "tensorflow":
        _export_tf(model, path, bands, raw_dn, max_value, overwrite)
    else:
        _export_via_tf_subprocess(model, path, raw_dn, max_value, overwrite)
    return str(path)
