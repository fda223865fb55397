"""What the `keras-pansharp` commands share: errors, the model argument,
argument types and progress lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "keras-pansharp"


class CLIError(Exception):
    """A usage or input error reported as one line with exit status 2."""


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


def exact_arg(args) -> bool | str:
    if args.exact:
        return True
    if args.blend:
        return False
    return "auto"


def check_output(path: str | None, overwrite: bool) -> None:
    if path and Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def log(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, got {value!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def nonnegative_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {x}")
    return x


def overviews(value: str) -> str:
    if value != "auto":
        try:
            if int(value) < 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected 'auto' or a count >= 0, got {value!r}"
            ) from None
    return value
