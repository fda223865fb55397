"""The Mamba mixer (Gu and Dao, 2023) as used by Pan-Mamba, in `keras.ops`.

Follows `Mamba` of `mamba_ssm/modules/mamba_simple.py` in the version that
Pan-Mamba ships (github.com/alexhe101/Pan-Mamba, `Mamba-block/
mamba_simple.py`, a copy of hustvl/Vim's with a `bimamba_type="v3"` cross
branch added), on its default (fused-kernel) path `mamba_inner_fn` /
`mamba_inner_fn_no_out_proj`:

    x, z = split(in_proj(h))                      (no bias)
    x    = silu(causal_depthwise_conv1d(x))       (kernel d_conv, bias)
    dt, B, C = split(x_proj(x))                   (no bias)
    dt   = dt_proj.kernel applied to dt           (bias added in the scan)
    y    = selective_scan(x, dt, -exp(A_log), B, C, D, z, dt_proj.bias)
    out  = out_proj(y)                            (no bias)

`cross=True` is the authors' `bimamba_type="v3"` (their cross-modal Mamba):
a second, independent branch (`in_proj_extra`, `conv1d_b`, `x_proj_b`,
`dt_proj_b`, `A_b_log`, `D_b`) scans the `extra` sequence (the PAN tokens)
and `out = out_proj(y + y_extra)`. (Vim's own `v2` flips the sequence
instead; `v3` does not.)

Weights keep the PyTorch names; the initialisation is the reference one:
PyTorch's default `Linear` / `Conv1d` init, `dt_proj.kernel ~
U(+-dt_rank**-0.5)`, `dt_proj.bias = softplus^-1(dt)` with `dt` log-uniform
in `[dt_min, dt_max]` (floored at `dt_init_floor`), `A_log = log(1..d_state)`
(S4D-real) and `D = 1`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_pansharp.layers.selective_scan import selective_scan


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default weight and bias
    init of `Linear` / `Conv` (`kaiming_uniform_(a=sqrt(5))` for weights)."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class S4DRealInitializer(keras.initializers.Initializer):
    """`A_log[d, n] = log(n + 1)`: Mamba's S4D-real init of `(d_inner, d_state)`."""

    def __call__(self, shape, dtype=None):
        row = np.log(np.arange(1, shape[-1] + 1, dtype="float64"))
        value = np.broadcast_to(row, tuple(shape))
        return ops.convert_to_tensor(value, dtype=dtype or "float32")

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_pansharp")
class DtBiasInitializer(keras.initializers.Initializer):
    """Mamba's `dt_proj.bias`: `softplus^-1(dt)`, `dt` log-uniform in
    `[dt_min, dt_max]` and floored at `floor`."""

    def __init__(self, dt_min=0.001, dt_max=0.1, floor=1e-4, seed=None):
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.floor = floor
        self._uniform = keras.initializers.RandomUniform(0.0, 1.0, seed=seed)

    def __call__(self, shape, dtype=None):
        dtype = dtype or "float32"
        r = self._uniform(shape, dtype=dtype)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = ops.maximum(ops.exp(r * (hi - lo) + lo), self.floor)
        return dt + ops.log(-ops.expm1(-dt))  # inverse of softplus

    def get_config(self):
        return {
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "floor": self.floor,
            "seed": self._uniform.get_config()["seed"],
        }


@keras.saving.register_keras_serializable(package="keras_pansharp")
class Mamba(keras.layers.Layer):
    """Mamba mixer over a token sequence or an image scanned row by row.

    Pan-Mamba's `Mamba(dim, bimamba_type=None)` (`cross=False`) and
    `Mamba(dim, bimamba_type="v3")` (`cross=True`, the cross-modal mixer
    fed with a second sequence `extra`). With the defaults and
    `d_model = 32` it has 9,920 weights (`cross=False`) or 17,792
    (`cross=True`), as in the reference.

    Args:
        d_state: SSM state size `n` per channel (16).
        d_conv: kernel size of the causal depthwise convolution (4).
        expand: inner width `d_inner = expand * d_model` (2).
        dt_rank: rank of the step-size projection; `"auto"` is
            `ceil(d_model / 16)`.
        cross: add the authors' `bimamba_type="v3"` branch for `extra`.
        dt_min, dt_max, dt_init_floor, dt_scale: step-size initialisation
            (0.001, 0.1, 1e-4, 1.0 as in the reference).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        x: `(batch, L, d_model)` tokens, or a `(batch, H, W, d_model)` image,
            scanned in row-major order (`b c h w -> b (h w) c`) and returned
            as an image.
        extra: with `cross=True` only, the second input, the shape of `x`.

    Returns:
        Tensor of the shape of `x`.

    Example:
    >>> import numpy as np
    >>> x = np.random.rand(2, 10, 32).astype("float32")
    >>> layer = Mamba()
    >>> tuple(layer(x).shape), layer.count_params()
    ((2, 10, 32), 9920)
    """

    def __init__(
        self,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank="auto",
        cross: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("d_state", d_state), ("d_conv", d_conv)):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"Mamba: `{name}` must be a positive integer, got {value!r}"
                )
        if expand <= 0:
            raise ValueError(f"Mamba: `expand` must be positive, got {expand!r}")
        if dt_rank != "auto" and (int(dt_rank) != dt_rank or dt_rank < 1):
            raise ValueError(
                "Mamba: `dt_rank` must be 'auto' or a positive integer, "
                f"got {dt_rank!r}"
            )
        self.d_state = int(d_state)
        self.d_conv = int(d_conv)
        self.expand = expand
        self.dt_rank = dt_rank if dt_rank == "auto" else int(dt_rank)
        self.cross = bool(cross)
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.dt_init_floor = dt_init_floor
        self.dt_scale = dt_scale

    def _branch_weights(self, suffix: str, in_proj_name: str):
        d, n, r = self.d_inner, self.d_state, self._rank
        w = {}
        w["in_proj"] = self.add_weight(
            shape=(self.d_model, 2 * d),
            initializer=_torch_uniform(self.d_model),
            name=f"{in_proj_name}_kernel",
        )
        w["conv_kernel"] = self.add_weight(
            shape=(self.d_conv, d),
            initializer=_torch_uniform(self.d_conv),
            name=f"conv1d{suffix}_kernel",
        )
        w["conv_bias"] = self.add_weight(
            shape=(d,),
            initializer=_torch_uniform(self.d_conv),
            name=f"conv1d{suffix}_bias",
        )
        w["x_proj"] = self.add_weight(
            shape=(d, r + 2 * n),
            initializer=_torch_uniform(d),
            name=f"x_proj{suffix}_kernel",
        )
        std = self.dt_scale * r**-0.5
        w["dt_kernel"] = self.add_weight(
            shape=(r, d),
            initializer=keras.initializers.RandomUniform(-std, std),
            name=f"dt_proj{suffix}_kernel",
        )
        w["dt_bias"] = self.add_weight(
            shape=(d,),
            initializer=DtBiasInitializer(self.dt_min, self.dt_max, self.dt_init_floor),
            name=f"dt_proj{suffix}_bias",
        )
        w["A_log"] = self.add_weight(
            shape=(d, n), initializer=S4DRealInitializer(), name=f"A{suffix}_log"
        )
        w["D"] = self.add_weight(shape=(d,), initializer="ones", name=f"D{suffix}")
        return w

    def build(self, x_shape, extra_shape=None):
        if len(x_shape) not in (3, 4) or x_shape[-1] is None:
            raise ValueError(
                "Mamba expects (batch, L, d_model) or (batch, H, W, d_model) inputs "
                f"with known d_model; got {tuple(x_shape)}."
            )
        if self.cross and extra_shape is None:
            raise ValueError("Mamba(cross=True) needs the `extra` input.")
        if not self.cross and extra_shape is not None:
            raise ValueError("Mamba(cross=False) takes no `extra` input.")
        self.d_model = int(x_shape[-1])
        self.d_inner = int(self.expand * self.d_model)
        self._rank = (
            math.ceil(self.d_model / 16) if self.dt_rank == "auto" else self.dt_rank
        )
        self._main = self._branch_weights("", "in_proj")
        if self.cross:
            self._extra = self._branch_weights("_b", "in_proj_extra")
        self.out_proj = self.add_weight(
            shape=(self.d_inner, self.d_model),
            initializer=_torch_uniform(self.d_inner),
            name="out_proj_kernel",
        )
        self.built = True

    def _branch(self, w, h):
        d, n, r = self.d_inner, self.d_state, self._rank
        xz = ops.matmul(h, w["in_proj"])
        x, z = xz[..., :d], xz[..., d:]
        # Causal depthwise conv1d: left-pad d_conv - 1 zeros, valid conv.
        x = ops.pad(x, [[0, 0], [self.d_conv - 1, 0], [0, 0]])
        kernel = ops.expand_dims(w["conv_kernel"], -1)  # (d_conv, d, 1)
        x = ops.silu(ops.depthwise_conv(x, kernel, padding="valid") + w["conv_bias"])
        x_dbl = ops.matmul(x, w["x_proj"])
        dt = ops.matmul(x_dbl[..., :r], w["dt_kernel"])
        b, c = x_dbl[..., r : r + n], x_dbl[..., r + n :]
        return selective_scan(
            x,
            dt,
            -ops.exp(w["A_log"]),
            b,
            c,
            D=w["D"],
            z=z,
            delta_bias=w["dt_bias"],
            delta_softplus=True,
        )

    def call(self, x, extra=None):
        image = len(x.shape) == 4
        if image:
            shape = ops.shape(x)
            x = ops.reshape(x, (shape[0], -1, self.d_model))
            if extra is not None:
                extra = ops.reshape(extra, (shape[0], -1, self.d_model))
        y = self._branch(self._main, x)
        if self.cross:
            y = y + self._branch(self._extra, extra)
        out = ops.matmul(y, self.out_proj)
        if image:
            out = ops.reshape(out, shape)
        return out

    def compute_output_shape(self, x_shape, extra_shape=None):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_state": self.d_state,
                "d_conv": self.d_conv,
                "expand": self.expand,
                "dt_rank": self.dt_rank,
                "cross": self.cross,
                "dt_min": self.dt_min,
                "dt_max": self.dt_max,
                "dt_init_floor": self.dt_init_floor,
                "dt_scale": self.dt_scale,
            }
        )
        return config
