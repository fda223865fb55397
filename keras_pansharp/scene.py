"""Whole-scene prediction: the scene's model, then tiled inference.

`predict_scene(model, ms, pan)` is the entry point for fusing a scene of
any size. It composes the two layers below it, in one direction:

1. `keras_pansharp.calibration.scene_model`: a model that chooses detail
   gains on each image (`DetailCalibration`, e.g. the
   `"pantiny_multisensor"` preset) gets one set for the whole scene, chosen
   on its centred crop and folded into its raw network; any other model is
   used as it is.
2. `keras_pansharp.inference.predict_tiled`: that model over the scene tile
   by tile, exactly or blended, in bounded memory.

Neither layer calls back into the other: calibration predicts its crop with
`predict_tiled` on the raw network, and `predict_tiled` never calibrates.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_pansharp.calibration import has_detail_calibration, scene_model
from keras_pansharp.inference import check_tiling_inputs, predict_tiled

__all__ = ["predict_scene"]


def predict_scene(
    model: keras.Model,
    ms,
    pan,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    lms=None,
    max_value: float | None = None,
    out=None,
    verbose: int = 1,
    exact: bool | str = "auto",
    halo: int | None = None,
    cache_mb: float = 1024,
    cache_dir: str | None = None,
) -> np.ndarray:
    """Pan-sharpen a whole scene tile by tile, in bounded memory.

    Two schemes (`keras_pansharp.inference`): `exact` (multi-pass, disjoint
    cores with a halo, image-wide statistics such as PanTiny's channel
    attention computed over the whole scene: equals untiled prediction up to
    float rounding) and blending (one pass, overlapping tiles blended).

    A model that calibrates its details on each image (a `DetailCalibration`
    layer, e.g. `PanTiny.from_preset("pantiny_multisensor")`) gets one set of
    gains for the whole scene, chosen on its centred crop of at most 1024
    PAN pixels (`keras_pansharp.calibration.scene_model`); for a scene of at
    most 1024^2 that is the whole scene, as `model.predict`.

    Args:
        model: pan-sharpening model (dict inputs `ms`, `pan`, optional `lms`),
            or, for blending, any object with `predict_on_batch(dict) ->
            (B, H, W, C)` (e.g. a wrapper of a served SavedModel; give it an
            attribute `accepts_interp23tap_lms = True` to receive the exact
            `lms`).
        ms: `(h, w, C)` MS scene; any array-like read by slices (NumPy array,
            `np.memmap`, h5py dataset). Normalised floats, or DN with
            `max_value`.
        pan: `(4h, 4w)` or `(4h, 4w, 1)` PAN scene, same units as `ms`.
        tile: tile side at PAN scale (multiple of 4); capped at the scene size.
            In exact mode it includes the halo (`tile > 2 * halo + 4`).
        overlap: blending only: pixels shared by neighbouring tiles (multiple
            of 4, `<= tile / 2`). Blended output equals untiled output for
            models with receptive-field radius <= `overlap // 4`.
        batch_size: tiles per model call.
        lms: optional precomputed `(4h, 4w, C)` upsampled MS scene (same
            units); by default it is computed per tile with a wrapped halo
            (toolbox `interp23tap`, exact) when the model uses that upsampler.
        max_value: if given, inputs are digital numbers: each tile is divided
            by `max_value` before the model and the output multiplied back.
        out: optional writable `(4h, 4w, C)` float32 array-like initialised to
            0 (e.g. `np.lib.format.open_memmap(..., mode="w+")`) receiving the
            result; by default a new in-memory array.
        verbose: 1 shows a `keras.utils.Progbar` over tiles (all passes), 0
            is silent.
        exact: `"auto"` (default): exact when the model has layers with
            image-wide statistics (`global_statistics_layers`, PanTiny's
            `ChannelAttention`), blending otherwise. `True`: exact (a Keras
            model; `L + 1` passes for `L` such layers, one pass for a
            convolutional model). `False`: blending (approximate for PanTiny:
            each tile then uses its own statistics).
        halo: exact mode: context pixels around each core (multiple of 4);
            default `receptive_radius(model)` rounded up to a multiple of 4.
        cache_mb: exact mode: megabytes of the activations kept between
            passes (the block input `b` of every tile, see the module docstring) held in
            memory; the rest goes to an anonymous temporary file (0: all on
            disk). On JAX it also caps the tiles run in one compiled call.
        cache_dir: exact mode: folder of that temporary file (default: the
            system's temporary folder, `tempfile.gettempdir()`).

    Returns:
        The fused scene `(4h, 4w, C)` float32 (`out` when given).

    Raises:
        ValueError: bad shapes, ratio, dtype, tiling arguments, a scene
            below 32 x 32 PAN pixels for a model that calibrates itself, or
            a tile containing NaN/inf (the input and the tile's location are named;
            checked on the host as each tile is read, before the model runs).

    Warns:
        UserWarning: once per call, when a tile's values exceed 1.5 after
            normalisation (digital numbers without `max_value=`, or a
            `max_value` below the data's range). The data are never rescaled.


    Example:
    >>> fused = predict_scene(model, ms_scene, pan_scene, tile=512)  # doctest: +SKIP
    """
    if has_detail_calibration(model):
        # The arguments are checked before the gains are chosen on the crop.
        check_tiling_inputs(
            ms, pan, lms, tile, overlap if exact is False else 0, batch_size, max_value
        )
        model = scene_model(model, ms, pan, max_value)
    return predict_tiled(
        model, ms, pan, tile=tile, overlap=overlap, batch_size=batch_size, lms=lms,
        max_value=max_value, out=out, verbose=verbose, exact=exact, halo=halo,
        cache_mb=cache_mb, cache_dir=cache_dir,
    )  # fmt: skip
