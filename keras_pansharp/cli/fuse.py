"""`keras-pansharp fuse`: pan-sharpen a GeoTIFF scene disk to disk."""

from __future__ import annotations

import argparse

from keras_pansharp.cli.common import (
    check_output,
    exact_arg,
    load_model,
    log,
    nonnegative_float,
    overviews,
    positive,
)


def _adapt_crop(ms_path, pan_path, bands, side: int):
    """A centred crop of the scene (`side` PAN pixels, 0: all) read as windows."""
    from keras_pansharp.data.geotiff import GeoTiffReader

    with (
        GeoTiffReader(ms_path, bands=bands) as ms,
        GeoTiffReader(pan_path) as pan,
    ):
        h, w = ms.height, ms.width
        if side <= 0:
            sh, sw = h, w
        else:
            s = max(side // 4, 8)
            sh, sw = min(s, h), min(s, w)
        i0, j0 = (h - sh) // 2, (w - sw) // 2
        ms_c = ms.read((i0, j0, sh, sw))
        pan_c = pan.read((4 * i0, 4 * j0, 4 * sh, 4 * sw))[..., 0]
    return ms_c, pan_c


def cmd_fuse(args) -> int:
    from keras_pansharp.data.geotiff import GeoTiffReader, check_alignment
    from keras_pansharp.streaming import fuse_geotiff, model_bands, resolve_bands

    check_output(args.output, args.overwrite)
    # Cheap checks first: the model takes seconds to load.
    with GeoTiffReader(args.ms) as ms, GeoTiffReader(args.pan) as pan:
        notes = check_alignment(ms, pan)
        idx, view = resolve_bands(args.bands, args.sensor, ms.num_file_bands)
        log(
            args,
            f"Scene: MS {ms.width} x {ms.height} x {ms.num_file_bands} "
            f"{ms.dtype}, PAN {pan.width} x {pan.height}; fusing bands "
            f"{list(idx)} as {view.name} (max DN {view.max_value:g})",
        )
    for note in notes:
        log(args, f"Note: {note}")
    model = load_model(args.model)
    want = model_bands(model)
    if want is not None and want != len(idx):
        hint = " (add --bands rgbn)" if want == 4 and len(idx) > 4 else ""
        raise ValueError(
            f"model {args.model} takes {want} bands but {len(idx)} MS bands were "
            f"selected{hint}"
        )
    if args.adapt:
        from keras_pansharp.adaptation import adapt

        ms_c, pan_c = _adapt_crop(args.ms, args.pan, idx, args.adapt_crop)
        log(
            args,
            f"Adapting on a {pan_c.shape[0]} x {pan_c.shape[1]} PAN crop for "
            f"{args.adapt_steps} steps",
        )
        res = adapt(
            model,
            ms_c,
            pan_c,
            sensor=view,
            steps=args.adapt_steps,
            time_limit=args.adapt_time_limit or None,
            verbose=0 if args.quiet else 1,
        )
        log(args, f"Crop {res.summary()}")
        model = res.model
        del ms_c, pan_c
    calibrate = args.calibrate
    from keras_pansharp.calibration import can_fold_gains, has_detail_calibration

    if calibrate is None and has_detail_calibration(model):
        log(args, "The model calibrates its details on the scene itself")
        calibrate = False
    if calibrate is None:  # auto: where the gains fold into the model
        calibrate = can_fold_gains(model) and not args.adapt  # adapt calibrates
    if calibrate:
        from keras_pansharp.calibration import calibrate_detail_gain

        ms_c, pan_c = _adapt_crop(args.ms, args.pan, idx, args.adapt_crop)
        cal = calibrate_detail_gain(model, ms_c, pan_c, sensor=view, crop=None)
        if cal.model is None:
            raise ValueError(
                f"--calibrate: {type(model).__name__} adds no residual convolution "
                "to the upsampled MS, so a detail gain cannot be folded into it"
            )
        gains = ", ".join(f"{g:g}" for g in cal.gains)
        log(
            args,
            f"Detail gains on a {pan_c.shape[0]} x {pan_c.shape[1]} PAN crop: "
            f"{gains} (crop D_s {cal.d_s_before:.4f} -> {cal.d_s_after:.4f}, "
            f"{cal.seconds:.1f} s)",
        )
        model = cal.model
        del ms_c, pan_c
    result = fuse_geotiff(
        model,
        args.ms,
        args.pan,
        args.output,
        sensor=args.sensor,
        bands=idx,
        tile=args.tile,
        batch_size=args.batch_size,
        activation_cache_mb=args.cache_mb,
        exact=exact_arg(args),
        overlap=args.overlap,
        overwrite=args.overwrite,
        progress=not args.quiet,
        overviews=args.overviews if args.overviews == "auto" else int(args.overviews),
    )
    h, w, c = result.shape
    log(
        args,
        f"Wrote {result.path} ({w} x {h} x {c} uint16 DN, "
        f"{'exact' if result.exact else 'blended'} tiling) in "
        f"{result.seconds:.1f} s ({result.megapixels_per_second:.3g} MP/s)",
    )
    return 0


def add_parser(subparsers) -> None:
    """Add `fuse` and its options to the `keras-pansharp` subparsers."""
    f = subparsers.add_parser(
        "fuse",
        help="pan-sharpen a GeoTIFF scene disk to disk in bounded memory",
        description=(
            "Pan-sharpen an MS + PAN GeoTIFF pair of any size: both are read "
            "window by window and the result is written tile by tile to a "
            "tiled, deflate-compressed GeoTIFF (uint16 DN, the PAN's "
            "georeferencing, nodata and the MS band descriptions, with "
            "overviews), atomically. --adapt first fine-tunes the model on a "
            "centred crop of the scene (held in memory)."
        ),
    )
    f.add_argument(
        "model",
        help="a .keras model file, or a preset name (pantiny_multisensor: the "
        "pretrained 4-band PanTiny shipped in the package)",
    )
    f.add_argument("--ms", required=True, help="MS GeoTIFF (digital numbers).")
    f.add_argument("--pan", required=True, help="PAN GeoTIFF, 4x the MS size.")
    f.add_argument(
        "--sensor", required=True, help="sensor of the MS file: wv3, wv2, qb, gf2, ..."
    )
    f.add_argument("--output", "-o", required=True, help="output GeoTIFF.")
    f.add_argument(
        "--bands",
        default=None,
        help="'rgbn' (blue, green, red, NIR: a 4-band model on 8-band data) or "
        "0-based indices such as 1,2,4,6 (default: all bands)",
    )
    f.add_argument("--tile", type=positive, default=512, help="model tile side (512).")
    f.add_argument(
        "--batch-size",
        type=positive,
        default=None,
        help="tiles per model call (1 with exact tiling, 4 when blending)",
    )
    f.add_argument(
        "--cache-mb",
        type=nonnegative_float,
        default=256,
        help="exact tiling: MB of activations kept in memory between passes; "
        "the rest goes to a temporary file (256)",
    )
    f.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="blending overlap in PAN pixels (64, or tile/2 if smaller)",
    )
    mode = f.add_mutually_exclusive_group()
    mode.add_argument(
        "--exact",
        action="store_true",
        help="exact tiling (equals untiled prediction; default for PanTiny)",
    )
    mode.add_argument(
        "--blend",
        action="store_true",
        help="one pass with blended overlapping tiles (default for CNNs)",
    )
    f.add_argument(
        "--adapt",
        action="store_true",
        help="fine-tune the model on the scene first (keras_pansharp.adapt)",
    )
    f.add_argument("--adapt-steps", type=positive, default=100, help="(100)")
    f.add_argument(
        "--adapt-time-limit",
        type=nonnegative_float,
        default=60.0,
        help="seconds --adapt may take at most; fine-tuning stops early to "
        "stay within it (60; 0: no limit)",
    )
    f.add_argument(
        "--calibrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rescale the model's details per band to the scene first "
        "(keras_pansharp.calibrate_detail_gain; --adapt includes it). Default: "
        "on for models whose output adds a convolution to the upsampled MS "
        "(PanTiny, PanNet, DiCNN, FusionNet, SFDI, PanMamba), off otherwise and "
        "for models that calibrate themselves (pantiny_multisensor: "
        "calibrate_details=True)",
    )
    f.add_argument(
        "--adapt-crop",
        type=int,
        default=1024,
        help="PAN side of the centred crop --adapt trains on and --calibrate "
        "measures (1024; 0: the whole scene, which must then fit in memory)",
    )
    f.add_argument(
        "--overviews",
        type=overviews,
        default="auto",
        help="overview levels of the output ('auto': until one tile; 0: none)",
    )
    f.add_argument("--overwrite", action="store_true", help="replace --output.")
    f.add_argument("--quiet", "-q", action="store_true", help="no progress output.")
    f.set_defaults(func=cmd_fuse)
