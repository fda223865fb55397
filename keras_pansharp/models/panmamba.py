"""Pan-Mamba (He et al., 2024), following the authors' PyTorch code.

Reference: X. He, K. Cao, J. Zhang, K. Yan, Y. Wang, R. Li, C. Xie, D. Hong
and M. Zhou, "Pan-Mamba: Effective pan-sharpening with state space model",
Information Fusion 115 (2025), arXiv:2402.12192. Code followed:
github.com/alexhe101/Pan-Mamba,

- `pan-sharpening/model/panmamba_baseline_finalversion.py` (the network
  `Net` that `option.yml` trains: `HinResBlock`, `PatchEmbed`,
  `SingleMambaBlock`, `TokenSwapMamba`, `CrossMamba`),
- `pan-sharpening/model/refine.py` (`Refine`, `ChannelAttention`),
- `Mamba-block/mamba_simple.py` (the Mamba mixer with the `bimamba_type="v3"`
  cross branch, on top of hustvl/Vim's `mamba-1p1p1`
  `selective_scan_interface.py`).

The PanTiny paper's benchmark (github.com/Zirconium233/PanTiny,
`configs/special_for_mamba.yml`) runs this same `Net`; its `base_filter: 64`
has no effect there because `Net.__init__` overwrites it with 32.

Choices where the reference is ambiguous or tied to one setting:

- Input upsampling: the reference forward ignores its `lms` argument and
  upsamples `ms` with `F.interpolate(ms, scale_factor=4)` (nearest
  neighbour, although named `ms_bic`), used both as the MS-encoder input
  and as the residual base. Here, as in every model of the package, that
  image is the `lms` of the input contract (`UpsampledMS`: the given
  `"lms"`, else `interp23tap` or bicubic of `"ms"`). No weight depends on it.
- Band count: the reference hard-codes 4 bands (`Conv2d(4, 32)` in the MS
  encoder, `Refine(32, 4)`); both follow `bands` here.
- `CrossMamba` reshapes its tokens with a hard-coded `view(B, C, 128 * 8,
  128 * 8)` (`mamba_module.py`: 128 x 128, the training patch size); here
  the image keeps its own (dynamic) size.
- Kept as in the reference, although they look accidental: `CrossMamba`
  applies its two LayerNorms twice (`norm1(norm1(ms_resi))`,
  `norm2(norm2(pan))`); the residual streams of `SingleMambaBlock`,
  `TokenSwapMamba` and `CrossMamba` are dropped after the last block of each
  stage (the next stage starts from the last Mamba output); the same
  `ms_to_token` / `pan_to_token` projections are applied before the
  feature-extraction stage and again before the deep fusion (shared
  weights); the unused `HinResBlock.identity` and `PatchEmbed.norm` weights
  exist (non-trainable here, never read), so the parameter count is the
  reference's.
- The Mamba mixers scan the image row by row (`b c h w -> b (h w) c`), one
  direction, as the reference. The selective scan is written in `keras.ops`
  (`keras_pansharp.layers.selective_scan`: a sequential `keras.ops.scan` on
  CPUs, a parallel associative scan on GPUs/TPUs) instead of the CUDA
  kernel; same values.
- Initialisation is PyTorch's default for every convolution (weights and
  biases `U(+-1/sqrt(fan_in))`) and Mamba's own for the mixers.

Memory: each of the 30 Mamba scans of a forward pass works on
`(batch, H*W, 2 * filters, d_state)` states at PAN resolution. The
sequential scan (CPU) runs above 512 tokens chunk by chunk with
rematerialisation; the associative one (GPU/TPU) under JAX above 1024
tokens (32 x 32 PAN pixels), and under TensorFlow above 4096 (64 x 64)
(`keras_pansharp.layers.selective_scan`), so those states exist for one
chunk at a time; what remains are the mixers' `(batch, H*W,
2 * filters)` activations, about 0.17 MB per PAN pixel when training under
JAX with the associative scan (XLA's estimate: 2.7 GB for one 128 x 128
patch, 43 GB for a batch of 16; without chunking 25 GB and 402 GB). On 2 CPU
cores (sequential scan) a training step of 8 x 64^2 takes about 21 s and
8.5 GB under TensorFlow, one 512^2 prediction 80-90 s (docs/performance.md).
Train with small batches on CPU, and tile large scenes
(`keras_pansharp.predict_scene`).
"""

from __future__ import annotations

import math

import keras

from keras_pansharp.layers.mamba import Mamba
from keras_pansharp.layers.panmamba_blocks import (
    HalfChannelSwap,
    HinResBlock,
    PatchEmbed,
)
from keras_pansharp.models.base import PansharpModel, UpsampledMS, pansharp_inputs
from keras_pansharp.models.baseline_utils import check_bands


def _bias_init(fan_in: int) -> keras.initializers.Initializer:
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _conv(filters, kernel_size, in_channels, name, activation=None):
    """`nn.Conv2d(in, filters, k, 1, k // 2)` with PyTorch's default init."""
    fan_in = kernel_size * kernel_size * in_channels
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        activation=activation,
        use_bias=True,
        kernel_initializer=_bias_init(fan_in),
        bias_initializer=_bias_init(fan_in),
        name=name,
    )


def _layer_norm(name):
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)


def _check_count(cls_name, name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"{cls_name}: `{name}` must be an integer >= {minimum}, got {value!r}"
        )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class PanMamba(PansharpModel):
    """Pan-Mamba of He et al. (2024), the authors' `panmamba_baseline_finalversion`.

    "Pan-Mamba: Effective pan-sharpening with state space model". All
    features have `filters` (32) channels and PAN resolution; every Mamba
    mixer scans the `H * W` pixels of the feature map as a sequence.

    1. Encoders: LMS and PAN each go through a 3x3 convolution and
       `encoder_blocks` (3) `HinResBlock`s, then a 1x1 token projection
       (`PatchEmbed`).
    2. Feature extraction: per modality `single_blocks` (8)
       `SingleMambaBlock`s (residual stream `r += x; x = Mamba(LN(r))`).
    3. Channel-swapping Mamba (`swap_blocks`, 2): both residual streams are
       normalised, the first halves of their channels exchanged, and each
       passes its own Mamba.
    4. Shallow fusion: `ms += conv3x3([ms, pan])`, then
       `pan += conv3x3([pan, ms])`, and the token projections again (same
       weights as in 1).
    5. Cross-modal Mamba (`cross_blocks`, 5): `g = CrossMamba(LN(LN(r)),
       LN(LN(pan)))` with the MS residual stream `r`, whose second branch
       scans the PAN tokens, then `x = dwconv3x3(g) + g`.
    6. `Refine` (3x3 convolution, channel attention with reduction 4, 3x3
       convolution to `bands`), added to LMS.

    See the module docstring for the reference files and the choices made.

    Parameters: 478,444 for 4 bands, 480,752 for 8 bands (the reference's
    `sum(p.numel())`, including 6,400 weights it registers but never uses,
    kept here as non-trainable weights).

    Args:
        bands: number of MS bands `C` (4 in the reference).
        filters: feature channels (32); even, at least 4.
        encoder_blocks: `HinResBlock`s per encoder (3).
        single_blocks: `SingleMambaBlock`s per modality (8).
        swap_blocks: `TokenSwapMamba` blocks (2).
        cross_blocks: `CrossMamba` blocks (5).
        d_state: SSM state size of the Mamba mixers (16).
        d_conv: causal convolution size of the Mamba mixers (4).
        expand: Mamba inner expansion (2).
        upsampler: how `"ms"` is upsampled to LMS when no `"lms"` is given:
            `"interp23tap"` (default) or `"bicubic"`.
        **kwargs: `keras.Model` arguments (`name`, `trainable`, ...).

    Call args:
        inputs: dict `{"ms": (B, h, w, C), "pan": (B, 4h, 4w, 1),
            optional "lms": (B, 4h, 4w, C)}`, float, normalised to [0, 1].

    Returns:
        `(B, 4h, 4w, C)` fused image.

    Example:
    >>> PanMamba(bands=4).count_params()
    478444
    """

    def __init__(
        self,
        bands: int = 4,
        filters: int = 32,
        encoder_blocks: int = 3,
        single_blocks: int = 8,
        swap_blocks: int = 2,
        cross_blocks: int = 5,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        upsampler: str = "interp23tap",
        **kwargs,
    ):
        cls_name = type(self).__name__
        check_bands(cls_name, bands)
        _check_count(cls_name, "filters", filters, 4)
        if filters % 2:
            raise ValueError(f"{cls_name}: `filters` must be even, got {filters}")
        for name, value in (
            ("encoder_blocks", encoder_blocks),
            ("single_blocks", single_blocks),
            ("swap_blocks", swap_blocks),
            ("cross_blocks", cross_blocks),
        ):
            _check_count(cls_name, name, value)
        _check_count(cls_name, "d_state", d_state, 1)
        _check_count(cls_name, "d_conv", d_conv, 1)
        _check_count(cls_name, "expand", expand, 1)
        f = filters
        mamba_args = {"d_state": d_state, "d_conv": d_conv, "expand": expand}

        inputs = pansharp_inputs(bands)
        lms = UpsampledMS(upsampler, name="upsampled_ms")(inputs["ms"], inputs["lms"])

        # 1. Encoders and token projections.
        ms = _conv(f, 3, bands, "ms_encoder_conv")(lms)
        pan = _conv(f, 3, 1, "pan_encoder_conv")(inputs["pan"])
        for i in range(encoder_blocks):
            ms = HinResBlock(name=f"ms_encoder_hin{i + 1}")(ms)
            pan = HinResBlock(name=f"pan_encoder_hin{i + 1}")(pan)
        ms_to_token = PatchEmbed(f, name="ms_to_token")
        pan_to_token = PatchEmbed(f, name="pan_to_token")
        ms, pan = ms_to_token(ms), pan_to_token(pan)

        # 2. Feature extraction (SingleMambaBlock x single_blocks, per modality).
        def single_stage(x, prefix):
            residual = None
            for i in range(single_blocks):
                p = f"{prefix}{i + 1}"
                residual = (
                    x
                    if residual is None
                    else keras.layers.Add(name=f"{p}_add")([x, residual])
                )
                x = Mamba(**mamba_args, name=f"{p}_mamba")(
                    _layer_norm(f"{p}_norm")(residual)
                )
            return x, residual

        ms, ms_res = single_stage(ms, "ms_single")
        pan, pan_res = single_stage(pan, "pan_single")

        # 3. Channel-swapping Mamba (TokenSwapMamba x swap_blocks).
        for i in range(swap_blocks):
            p = f"swap{i + 1}"
            ms_res = (
                ms
                if ms_res is None
                else keras.layers.Add(name=f"{p}_ms_add")([ms, ms_res])
            )
            pan_res = (
                pan
                if pan_res is None
                else keras.layers.Add(name=f"{p}_pan_add")([pan, pan_res])
            )
            ms_n = _layer_norm(f"{p}_ms_norm")(ms_res)
            pan_n = _layer_norm(f"{p}_pan_norm")(pan_res)
            exchange = HalfChannelSwap(name=f"{p}_exchange")
            ms_swap, pan_swap = exchange(ms_n, pan_n), exchange(pan_n, ms_n)
            ms = Mamba(**mamba_args, name=f"{p}_ms_mamba")(ms_swap)
            pan = Mamba(**mamba_args, name=f"{p}_pan_mamba")(pan_swap)

        # 4. Shallow fusion, then the (shared) token projections again.
        fused = _conv(f, 3, 2 * f, "shallow_fusion1")(
            keras.layers.Concatenate(name="shallow_concat1")([ms, pan])
        )
        ms = keras.layers.Add(name="shallow_add1")([fused, ms])
        fused = _conv(f, 3, 2 * f, "shallow_fusion2")(
            keras.layers.Concatenate(name="shallow_concat2")([pan, ms])
        )
        pan = keras.layers.Add(name="shallow_add2")([fused, pan])
        ms, pan = ms_to_token(ms), pan_to_token(pan)

        # 5. Cross-modal Mamba (CrossMamba x cross_blocks); PAN is not updated.
        ms_res = None
        for i in range(cross_blocks):
            p = f"cross{i + 1}"
            ms_res = (
                ms
                if ms_res is None
                else keras.layers.Add(name=f"{p}_add")([ms, ms_res])
            )
            norm1, norm2 = _layer_norm(f"{p}_norm1"), _layer_norm(f"{p}_norm2")
            g = Mamba(**mamba_args, cross=True, name=f"{p}_mamba")(
                norm1(norm1(ms_res)), norm2(norm2(pan))
            )
            local = keras.layers.DepthwiseConv2D(
                3,
                padding="same",
                use_bias=True,
                depthwise_initializer=_bias_init(9),
                bias_initializer=_bias_init(9),
                name=f"{p}_dwconv",
            )(g)
            ms = keras.layers.Add(name=f"{p}_dwconv_add")([local, g])

        # 6. Refine (conv, channel attention, conv) + LMS.
        x = _conv(f, 3, f, "refine_conv_in")(ms)
        res = _conv(f, 3, f, "refine_ca_conv1", activation="relu")(x)
        res = _conv(f, 3, f, "refine_ca_conv2")(res)
        w = keras.layers.GlobalAveragePooling2D(keepdims=True, name="refine_ca_pool")(
            res
        )
        w = _conv(f // 4, 1, f, "refine_ca_du1", activation="relu")(w)
        w = _conv(f, 1, f // 4, "refine_ca_du2", activation="sigmoid")(w)
        x = keras.layers.Add(name="refine_ca_add")(
            [keras.layers.Multiply(name="refine_ca_scale")([w, res]), x]
        )
        x = _conv(bands, 3, f, "refine_conv_last")(x)
        outputs = keras.layers.Add(name="add_lms")([x, lms])

        kwargs.setdefault("name", "panmamba")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.bands = bands
        self.filters = filters
        self.encoder_blocks = encoder_blocks
        self.single_blocks = single_blocks
        self.swap_blocks = swap_blocks
        self.cross_blocks = cross_blocks
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.upsampler = upsampler

    def get_config(self):
        return {
            "bands": self.bands,
            "filters": self.filters,
            "encoder_blocks": self.encoder_blocks,
            "single_blocks": self.single_blocks,
            "swap_blocks": self.swap_blocks,
            "cross_blocks": self.cross_blocks,
            "d_state": self.d_state,
            "d_conv": self.d_conv,
            "expand": self.expand,
            "upsampler": self.upsampler,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
