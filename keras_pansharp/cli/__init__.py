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

One module per command (`fuse`, `evaluate`, `info`; `prepare` is
`keras_pansharp.data.prepare`), their shared helpers in `common`. Nothing here
imports Keras or a backend before a command needs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from keras_pansharp.cli import evaluate, fuse, info
from keras_pansharp.cli.common import PROG, CLIError, load_model

__all__ = ["CLIError", "build_parser", "load_model", "main", "run"]


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

    fuse.add_parser(sub)
    evaluate.add_parser(sub)
    sub.add_parser(
        "prepare",
        help="cut PanCollection training patches from a scene (Wald's protocol)",
        add_help=False,
    )

    info.add_parser(sub)
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
