"""Command line: cut a PanCollection training file from a scene (Wald's protocol).

Also available as `keras-pansharp prepare` (same arguments).

Example:

```
python -m keras_pansharp.data.prepare --ms MS.tif --pan PAN.tif --sensor WV3 \
    --out train_wv3.h5 --patch-size 64 --stride 32 [--fr-out fr_wv3.h5]
```
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or "python -m keras_pansharp.data.prepare",
        description=(
            "Apply Wald's protocol to an MS + PAN scene and write PanCollection-"
            "format reduced-resolution training patches (gt/ms/lms/pan)."
        ),
    )
    p.add_argument("--ms", required=True, help="MS file (.tif/.tiff/.mat).")
    p.add_argument(
        "--pan", default=None, help="PAN file (omit for a .mat holding both)."
    )
    p.add_argument("--sensor", required=True, help="Sensor name, e.g. WV3, GF2, QB.")
    p.add_argument("--out", required=True, help="Output RR .h5 file.")
    p.add_argument("--patch-size", type=int, default=64, help="GT patch size (64).")
    p.add_argument("--stride", type=int, default=None, help="Grid step (patch size).")
    p.add_argument("--fr-out", default=None, help="Optional FR crops .h5 file.")
    p.add_argument("--ms-key", default=None, help="MS variable in a .mat file.")
    p.add_argument("--pan-key", default=None, help="PAN variable in a .mat file.")
    p.add_argument(
        "--scale", type=float, default=1.0, help="Multiply values (e.g. 2047)."
    )
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument(
        "--overwrite", action="store_true", help="Replace existing output files."
    )
    return p


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the CLI; returns the process exit status.

    Args:
        argv: the arguments (default `sys.argv[1:]`).
        prog: program name shown in usage and help (`keras-pansharp prepare`
            when called from the `keras-pansharp` command).
    """
    args = _parser(prog).parse_args(argv)
    from keras_pansharp.data.patches import make_training_set

    try:
        res = make_training_set(
            args.ms,
            args.pan,
            args.sensor,
            patch_size=args.patch_size,
            stride=args.stride,
            out=args.out,
            overwrite=args.overwrite,
            fr_out=args.fr_out,
            ms_key=args.ms_key,
            pan_key=args.pan_key,
            scale=args.scale,
            dtype=args.dtype,
            progress=True,
        )
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    msg = f"wrote {res['rr_samples']} RR patches to {res['rr']}"
    if "fr" in res:
        msg += f" and {res['fr_samples']} FR patches to {res['fr']}"
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
