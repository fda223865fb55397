"""What tiled inference reads from a model's layers.

The layers of a model (nested included), those with image-wide statistics
(PanTiny's `ChannelAttention`), an upper bound of the receptive-field radius
(the halo of the exact scheme), and whether the model takes the toolbox's
`interp23tap` upsampled MS as its optional `lms` input.
"""

from __future__ import annotations

import keras

from keras_pansharp.layers.transformer import ChannelAttention

__all__ = [
    "all_layers",
    "global_statistics_layers",
    "receptive_radius",
    "uses_interp23tap_lms",
]


def all_layers(model) -> list:
    """Every layer inside `model`, nested layers included (not `model`).

    Returns:
        A list of layers; empty for an object that is not a Keras layer
        (e.g. a wrapper of a served SavedModel).
    """
    if not isinstance(model, keras.layers.Layer):
        return []
    return list(model._flatten_layers(include_self=False, recursive=True))


def global_statistics_layers(model) -> list:
    """The layers of `model` whose output depends on image-wide statistics.

    Returns:
        The `ChannelAttention` layers (PanTiny: one per transformer block).
    """
    return [layer for layer in all_layers(model) if isinstance(layer, ChannelAttention)]


def receptive_radius(model) -> int:
    """Upper bound of a model's receptive-field radius in PAN pixels.

    Sums `dilation * (kernel - 1) // 2` over every stride-1 convolution of
    the model (`Conv2D`, `DepthwiseConv2D`, `SeparableConv2D`, nested layers
    included), excluding the MS upsampler (fed a precomputed `lms`). Exact
    for a chain of convolutions (PanTiny: 17), an upper bound with parallel
    branches. Layers convolving with `keras.ops` directly are not seen: pass
    `halo=` to `predict_scene` for such models.

    Raises:
        ValueError: a strided or transposed convolution (not supported).
    """
    from keras_pansharp.models.base import UpsampledMS

    skip = set()
    for layer in all_layers(model):
        if isinstance(layer, UpsampledMS):
            skip.update(id(sub) for sub in all_layers(layer))
    total = 0
    for layer in all_layers(model):
        if id(layer) in skip:
            continue
        if isinstance(layer, keras.layers.Conv2DTranspose) or (
            isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
            and any(s != 1 for s in layer.strides)
        ):
            raise ValueError(
                f"predict_scene: layer {layer.name!r} is a strided or transposed "
                "convolution; give halo= explicitly"
            )
        if isinstance(
            layer,
            keras.layers.Conv2D
            | keras.layers.DepthwiseConv2D
            | keras.layers.SeparableConv2D,
        ):
            total += max(
                d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation_rate)
            )
    return total


def uses_interp23tap_lms(model) -> bool:
    """Whether `model` takes the toolbox's `interp23tap` MS as its `lms`
    input (then tiled inference computes it exactly per tile)."""
    if hasattr(model, "accepts_interp23tap_lms"):
        return bool(model.accepts_interp23tap_lms)
    names = set()
    try:
        inp = model.input
        names = set(inp) if isinstance(inp, dict) else set()
    except (AttributeError, ValueError):
        pass
    if "lms" not in names:
        return False
    try:
        upsampler = model.get_config().get("upsampler", "interp23tap")
    except Exception:  # noqa: BLE001 - config of arbitrary models
        upsampler = "interp23tap"
    return upsampler == "interp23tap"
