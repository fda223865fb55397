"""Per-image detail calibration inside a model (`DetailCalibration`).

The in-graph form of `keras_pansharp.calibrate_detail_gain`'s criterion (see
`keras_pansharp.calibration` for why and for the measured effect): a residual
model's output `fused = LMS + r` becomes `LMS + g * r`, where each band's gain
`g_b` is chosen on the input image itself, from its MS and PAN alone, as the
first local minimum over the grid `0, step, ..., max_gain` of

    |Q(LMS_b + g r_b, PAN) - Q(LMS_b, PAN_LP)|,

`Q` the mean 32 x 32 block UIQI and `PAN_LP = interp23tap(imresize(PAN,
1/4))` (MATLAB bicubic with antialiasing), on the image's centred crop of
multiple-of-32 sides. It is the same computation as
`keras_pansharp.calibration.choose_gains` (float64 NumPy), written with
`keras.ops` in the input's dtype so that `model.predict`, `model(x)` and an
exported SavedModel calibrate every image they fuse.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_pansharp.layers.interp23tap import Interp23Tap
from keras_pansharp.signal.resize import cubic_kernel

#: Block side of the Q index (the toolbox's D_s).
BLOCK = 32
#: Variance sums below this count as zero (a flat block; inputs are in
#: [0, 1], so real texture is many orders of magnitude above it).
_FLAT = 1e-12
#: A deviation must grow by more than this to end the scan (float32 noise
#: must not stop it early; `choose_gains` rounds to 1e-12 in float64).
_RISE = 1e-6


def imresize_quarter_taps() -> np.ndarray:
    """The 16 taps of MATLAB `imresize(x, 1/4)` (bicubic, antialiased).

    Output sample `i` (0-based) weighs input samples `4i - 6 ... 4i + 9`
    with `cubic(d / 4) / 4` at distances `d = 7.5 ... -7.5`, renormalised;
    borders are mirrored (`np.pad` mode `"symmetric"`), as in
    `keras_pansharp.signal.imresize_bicubic`.

    Returns:
        `(16,)` float64 taps summing to 1.
    """
    w = cubic_kernel(np.arange(7.5, -8.0, -1.0) / 4.0)
    return w / w.sum()


def _uiqi(mx, my, vx, vy, cxy):
    """`keras_pansharp.metrics.q_index._uiqi_from_moments` with `keras.ops`."""
    msq = mx * mx + my * my
    vsum = vx + vy
    den = vsum * msq
    flat = vsum <= _FLAT
    full = ops.logical_and(ops.logical_not(flat), msq != 0)
    q_full = 4.0 * cxy * mx * my / ops.where(full, den, ops.ones_like(den))
    nonzero = msq != 0
    q_flat = 2.0 * mx * my / ops.where(nonzero, msq, ops.ones_like(msq))
    out = ops.where(ops.logical_and(flat, nonzero), q_flat, ops.ones_like(den))
    return ops.where(full, q_full, out)


@keras.saving.register_keras_serializable(package="keras_pansharp")
class DetailCalibration(keras.layers.Layer):
    """Rescale each band's details by gains chosen on the image itself.

    At inference (`training` false) the output is `lms + g * (fused - lms)`
    with per-image, per-band gains `g` (module docstring); in training it is
    `fused` unchanged, so a model trains on its raw details. Images smaller
    than one 32 x 32 PAN block keep gain 1. The gains depend on the whole
    image (a global statistic): `keras_pansharp.predict_scene` therefore
    chooses them once per scene (on its centred crop of at most 1024 PAN
    pixels) and fuses every tile with them. Weightless.

    Args:
        max_gain: largest gain of the grid.
        step: grid step.
        **kwargs: standard `keras.layers.Layer` arguments.

    Call args:
        inputs: list `[lms, fused, pan]`: `(B, H, W, C)` upsampled MS,
            `(B, H, W, C)` model output and `(B, H, W, 1)` PAN, in [0, 1].
        training: Python bool; True returns `fused`.

    Returns:
        `(B, H, W, C)` calibrated output.

    Example:
    >>> lms = np.random.rand(1, 64, 64, 4).astype("float32")
    >>> pan = np.random.rand(1, 64, 64, 1).astype("float32")
    >>> layer = DetailCalibration()
    >>> tuple(layer([lms, lms + 0.1 * pan, pan]).shape)
    (1, 64, 64, 4)
    """

    def __init__(self, max_gain: float = 4.0, step: float = 1.0 / 32, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        max_gain, step = float(max_gain), float(step)
        if not (np.isfinite(step) and step > 0):
            raise ValueError(f"DetailCalibration: step must be > 0, got {step}.")
        if not (np.isfinite(max_gain) and max_gain >= step):
            raise ValueError(
                f"DetailCalibration: max_gain must be >= step ({step}), got {max_gain}."
            )
        self.max_gain = max_gain
        self.step = step
        self._grid = np.arange(int(np.floor(max_gain / step + 1e-9)) + 1) * step
        self._taps = imresize_quarter_taps()
        self.upsample = Interp23Tap(4, name="pan_lp_upsample")

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(
                "DetailCalibration expects three inputs [lms, fused, pan]; got "
                f"{input_shape}."
            )
        lms, fused, pan = (tuple(s) for s in input_shape)
        if len(lms) != 4 or len(fused) != 4 or lms[-1] != fused[-1] or not lms[-1]:
            raise ValueError(
                f"DetailCalibration: lms {lms} and fused {fused} must be "
                "(B, H, W, C) with the same known C."
            )
        if len(pan) != 4 or pan[-1] != 1:
            raise ValueError(f"DetailCalibration: pan must be (B, H, W, 1), got {pan}.")
        self.upsample.build((None, None, None, 1))
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def _pan_lp(self, pan):
        """`interp23tap(imresize(pan, 1/4))` of a crop with sides % 4 == 0."""
        # One channel: a plain convolution (TensorFlow's CPU depthwise kernel
        # refuses unequal strides, Keras 3.15.1).
        taps = ops.convert_to_tensor(self._taps, dtype=pan.dtype)
        x = ops.pad(pan, [[0, 0], [6, 6], [6, 6], [0, 0]], mode="symmetric")
        x = ops.conv(x, ops.reshape(taps, (16, 1, 1, 1)), strides=(4, 1))
        x = ops.conv(x, ops.reshape(taps, (1, 16, 1, 1)), strides=(1, 4))
        return self.upsample(x)

    @staticmethod
    def _if_blocks(image, fn, small):
        """`fn()` when `image` has a whole 32 x 32 block, else `small()`."""
        h, w = image.shape[1], image.shape[2]
        if h is not None and w is not None:
            return fn() if min(h, w) >= BLOCK else small()
        # Dynamic sides (a TensorFlow graph): decided when it runs.
        shape = ops.shape(image)
        big = ops.logical_and(shape[1] >= BLOCK, shape[2] >= BLOCK)
        return ops.cond(big, fn, small)

    def gains(self, lms, resid, pan):
        """Per-image, per-band gains `(B, C)` of `lms + g * resid`.

        Args:
            lms: `(B, H, W, C)` upsampled MS.
            resid: `(B, H, W, C)` the model's details.
            pan: `(B, H, W, 1)` PAN.

        Returns:
            `(B, C)` gains on the grid (1 for images below 32 x 32 pixels).
        """
        return self._if_blocks(
            pan,
            lambda: self._block_gains(lms, resid, pan),
            lambda: ops.ones_like(lms[:, 0, 0, :]),
        )

    def _block_gains(self, lms, resid, pan):
        """`gains` of an image with at least one 32 x 32 block."""
        shape = ops.shape(pan)
        h, w = shape[1], shape[2]
        ch, cw = h - h % BLOCK, w - w % BLOCK
        r0 = ((h - ch) // 2) // 4 * 4
        c0 = ((w - cw) // 2) // 4 * 4
        lms = lms[:, r0 : r0 + ch, c0 : c0 + cw, :]
        resid = resid[:, r0 : r0 + ch, c0 : c0 + cw, :]
        pan = pan[:, r0 : r0 + ch, c0 : c0 + cw, :]
        pan_lp = self._pan_lp(pan)
        bands = lms.shape[-1]
        x = ops.concatenate([lms, resid, pan, pan_lp], axis=-1)

        def pool(v):
            return ops.average_pool(v, BLOCK, strides=BLOCK, padding="valid")

        # Two passes, as the NumPy reference: block means, then moments of
        # the deviations from them (a flat block has exactly zero variance).
        means = pool(x)
        up = ops.repeat(ops.repeat(means, BLOCK, axis=1), BLOCK, axis=2)
        d = x - up
        dl, dr = d[..., :bands], d[..., bands : 2 * bands]
        dp, dq = d[..., 2 * bands : 2 * bands + 1], d[..., 2 * bands + 1 :]
        n = BLOCK * BLOCK
        second = pool(
            ops.concatenate(
                [
                    dl * dl,
                    dr * dr,
                    dl * dr,
                    dl * dp,
                    dr * dp,
                    dl * dq,
                    dp * dp,
                    dq * dq,
                ],
                axis=-1,
            )
        ) * (n / (n - 1.0))
        ml, mr = means[..., :bands], means[..., bands : 2 * bands]
        mp, mq = means[..., 2 * bands : 2 * bands + 1], means[..., 2 * bands + 1 :]
        vll, vrr, vlr, clp, crp, clq = (
            second[..., i * bands : (i + 1) * bands] for i in range(6)
        )
        vp, vq = second[..., 6 * bands : 6 * bands + 1], second[..., 6 * bands + 1 :]
        target = ops.mean(_uiqi(ml, mq, vll, vq, clq), axis=(1, 2))  # (B, C)

        def grid_axis(v):  # (B, nh, nw, C) -> (B, 1, nh, nw, C)
            return ops.expand_dims(v, 1)

        g = ops.reshape(
            ops.convert_to_tensor(self._grid, dtype=lms.dtype), (-1, 1, 1, 1)
        )
        q = _uiqi(
            grid_axis(ml) + g * grid_axis(mr),
            grid_axis(mp),
            grid_axis(vll) + 2.0 * g * grid_axis(vlr) + g * g * grid_axis(vrr),
            grid_axis(vp),
            grid_axis(clp) + g * grid_axis(crp),
        )
        dev = ops.abs(
            ops.mean(q, axis=(2, 3)) - ops.expand_dims(target, 1)
        )  # (B, G, C)
        rising = dev[:, 1:] > dev[:, :-1] + _RISE
        count = len(self._grid)
        # First rise (index of the local minimum), or the last gain.
        idx = ops.where(
            ops.any(rising, axis=1),
            ops.argmax(ops.cast(rising, "int32"), axis=1),
            count - 1,
        )
        return ops.cast(idx, lms.dtype) * self.step

    def call(self, inputs, training=None):
        lms, fused, pan = inputs
        if training:
            return fused

        def calibrated():
            resid = fused - lms
            gains = ops.stop_gradient(self._block_gains(lms, resid, pan))
            return lms + gains[:, None, None, :] * resid

        # Below one block the output is `fused` itself (gain 1).
        return self._if_blocks(fused, calibrated, lambda: fused)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"max_gain": self.max_gain, "step": self.step})
        return config
