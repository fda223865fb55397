"""Building blocks of SFDI (SFIIN, Zhou et al., ECCV 2022).

Followed: the authors' code, `manman1995/Awaresome-pansharpening`,
`model/SFITNET.py` (`UNetConvBlock`, `DenseBlock`, `InvBlock`, `Freprocess`,
`SpaFre`, `stdv_channels`), its `model/refine.py`, and the LU-decomposed
`InvertibleConv1x1` of the same code base (`model/modules.py`, identical in
`alexhe101/Pan-Mamba`, `pan-sharpening/model/modules.py`). Written anew for
Keras 3 (channels last, `keras.ops` only).

Choices where the reference leaves room:

- `InvertibleConv1x1`: the reference stores a random permutation `P` and
  the signs of `diag(U)` as non-trainable buffers and trains `L`, `U`,
  `log|diag U|`. Here `P = I` and the signs are `+1`: the initial matrix is a
  random orthogonal `Q` multiplied by the permutation and sign matrices of
  its own LU factorisation, which is again a uniformly random orthogonal
  matrix whose LU factors need no pivoting and have a positive diagonal. The
  layer thus has exactly the reference's trainable parameters (`2 n^2 + n`)
  and no buffers; it is one possible draw of the reference's initialisation.
- Amplitude and phase use `|z|` and `atan2` with zero gradients at `z = 0`
  (PyTorch's convention) instead of NaN.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_pansharp.layers.frequency import (
    FourierAmplitudePhase,
    InverseFourierAmplitudePhase,
)


def torch_default_init() -> keras.initializers.Initializer:
    # PyTorch's default Conv2d weight initialisation, U(+-1 / sqrt(fan_in)).
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def _conv(filters, kernel_size, name, init=None, activation=None):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=True,
        activation=activation,
        kernel_initializer=init or torch_default_init(),
        name=name,
    )


def _xavier_01():
    # SFITNET's `initialize_weights_xavier(..., 0.1)`: Xavier normal times 0.1
    # (variance 0.01 * 2 / (fan_in + fan_out)), zero biases.
    return keras.initializers.VarianceScaling(
        scale=0.01, mode="fan_avg", distribution="untruncated_normal"
    )


def _check_4d(layer, shape):
    if len(shape) != 4:
        raise ValueError(
            f"{type(layer).__name__} expects 4-D (B, H, W, C) inputs, got {shape}"
        )


@keras.saving.register_keras_serializable(package="keras_pansharp")
class InvertibleConv1x1(keras.layers.Layer):
    """Glow's invertible 1x1 convolution, LU-decomposed (no bias).

    The `n x n` weight is `W = L U` with `L = tril(l, -1) + I` and
    `U = triu(u, 1) + diag(exp(log_s))`; `l`, `u` (full `n x n` arrays whose
    masked entries are unused, as in the reference) and `log_s` are trained.
    The output channel `o` is `sum_i W[o, i] x_i`.

    Args:
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, n)`.

    Returns:
        `(B, H, W, n)`.

    Example:
    >>> layer = InvertibleConv1x1()
    >>> y = layer(np.random.rand(1, 4, 4, 6).astype("float32"))
    >>> layer.count_params()
    78
    """

    def build(self, input_shape):
        _check_4d(self, input_shape)
        n = int(input_shape[-1])
        q = np.linalg.qr(np.random.standard_normal((n, n)))[0]
        p, lower, upper = _lu(q)
        sign = np.sign(np.diag(upper))
        upper = upper * sign[None, :]  # = L^-1 P^T Q D, positive diagonal
        self.l = self.add_weight(shape=(n, n), initializer="zeros", name="l")
        self.u = self.add_weight(shape=(n, n), initializer="zeros", name="u")
        self.log_s = self.add_weight(shape=(n,), initializer="zeros", name="log_s")
        self.l.assign(lower.astype("float32"))
        self.u.assign(np.triu(upper, 1).astype("float32"))
        self.log_s.assign(np.log(np.abs(np.diag(upper))).astype("float32"))
        self._n = n
        self.built = True

    def weight_matrix(self):
        """The current `(n, n)` matrix `W` (output channel x input channel)."""
        n = self._n
        eye = ops.eye(n, dtype=self.l.dtype)
        lower_mask = ops.convert_to_tensor(np.tril(np.ones((n, n)), -1), self.l.dtype)
        lower = self.l * lower_mask + eye
        upper = self.u * ops.transpose(lower_mask) + eye * ops.exp(self.log_s)
        return ops.matmul(lower, upper)

    def call(self, inputs):
        w = ops.cast(self.weight_matrix(), inputs.dtype)
        return ops.einsum("bhwi,oi->bhwo", inputs, w)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def _lu(a):
    """LU with partial pivoting, `a = p @ lower @ upper` (SciPy's convention)."""
    n = a.shape[0]
    upper = a.astype(np.float64).copy()
    lower = np.eye(n)
    perm = np.arange(n)
    for k in range(n - 1):
        piv = k + int(np.argmax(np.abs(upper[k:, k])))
        if piv != k:
            upper[[k, piv]] = upper[[piv, k]]
            lower[[k, piv], :k] = lower[[piv, k], :k]
            perm[[k, piv]] = perm[[piv, k]]
        factors = upper[k + 1 :, k] / upper[k, k]
        lower[k + 1 :, k] = factors
        upper[k + 1 :] -= factors[:, None] * upper[k]
    p = np.eye(n)[:, perm]
    return p, lower, np.triu(upper)


class _ResidualConvPair(keras.layers.Layer):
    """SFITNET's `UNetConvBlock`: two 3x3 convs with LeakyReLU(0.1) + 1x1 skip."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.identity = _conv(filters, 1, "identity", _xavier_01())
        self.conv_1 = _conv(filters, 3, "conv_1", _xavier_01())
        self.conv_2 = _conv(filters, 3, "conv_2", _xavier_01())

    def build(self, input_shape):
        out_shape = (*input_shape[:-1], self.filters)
        self.identity.build(input_shape)
        self.conv_1.build(input_shape)
        self.conv_2.build(out_shape)
        self.built = True

    def call(self, x):
        out = ops.leaky_relu(self.conv_1(x), 0.1)
        out = ops.leaky_relu(self.conv_2(out), 0.1)
        return out + self.identity(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class ResidualDenseSubnet(keras.layers.Layer):
    """SFITNET's `DenseBlock`: the coupling sub-network of `InvertibleCouplingBlock`.

    `x1 = lrelu(B1(x))`, `x2 = lrelu(B2(x1))`,
    `out = lrelu(conv3x3([x, x1, x2]))` with LeakyReLU slope 0.2, where `B1`,
    `B2` are residual pairs of 3x3 convolutions (`growth` channels, LeakyReLU
    0.1, 1x1 skip). All convolutions: Xavier normal x 0.1, zero biases.

    Args:
        filters: output channels.
        growth: channels of the two inner blocks (`gc = 8` in the reference).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, C_in)`.

    Returns:
        `(B, H, W, filters)`.

    Example:
    >>> tuple(ResidualDenseSubnet(4)(np.zeros((1, 8, 8, 4), "float32")).shape)
    (1, 8, 8, 4)
    """

    def __init__(self, filters: int, growth: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.growth = int(growth)
        self.block1 = _ResidualConvPair(self.growth, name="conv1")
        self.block2 = _ResidualConvPair(self.growth, name="conv2")
        self.conv3 = _conv(self.filters, 3, "conv3", _xavier_01())

    def build(self, input_shape):
        _check_4d(self, input_shape)
        inner = (*input_shape[:-1], self.growth)
        self.block1.build(input_shape)
        self.block2.build(inner)
        self.conv3.build((*input_shape[:-1], input_shape[-1] + 2 * self.growth))
        self.built = True

    def call(self, x):
        x1 = ops.leaky_relu(self.block1(x), 0.2)
        x2 = ops.leaky_relu(self.block2(x1), 0.2)
        return ops.leaky_relu(self.conv3(ops.concatenate([x, x1, x2], axis=-1)), 0.2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "growth": self.growth})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class InvertibleCouplingBlock(keras.layers.Layer):
    """SFITNET's `InvBlock`: invertible 1x1 conv then an affine coupling.

    `x -> W x` (`InvertibleConv1x1`), split into `x1` (first `split`
    channels) and `x2`; `y1 = x1 + F(x2)`,
    `s = clamp * (2 sigmoid(H(y1)) - 1)`, `y2 = x2 * exp(s) + G(y1)`;
    returns `[y1, y2]` concatenated. `F`, `G`, `H` are `ResidualDenseSubnet`s.

    Args:
        split: channels of `x1` (the reference's `channel_split_num`).
        clamp: bound of the log-scale `s` (0.8 in the reference).
        growth: `ResidualDenseSubnet` inner channels (8).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: `(B, H, W, n)` with `n > split`.

    Returns:
        `(B, H, W, n)`.

    Example:
    >>> tuple(InvertibleCouplingBlock(2)(np.zeros((1, 8, 8, 4), "float32")).shape)
    (1, 8, 8, 4)
    """

    def __init__(self, split: int, clamp: float = 0.8, growth: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.split = int(split)
        self.clamp = float(clamp)
        self.growth = int(growth)
        self.invconv = InvertibleConv1x1(name="invconv")

    def build(self, input_shape):
        _check_4d(self, input_shape)
        n = int(input_shape[-1])
        if not 0 < self.split < n:
            raise ValueError(
                f"InvertibleCouplingBlock: split must be in (0, {n}), got {self.split}"
            )
        s1, s2 = self.split, n - self.split
        self.invconv.build(input_shape)
        self.f = ResidualDenseSubnet(s1, self.growth, name="F")
        self.g = ResidualDenseSubnet(s2, self.growth, name="G")
        self.h = ResidualDenseSubnet(s2, self.growth, name="H")
        base = tuple(input_shape[:-1])
        self.f.build((*base, s2))
        self.g.build((*base, s1))
        self.h.build((*base, s1))
        self.built = True

    def call(self, x):
        x = self.invconv(x)
        x1, x2 = x[..., : self.split], x[..., self.split :]
        y1 = x1 + self.f(x2)
        s = self.clamp * (ops.sigmoid(self.h(y1)) * 2.0 - 1.0)
        y2 = x2 * ops.exp(s) + self.g(y1)
        return ops.concatenate([y1, y2], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"split": self.split, "clamp": self.clamp, "growth": self.growth})
        return config


@keras.saving.register_keras_serializable(package="keras_pansharp")
class AmplitudePhaseFusion(keras.layers.Layer):
    """SFITNET's `Freprocess`: fuse MS and PAN features in the Fourier domain.

    `a = rfft2(conv1x1(ms) + 1e-8)`, `b = rfft2(conv1x1(pan) + 1e-8)`
    (`norm="backward"`); the amplitudes `[|a|, |b|]` and the phases
    `[angle a, angle b]` are fused separately by 1x1 conv (`2c -> c`),
    LeakyReLU(0.1), 1x1 conv (`c -> c`); the result `A exp(i P)` goes back
    through `|irfft2(., s=(H, W))|` and a last 1x1 convolution.

    Args:
        channels: feature channels `c`.
        epsilon: the reference's `1e-8` guard constants.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        ms: `(B, H, W, c)` MS features.
        pan: `(B, H, W, c)` PAN features.

    Returns:
        `(B, H, W, c)`.

    Example:
    >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> tuple(AmplitudePhaseFusion(4)(x, x).shape)
    (1, 8, 8, 4)
    """

    def __init__(self, channels: int, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.epsilon = float(epsilon)
        c = self.channels
        self.pre1 = _conv(c, 1, "pre1")
        self.pre2 = _conv(c, 1, "pre2")
        self.amp_fuse1 = _conv(c, 1, "amp_fuse1")
        self.amp_fuse2 = _conv(c, 1, "amp_fuse2")
        self.pha_fuse1 = _conv(c, 1, "pha_fuse1")
        self.pha_fuse2 = _conv(c, 1, "pha_fuse2")
        self.post = _conv(c, 1, "post")
        self.forward_fft = FourierAmplitudePhase(self.epsilon, name="rfft2")
        self.inverse_fft = InverseFourierAmplitudePhase(self.epsilon, name="irfft2")

    def build(self, ms_shape, pan_shape=None):
        _check_4d(self, ms_shape)
        c = self.channels
        base = tuple(ms_shape[:-1])
        self.pre1.build(ms_shape)
        self.pre2.build(pan_shape if pan_shape is not None else ms_shape)
        for first, second in (
            (self.amp_fuse1, self.amp_fuse2),
            (self.pha_fuse1, self.pha_fuse2),
        ):
            first.build((*base, 2 * c))
            second.build((*base, c))
        self.post.build((*base, c))
        self.built = True

    def call(self, ms, pan):
        ms_f = self.pre1(ms)
        amp_m, pha_m = self.forward_fft(ms_f)
        amp_p, pha_p = self.forward_fft(self.pre2(pan))
        amp = ops.concatenate([amp_m, amp_p], axis=-1)
        amp = self.amp_fuse2(ops.leaky_relu(self.amp_fuse1(amp), 0.1))
        pha = ops.concatenate([pha_m, pha_p], axis=-1)
        pha = self.pha_fuse2(ops.leaky_relu(self.pha_fuse1(pha), 0.1))
        return self.post(self.inverse_fft(amp, pha, ms_f))

    def compute_output_shape(self, ms_shape, pan_shape=None):
        return (*ms_shape[:-1], self.channels)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "epsilon": self.epsilon})
        return config


def channel_contrast(x):
    """Per-channel population standard deviation plus mean, `(B, 1, 1, C)`."""
    mean = ops.mean(x, axis=(1, 2), keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
    return ops.sqrt(var) + mean


@keras.saving.register_keras_serializable(package="keras_pansharp")
class SpatialFrequencyBlock(keras.layers.Layer):
    """SFITNET's `SpaFre`: one spatial-frequency interaction block of SFDI.

    With `p = conv3x3(pan)` and `q = conv1x1(p)`:

    - spatial branch: `s = conv1x1(InvertibleCouplingBlock([ms, q]))`;
    - frequency branch: `f = AmplitudePhaseFusion(ms, q)`;
    - interaction: `r = f * sigmoid(att(s - f)) + s` (att: 3x3 conv `c ->
      c // 2`, LeakyReLU(0.1), 3x3 conv `-> c`); `t = [r, f]`;
      `out = ms + conv3x3(t * sigmoid(mlp(std(t) + mean(t))))` (mlp: 1x1
      convs `2c -> c // 2 -> 2c` with LeakyReLU(0.1));

    and the block returns `[out, p]` (the next block's MS and PAN features).

    Args:
        channels: feature channels `c` (at least 2).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        ms: `(B, H, W, c)` MS features.
        pan: `(B, H, W, c)` PAN features.

    Returns:
        `[ms_out, pan_out]`, each `(B, H, W, c)`.

    Example:
    >>> x = np.random.rand(1, 8, 8, 4).astype("float32")
    >>> ms, pan = SpatialFrequencyBlock(4)(x, x)
    >>> tuple(ms.shape), tuple(pan.shape)
    ((1, 8, 8, 4), (1, 8, 8, 4))
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        c = int(channels)
        if c < 2:
            raise ValueError(f"SpatialFrequencyBlock: channels must be >= 2, got {c}")
        self.channels = c
        half = c // 2
        self.panprocess = _conv(c, 3, "panprocess")
        self.panpre = _conv(c, 1, "panpre")
        self.spa_coupling = InvertibleCouplingBlock(c, name="spa_coupling")
        self.spa_conv = _conv(c, 1, "spa_conv")
        self.fre_process = AmplitudePhaseFusion(c, name="fre_process")
        self.spa_att1 = _conv(half, 3, "spa_att1")
        self.spa_att2 = _conv(c, 3, "spa_att2")
        self.cha_att1 = _conv(half, 1, "cha_att1")
        self.cha_att2 = _conv(2 * c, 1, "cha_att2")
        self.post = _conv(c, 3, "post")

    def build(self, ms_shape, pan_shape=None):
        _check_4d(self, ms_shape)
        c, half = self.channels, self.channels // 2
        base = tuple(ms_shape[:-1])
        feat = (*base, c)
        self.panprocess.build(pan_shape if pan_shape is not None else ms_shape)
        self.panpre.build(feat)
        self.spa_coupling.build((*base, 2 * c))
        self.spa_conv.build((*base, 2 * c))
        self.fre_process.build(feat, feat)
        self.spa_att1.build(feat)
        self.spa_att2.build((*base, half))
        pooled = (ms_shape[0], 1, 1)
        self.cha_att1.build((*pooled, 2 * c))
        self.cha_att2.build((*pooled, half))
        self.post.build((*base, 2 * c))
        self.built = True

    def call(self, ms, pan):
        panpre = self.panprocess(pan)
        panf = self.panpre(panpre)
        spafuse = self.spa_conv(self.spa_coupling(ops.concatenate([ms, panf], -1)))
        frefuse = self.fre_process(ms, panf)
        att = ops.leaky_relu(self.spa_att1(spafuse - frefuse), 0.1)
        spa_res = frefuse * ops.sigmoid(self.spa_att2(att)) + spafuse
        cat_f = ops.concatenate([spa_res, frefuse], axis=-1)
        weights = ops.leaky_relu(self.cha_att1(channel_contrast(cat_f)), 0.1)
        weights = ops.sigmoid(self.cha_att2(weights))
        return [self.post(weights * cat_f) + ms, panpre]

    def compute_output_shape(self, ms_shape, pan_shape=None):
        shape = (*ms_shape[:-1], self.channels)
        return [shape, shape]

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config
