"""Small helpers shared by the CNN baselines (PNN, PanNet, DiCNN, MSDCNN, FusionNet)."""

from __future__ import annotations

import keras


def torch_default_init() -> keras.initializers.Initializer:
    """PyTorch's default `Conv2d` weight initialisation, as a Keras initializer.

    `kaiming_uniform_(a=sqrt(5))` draws from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`,
    which is `VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")`.
    PanCollection's PNN, MSDCNN and FusionNet keep this default.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def reference_variance_scaling_init() -> keras.initializers.Initializer:
    """PanCollection's `variance_scaling_initializer` (PanNet, DiCNN).

    A truncated normal with variance `~2 / fan_in` (TensorFlow's
    `variance_scaling_initializer(factor=2.0, mode="FAN_IN")`), which is
    Keras' `he_normal`.
    """
    return keras.initializers.HeNormal()


def conv(
    filters: int,
    kernel_size: int,
    name: str,
    activation: str | None = None,
    padding: str = "same",
    init: str = "torch",
) -> keras.layers.Conv2D:
    """A biased 2-D convolution with the reference initialisation."""
    kernel_init = (
        torch_default_init() if init == "torch" else reference_variance_scaling_init()
    )
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding=padding,
        activation=activation,
        use_bias=True,
        kernel_initializer=kernel_init,
        name=name,
    )


def check_bands(cls_name: str, bands) -> int:
    """Validate a band-count constructor argument."""
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise ValueError(
            f"{cls_name}: `bands` must be a positive integer, got {bands!r}"
        )
    return bands
