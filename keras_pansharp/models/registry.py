"""Select a pan-sharpening model by name (for examples, scripts and configs)."""

from __future__ import annotations

import keras

from keras_pansharp.models.dicnn import DiCNN
from keras_pansharp.models.fusionnet import FusionNet
from keras_pansharp.models.msdcnn import MSDCNN
from keras_pansharp.models.panflow import PanFlow
from keras_pansharp.models.panmamba import PanMamba
from keras_pansharp.models.pannet import PanNet
from keras_pansharp.models.pnn import PNN
from keras_pansharp.models.pscinn import PSCINN
from keras_pansharp.models.sfdi import SFDI

#: The CNN baselines of the PanCollection standard set, by registry name.
BASELINES: dict[str, type] = {
    "pnn": PNN,
    "pannet": PanNet,
    "dicnn": DiCNN,
    "msdcnn": MSDCNN,
    "fusionnet": FusionNet,
}

#: The other models of PanTiny's comparison (flow, invertible and
#: spatial-frequency networks), by registry name.
PAPER_MODELS: dict[str, type] = {
    "panflow": PanFlow,
    "panmamba": PanMamba,
    "pscinn": PSCINN,
    "sfdi": SFDI,
}

#: Every name `get_model` accepts (`"pantiny_large"` is PanTiny's large preset,
#: `"pantiny_multisensor"` the pretrained 4-band PanTiny).
MODEL_NAMES: tuple[str, ...] = (
    "pantiny",
    "pantiny_large",
    "pantiny_multisensor",
    *BASELINES,
    *PAPER_MODELS,
)


def _normalise(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(
            f"Model name must be a string, one of {list(MODEL_NAMES)}; got {name!r}."
        )
    return name.strip().lower().replace("-", "_")


def get_model_class(name: str) -> type:
    """Return the model class registered under `name`.

    Args:
        name: case-insensitive model name, one of `MODEL_NAMES`
            (`"pantiny"`, `"pantiny_large"`, `"pnn"`, `"pannet"`, `"dicnn"`,
            `"msdcnn"`, `"fusionnet"`, `"panflow"`, `"panmamba"`, `"pscinn"`, `"sfdi"`).

    Returns:
        The `keras.Model` subclass (`PanTiny` for both PanTiny names).

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    key = _normalise(name)
    if key in BASELINES:
        return BASELINES[key]
    if key in PAPER_MODELS:
        return PAPER_MODELS[key]
    if key in ("pantiny", "pantiny_large", "pantiny_multisensor"):
        from keras_pansharp.models.pantiny import PanTiny  # lazy: separate module

        return PanTiny
    raise ValueError(f"Unknown model {name!r}; expected one of {list(MODEL_NAMES)}.")


def get_model(name: str, bands: int = 4, **kwargs) -> keras.Model:
    """Build a freshly initialised model by name.

    Args:
        name: case-insensitive model name, one of `MODEL_NAMES`.
            `"pantiny_large"` builds `PanTiny.from_preset("pantiny_large")`,
            `"pantiny_multisensor"` loads the pretrained 4-band PanTiny.
        bands: number of MS bands `C` (4 or 8 for the usual sensors).
        **kwargs: further constructor arguments of that model (for example
            `upsampler="bicubic"` or `filters=64`).

    Returns:
        The model; its input is the dict `{"ms", "pan", optional "lms"}`
        shared by all models of the package.

    Raises:
        ValueError: for an unknown name.

    Example:
    >>> get_model("fusionnet", bands=8).count_params()
    78632
    """
    key = _normalise(name)
    cls = get_model_class(key)
    if key == "pantiny_large":
        return cls.from_preset("pantiny_large", bands=bands, **kwargs)
    if key == "pantiny_multisensor":
        if bands != 4:
            raise ValueError(
                f"'pantiny_multisensor' is a pretrained 4-band model; got bands={bands}."
            )
        return cls.from_preset("pantiny_multisensor", **kwargs)
    return cls(bands=bands, **kwargs)
