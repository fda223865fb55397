"""`keras-pansharp evaluate`: toolbox-exact scores of a fused GeoTIFF."""

from __future__ import annotations

import csv
import io
import json
import sys

from keras_pansharp.cli.common import CLIError, check_output, log, positive


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
    check_output(args.output, args.overwrite)
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
                log(args, f"Note: {note}")
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
        log(
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
        log(
            args,
            f"Wrote {args.output} ({seconds:.1f} s, {h * w / 1e6 / max(seconds, 1e-9):.3g} MP/s)",
        )
    else:
        sys.stdout.write(text)
        log(args, f"Evaluated in {seconds:.1f} s")
    return 0


def add_parser(subparsers) -> None:
    """Add `evaluate` and its options to the `keras-pansharp` subparsers."""
    e = subparsers.add_parser(
        "evaluate",
        help="toolbox-exact quality scores of a fused image (FR or RR)",
        description=(
            "Toolbox-exact scores of a fused GeoTIFF in DN: full resolution "
            "(no reference: D_lambda, D_s, QNR, D_lambda^K, HQNR, and Scarpa & "
            "Ciotola's D_rho, R-Q2n, R-SAM, R-ERGAS) with --ms and --pan, or "
            "reduced resolution (Q2n, Q, SAM, ERGAS, SCC, PSNR, SSIM) "
            "against --reference. The files are read window by window "
            "(--window pixels plus halos) and the scores accumulated exactly "
            "(the numbers of the in-memory evaluation, to ~1e-13), so memory "
            "stays bounded (about 0.5 GB for 4 bands) whatever the scene size, "
            "except for the reprojection indices, which keep two float64 "
            "MS-scale images (16 bytes per MS pixel and band)."
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
        type=positive,
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
