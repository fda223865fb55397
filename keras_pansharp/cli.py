"""The `keras-pansharp` command: fuse, evaluate, prepare and inspect scenes.

```
keras-pansharp fuse pantiny_multisensor --ms ms.tif --pan pan.tif \\
    --sensor qb --output fused.tif
keras-pansharp evaluate --fused fused.tif --ms ms.tif --pan pan.tif --sensor qb
keras-pansharp evaluate --fused fused_rr.tif --reference gt.tif --sensor qb
keras-pansharp prepare --ms ms.tif --pan pan.tif --sensor qb --out train_qb.h5
keras-pansharp info ms.tif
```

Every subcommand has `--help`. Errors in the inputs (a missing file, a band
or size mismatch, an extent or CRS mismatch, an existing output without
`--overwrite`) print one line and exit with status 2; outputs are written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "run"]

PROG = "keras-pansharp"


class CLIError(Exception):
    """A usage or input error reported as one line with exit status 2."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def load_model(spec: str):
    """A model from a `.keras` file or a PanTiny preset name.

    Args:
        spec: path of a `.keras` file, or a pretrained preset:
            `"pantiny_multisensor"` (shipped in the package).

    Returns:
        The Keras model.

    Raises:
        FileNotFoundError: a `.keras` path that does not exist.
        ValueError: neither a `.keras` file nor a known preset.
    """
    import keras

    from keras_pansharp.models.pantiny import PANTINY_PRESETS, PanTiny

    path = Path(spec)
    if spec.endswith(".keras") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"model file {spec} not found")
        if path.suffix != ".keras":
            raise ValueError(
                f"model {spec}: expected a .keras file (keras.Model.save) or a "
                "pretrained preset name (pantiny_multisensor)"
            )
        return keras.saving.load_model(path)
    pretrained = [k for k, v in PANTINY_PRESETS.items() if "weights" in v]
    if spec in pretrained:
        return PanTiny.from_preset(spec)
    raise ValueError(
        f"unknown model {spec!r}: give a .keras file or a pretrained preset "
        f"({', '.join(pretrained)})"
    )


def _exact_arg(args) -> bool | str:
    if args.exact:
        return True
    if args.blend:
        return False
    return "auto"


def _check_output(path: str | None, overwrite: bool) -> None:
    if path and Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def _log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


# --------------------------------------------------------------------------
# fuse
# --------------------------------------------------------------------------


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

    _check_output(args.output, args.overwrite)
    # Cheap checks first: the model takes seconds to load.
    with GeoTiffReader(args.ms) as ms, GeoTiffReader(args.pan) as pan:
        notes = check_alignment(ms, pan)
        idx, view = resolve_bands(args.bands, args.sensor, ms.num_file_bands)
        _log(
            args,
            f"Scene: MS {ms.width} x {ms.height} x {ms.num_file_bands} "
            f"{ms.dtype}, PAN {pan.width} x {pan.height}; fusing bands "
            f"{list(idx)} as {view.name} (max DN {view.max_value:g})",
        )
    for note in notes:
        _log(args, f"Note: {note}")
    model = load_model(args.model)
    want = model_bands(model)
    if want is not None and want != len(idx):
        hint = " (add --bands rgbn)" if want == 4 and len(idx) > 4 else ""
        raise ValueError(
            f"model {args.model} takes {want} bands but {len(idx)} MS bands were "
            f"selected{hint}"
        )
    if args.adapt:
        import keras_pansharp as kp

        ms_c, pan_c = _adapt_crop(args.ms, args.pan, idx, args.adapt_crop)
        _log(
            args,
            f"Adapting on a {pan_c.shape[0]} x {pan_c.shape[1]} PAN crop for "
            f"{args.adapt_steps} steps",
        )
        res = kp.adapt(
            model,
            ms_c,
            pan_c,
            sensor=view,
            steps=args.adapt_steps,
            time_limit=args.adapt_time_limit or None,
            verbose=0 if args.quiet else 1,
        )
        _log(args, f"Crop {res.summary()}")
        model = res.model
        del ms_c, pan_c
    calibrate = args.calibrate
    from keras_pansharp.calibration import _can_fold_gains, has_detail_calibration

    if calibrate is None and has_detail_calibration(model):
        _log(args, "The model calibrates its details on the scene itself")
        calibrate = False
    if calibrate is None:  # auto: where the gains fold into the model
        calibrate = _can_fold_gains(model) and not args.adapt  # adapt calibrates
    if calibrate:
        import keras_pansharp as kp

        ms_c, pan_c = _adapt_crop(args.ms, args.pan, idx, args.adapt_crop)
        cal = kp.calibrate_detail_gain(model, ms_c, pan_c, sensor=view, crop=None)
        if cal.model is None:
            raise ValueError(
                f"--calibrate: {type(model).__name__} adds no residual convolution "
                "to the upsampled MS, so a detail gain cannot be folded into it"
            )
        gains = ", ".join(f"{g:g}" for g in cal.gains)
        _log(
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
        exact=_exact_arg(args),
        overlap=args.overlap,
        overwrite=args.overwrite,
        progress=not args.quiet,
        overviews=args.overviews if args.overviews == "auto" else int(args.overviews),
    )
    h, w, c = result.shape
    _log(
        args,
        f"Wrote {result.path} ({w} x {h} x {c} uint16 DN, "
        f"{'exact' if result.exact else 'blended'} tiling) in "
        f"{result.seconds:.1f} s ({result.megapixels_per_second:.3g} MP/s)",
    )
    return 0


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------


def _same_ground(a, b, what: str) -> None:
    """Raise when two same-size rasters are georeferenced differently.

    Files without georeferencing (either one) pass: their sizes were checked.
    """
    import math

    ga, gb = a.geo, b.geo
    if not (ga.is_georeferenced and gb.is_georeferenced):
        return
    if ga.crs_keys != gb.crs_keys:
        raise ValueError(
            f"{a.path} and {what} {b.path} have different coordinate reference "
            f"systems ({ga.crs or '?'} vs {gb.crs or '?'})"
        )
    x0, dx, rx, y0, ry, dy = ga.geotransform
    u0, ux, urx, v0, vry, vy = gb.geotransform
    psize = max(math.hypot(ux, vry), math.hypot(urx, vy))
    if any(
        abs(p - q) > 1e-3 * psize for p, q in zip((dx, rx, ry, dy), (ux, urx, vry, vy))
    ):
        pa, pb = ga.pixel_size, gb.pixel_size
        raise ValueError(
            f"{a.path} has pixels of {pa[0]:.6g} x {pa[1]:.6g} but {what} {b.path} "
            f"has {pb[0]:.6g} x {pb[1]:.6g}: not the same grid"
        )
    gap = math.hypot(u0 - x0, v0 - y0)
    if gap > 0.5 * psize:
        raise ValueError(
            f"{a.path} and {what} {b.path} do not cover the same extent: origins "
            f"({x0:.6f}, {y0:.6f}) and ({u0:.6f}, {v0:.6f}) are {gap:.4g} CRS "
            f"units apart (more than half a pixel, {0.5 * psize:.4g})"
        )


_SCALE_NAMES = {"fused": "fused", "ms_lr": "ms", "pan": "pan", "gt": "reference"}


def _cli_scale_error(e: ValueError, args) -> ValueError:
    """A metrics scale error reworded for the command line (files, options)."""
    msg = str(e)
    if "normalised to [0, 1]" not in msg and "normalized=True" not in msg:
        return e
    for fn in ("evaluate_fr_windowed: ", "evaluate_rr_windowed: "):
        msg = msg.replace(fn, "")
    for name, attr in _SCALE_NAMES.items():
        path = getattr(args, attr, None)
        if path is not None:
            msg = msg.replace(repr(name), str(path))
    msg = msg.replace("normalized=True", "--normalized").replace(
        "normalized=False", "no --normalized"
    )
    return ValueError(msg)


def cmd_evaluate(args) -> int:
    import contextlib
    import time

    from keras_pansharp.data.geotiff import GeoTiffReader, check_alignment
    from keras_pansharp.metrics import evaluate_fr_windowed, evaluate_rr_windowed
    from keras_pansharp.streaming import resolve_bands

    fr = args.ms is not None or args.pan is not None
    if fr == (args.reference is not None):
        raise CLIError(
            "give --ms and --pan (full resolution) or --reference (reduced "
            "resolution), not both"
        )
    if fr and (args.ms is None or args.pan is None):
        raise CLIError("full-resolution evaluation needs both --ms and --pan")
    _check_output(args.output, args.overwrite)
    base = args.ms if fr else args.reference
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # Every file is opened as a window reader: nothing is read whole.
        fused = stack.enter_context(GeoTiffReader(args.fused))
        with GeoTiffReader(base) as base_r:
            idx, view = resolve_bands(args.bands, args.sensor, base_r.num_file_bands)
        if fused.num_file_bands != len(idx):
            n = fused.num_file_bands
            hint = " (add --bands rgbn)" if n == 4 and len(idx) > 4 else ""
            raise ValueError(
                f"{args.fused} has {n} bands but {len(idx)} bands of {base} were "
                f"selected{hint}"
            )
        if fr:
            ms = stack.enter_context(GeoTiffReader(args.ms, bands=idx))
            pan = stack.enter_context(GeoTiffReader(args.pan))
            for note in check_alignment(ms, pan):
                _log(args, f"Note: {note}")
            if (fused.height, fused.width) != (pan.height, pan.width):
                raise ValueError(
                    f"{args.fused} is {fused.width} x {fused.height} but the PAN "
                    f"{args.pan} is {pan.width} x {pan.height}"
                )
            _same_ground(fused, pan, "the PAN")
            ref = None
        else:
            ref = stack.enter_context(GeoTiffReader(args.reference, bands=idx))
            if fused.shape != ref.shape:
                raise ValueError(
                    f"{args.fused} is {fused.width} x {fused.height} x "
                    f"{fused.shape[2]} but the reference {args.reference} is "
                    f"{ref.width} x {ref.height} x {ref.shape[2]}"
                )
            _same_ground(fused, ref, "the reference")
        h, w = fused.height, fused.width
        _log(
            args,
            f"Evaluating {args.fused} ({w} x {h} x {len(idx)}, "
            f"{'full' if fr else 'reduced'} resolution, {view.name}) in windows "
            f"of {args.window} pixels",
        )
        verbose = 1 if args.output and not args.quiet else 0
        try:
            if fr:
                scores = evaluate_fr_windowed(
                    fused, ms, pan, sensor=view, normalized=args.normalized,
                    window=args.window, verbose=verbose,
                )  # fmt: skip
            else:
                scores = evaluate_rr_windowed(
                    fused, ref, sensor=view, normalized=args.normalized,
                    dim_cut=args.dim_cut, window=args.window, verbose=verbose,
                )  # fmt: skip
        except ValueError as e:
            raise _cli_scale_error(e, args) from e
    seconds = time.perf_counter() - t0
    record = {
        "mode": "fr" if fr else "rr",
        "fused": str(args.fused),
        "sensor": view.name,
        "bands": list(idx),
        **{k: float(v) for k, v in scores.items()},
    }
    if args.format == "json":
        text = json.dumps(record, indent=2) + "\n"
    else:
        buf = io.StringIO()
        row = {**record, "bands": " ".join(str(b) for b in idx)}
        writer = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
        text = buf.getvalue()
    if args.output:
        from keras_pansharp.utils.io import write_atomic

        write_atomic(args.output, text)
        _log(
            args,
            f"Wrote {args.output} ({seconds:.1f} s, {h * w / 1e6 / max(seconds, 1e-9):.3g} MP/s)",
        )
    else:
        sys.stdout.write(text)
        _log(args, f"Evaluated in {seconds:.1f} s")
    return 0


# --------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------


def _format_info(info: dict) -> str:
    lines = [info["path"]]

    def add(key, value):
        lines.append(f"  {key:<16}{value}")

    add("size", f"{info['width']} x {info['height']} pixels, {info['bands']} band(s)")
    add("dtype", info["dtype"])
    block = info["block"]
    layout = (
        f"tiled {block[1]} x {block[0]}"
        if info["layout"] == "tiled"
        else f"striped, {block[0]} row(s) per strip"
    )
    add(
        "layout",
        f"{layout}, {info['interleave']}-interleaved, {info['compression']} "
        f"compression{', BigTIFF' if info['bigtiff'] else ''}, "
        f"{info['overviews']} overview(s)",
    )
    if info["georeferenced"]:
        px = info["pixel_size"]
        add("crs", info["crs"] or "not given")
        add("pixel size", f"{px[0]:.6g} x {px[1]:.6g}")
        add("origin", f"({info['origin'][0]:.6f}, {info['origin'][1]:.6f})")
    else:
        add("georeferencing", "none")
    add("nodata", "none" if info["nodata"] is None else f"{info['nodata']:g}")
    if any(info["band_descriptions"]):
        add(
            "bands",
            ", ".join(
                f"{i}: {d or '-'}" for i, d in enumerate(info["band_descriptions"])
            ),
        )
    if info["max_value"] is not None:
        add(
            "values",
            f"{info['min_value']:g} .. {info['max_value']:g} "
            f"({info['value_range_from']})",
        )
    add("likely sensor", info["likely_sensor"])
    return "\n".join(lines)


def cmd_info(args) -> int:
    from keras_pansharp.data.geotiff import describe

    infos = [describe(path) for path in args.files]
    if args.format == "json":
        out = infos[0] if len(infos) == 1 else infos
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(_format_info(i) for i in infos) + "\n")
    return 0


# --------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, got {value!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _nonnegative_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {x}")
    return x


def _overviews(value: str) -> str:
    if value != "auto":
        try:
            if int(value) < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected 'auto' or a count >= 0, got {value!r}"
            ) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `keras-pansharp` argument parser (all subcommands but `prepare`)."""
    from keras_pansharp.version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Deep pan-sharpening of satellite scenes with keras_pansharp.",
        epilog=f"Run '{PROG} COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser(
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
    f.add_argument("--tile", type=_positive, default=512, help="model tile side (512).")
    f.add_argument(
        "--batch-size",
        type=_positive,
        default=None,
        help="tiles per model call (1 with exact tiling, 4 when blending)",
    )
    f.add_argument(
        "--cache-mb",
        type=_nonnegative_float,
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
    f.add_argument("--adapt-steps", type=_positive, default=100, help="(100)")
    f.add_argument(
        "--adapt-time-limit",
        type=_nonnegative_float,
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
        type=_overviews,
        default="auto",
        help="overview levels of the output ('auto': until one tile; 0: none)",
    )
    f.add_argument("--overwrite", action="store_true", help="replace --output.")
    f.add_argument("--quiet", "-q", action="store_true", help="no progress output.")
    f.set_defaults(func=cmd_fuse)

    e = sub.add_parser(
        "evaluate",
        help="toolbox-exact quality scores of a fused image (FR or RR)",
        description=(
            "Toolbox-exact scores of a fused GeoTIFF in DN: full resolution "
            "(no reference: D_lambda, D_s, QNR, D_lambda^K, HQNR) with --ms and "
            "--pan, or reduced resolution (Q2n, Q, SAM, ERGAS, SCC, PSNR, SSIM) "
            "against --reference. The files are read window by window "
            "(--window pixels plus halos) and the scores accumulated exactly "
            "(the numbers of the in-memory evaluation, to ~1e-13), so memory "
            "stays bounded (about 0.5 GB for 4 bands) whatever the scene size."
        ),
    )
    e.add_argument("--fused", required=True, help="fused GeoTIFF (DN).")
    e.add_argument("--ms", help="MS GeoTIFF (full-resolution evaluation).")
    e.add_argument("--pan", help="PAN GeoTIFF (full-resolution evaluation).")
    e.add_argument("--reference", help="reference GeoTIFF (reduced resolution).")
    e.add_argument("--sensor", required=True, help="sensor of the MS / reference.")
    e.add_argument(
        "--bands", default=None, help="band selection of --ms/--reference (see fuse)."
    )
    e.add_argument(
        "--dim-cut", type=int, default=0, help="RR border cut (21 for 256^2 tests)."
    )
    e.add_argument(
        "--window",
        type=_positive,
        default=1024,
        help="window side in pixels, rounded down to a multiple of 32 (1024); "
        "memory grows with its square, not with the scene",
    )
    e.add_argument(
        "--normalized",
        action="store_true",
        help="the files hold values in [0, 1] rather than digital numbers "
        "(scaled by the sensor's max DN)",
    )
    e.add_argument("--format", choices=("json", "csv"), default="json")
    e.add_argument("--output", "-o", help="write the scores here (default: stdout).")
    e.add_argument("--overwrite", action="store_true", help="replace --output.")
    e.add_argument("--quiet", "-q", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    sub.add_parser(
        "prepare",
        help="cut PanCollection training patches from a scene (Wald's protocol)",
        add_help=False,
    )

    i = sub.add_parser(
        "info",
        help="bands, size, layout, georeferencing and likely sensor of a raster",
        description=(
            "Describe GeoTIFF files: size, bands, dtype, tiling, compression, "
            "CRS/EPSG, pixel size, origin, nodata, band descriptions, value "
            "range and the likely sensor (from the band count and max DN)."
        ),
    )
    i.add_argument("files", nargs="+", help="GeoTIFF file(s).")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `keras-pansharp` with `argv` (default `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for usage and input errors (one line
        on stderr, no traceback), 1 for other I/O failures.

    Example:

    >>> main(["info", "ms.tif"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "prepare":
        from keras_pansharp.data.prepare import main as prepare_main

        try:
            return prepare_main(argv[1:], prog=f"{PROG} prepare")
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 2
        except (FileNotFoundError, ValueError) as e:
            print(f"{PROG} prepare: error: {e}", file=sys.stderr)
            return 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{PROG} {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point (`keras-pansharp`).

    With `KERAS_BACKEND=jax` it first lets glibc keep freed memory
    (`keras_pansharp.utils.perf.retain_freed_host_memory`): XLA on CPU
    allocates its buffers anew at every call, which otherwise page-faults them
    in again each time (docs/performance.md).
    """
    if os.environ.get("KERAS_BACKEND", "").lower() == "jax":
        from keras_pansharp.utils.perf import retain_freed_host_memory

        retain_freed_host_memory()
    sys.exit(main())


if __name__ == "__main__":
    run()
