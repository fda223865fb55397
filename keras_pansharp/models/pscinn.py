"""PSCINN (Wang et al., Information Fusion 2024), a conditional invertible network.

"Pan-sharpening via conditional invertible neural network", J. Wang, T. Lu,
X. Huang, R. Zhang, X. Feng, Information Fusion 101, 101980 (2024).

Followed: the authors' repository `jiaming-wang/PSCINN`, file `psinn.py`
(classes `Net`, `InvBlockExp`, `FPNBlock`, `HaarDownsampling`), identical to
`model/PSCINN.py` of the PanTiny comparison (Zirconium233/PanTiny).

The network (`Net`): three conditional coupling blocks (`InvBlockExp`,
sub-networks `FPNBlock`: 5-convolution dense blocks of growth 32, log-scale
bounded to +-1 by `clamp * (2 sigmoid - 1)`) at PAN size, a Haar transform
(`C` -> `4C` channels, half size), three blocks, a Haar transform
(`4C` -> `16C`, quarter = MS size) and three blocks. The blocks of each
level are conditioned on the PAN at that level's size (the PAN, and its
PyTorch-bicubic 1/2 and 1/4 downsamplings). The forward direction maps the
HR MS to `16C` channels at MS size.

Choices where the reference is specific to its setting or ambiguous:

- **Bands.** The reference hard-codes 4 bands (`current_channel = 4`,
  conditioning picked by channel counts 4 / 16 / 64); here `C` bands, the
  blocks working on `C`, `4C` and `16C` channels split `n // 2` /
  `n - n // 2`.
- **Inverse-pass input.** `Net.forward(..., rev=True)` starts the inverse
  from the 4-band LR MS, which cannot enter the 64-channel last block, so
  the released code does not define pan-sharpening inference. This
  follows the IRN-style design the blocks come from: the first `C` of the
  `16C` output channels are the Haar low-low band (4x4 block means), played
  by the LR MS, and the other `15C` are the latent, set to 0 (its mean) for
  a deterministic result (`LatentPad`). The fused image is the inverse pass
  of `concat(MS, 0)`; `encode` gives the forward direction.
- **No LMS.** The network never uses an upsampled MS: a given `"lms"` is
  ignored (so the constructor has no `upsampler`).
- **Training.** `fit()` trains the inverse pass with any pixel loss (the
  PanTiny comparison trains every method with L1). The forward direction is
  available as `PSCINN.encode(inputs, target)` for the invertible
  consistency terms of the paper (e.g. `encode(...)[..., :C]` close to the
  MS) in a custom loop.
- The frozen Haar filters are weights (`requires_grad=False` parameters in
  the reference), so `count_params()` equals the reference's
  `sum(p.numel() for p in model.parameters())`.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_pansharp.layers.bicubic_downsample import BicubicDownsample
from keras_pansharp.layers.invertible import (
    ConditionalInvBlockExp,
    HaarDownsampling,
    LatentPad,
)
from keras_pansharp.models.base import PansharpModel, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands

LEVELS = 3  # PAN size, 1/2, 1/4 (two Haar transforms: the x4 ratio)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PSCINN(PansharpModel):
    """PSCINN of Wang, Lu, Huang, Zhang and Feng (2024).

    "Pan-sharpening via conditional invertible neural network", Information
    Fusion 2024. A multiscale invertible network between the HR MS
    `(4h, 4w, C)` and a `(h, w, 16C)` code: `blocks_per_level` conditional
    affine coupling blocks (`ConditionalInvBlockExp`, dense sub-networks of
    growth 32) at each of three scales, separated by two invertible Haar
    transforms (`HaarDownsampling`), every block conditioned on the PAN at
    its scale (PyTorch-exact bicubic downsampling, `BicubicDownsample`). The
    fused image is the inverse pass of `concat(MS, zeros(15C))` (see the
    module docstring).

    Parameters: 3,321,248 for 4 bands (3,320,928 trainable and 320 frozen
    Haar filter values, as the reference), 4,841,632 for 8 bands.

    Args:
        bands: number of MS bands `C` (default 4, as the reference).
        blocks_per_level: coupling blocks at each scale (3).
        growth: inner channels of the dense sub-networks (32).
        clamp: bound of the coupling log-scales (1.0).
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms" (ignored)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> PSCINN(bands=4).count_params()
    3321248
    """

    def __init__(
        self,
        bands: int = 4,
        blocks_per_level: int = 3,
        growth: int = 32,
        clamp: float = 1.0,
        **kwargs,
    ):
        check_bands(type(self).__name__, bands)
        if (
            isinstance(blocks_per_level, bool)
            or not isinstance(blocks_per_level, int)
            or blocks_per_level < 1
        ):
            raise ValueError(
                "PSCINN: `blocks_per_level` must be an integer >= 1, got "
                f"{blocks_per_level!r}"
            )
        inputs = pansharp_inputs(bands)
        pan = inputs["pan"]
        conditions = [
            pan,
            BicubicDownsample(2, name="pan_down2")(pan),
            BicubicDownsample(4, name="pan_down4")(pan),
        ]
        blocks = [
            [
                ConditionalInvBlockExp(growth, clamp, name=f"inv{level}_{i}")
                for i in range(blocks_per_level)
            ]
            for level in range(LEVELS)
        ]
        haars = []
        for level in range(LEVELS - 1):
            haar = HaarDownsampling(name=f"haar{level}")
            haar.build((None, None, None, bands * 4**level))
            haars.append(haar)
        x = LatentPad(bands * 4 ** (LEVELS - 1), name="latent")(inputs["ms"])
        for level in reversed(range(LEVELS)):
            for block in reversed(blocks[level]):
                x = block(x, conditions[level], reverse=True)
            if level:
                x = haars[level - 1](x, reverse=True)
        kwargs.setdefault("name", "pscinn")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.bands = bands
        self.blocks_per_level = blocks_per_level
        self.growth = growth
        self.clamp = clamp

    def encode(self, inputs, target):
        """Forward pass: HR MS `target` `(B, 4h, 4w, C)` -> `(B, h, w, 16C)`.

        The first `C` channels are the low-low Haar band (the part the
        inverse pass takes from the MS), the other `15C` the latent.
        """
        inputs = self._prepare_inputs(inputs)
        pan = ops.convert_to_tensor(inputs["pan"])
        conditions = [
            pan,
            self.get_layer("pan_down2")(pan),
            self.get_layer("pan_down4")(pan),
        ]
        x = ops.convert_to_tensor(target)
        for level in range(LEVELS):
            if level:
                x = self.get_layer(f"haar{level - 1}")(x)
            for i in range(self.blocks_per_level):
                x = self.get_layer(f"inv{level}_{i}")(x, conditions[level])
        return x

    def get_config(self):
        return {
            "bands": self.bands,
            "blocks_per_level": self.blocks_per_level,
            "growth": self.growth,
            "clamp": self.clamp,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
