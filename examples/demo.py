"""Build PanTiny and pan-sharpen a synthetic MS/PAN pair.

Runs in seconds on a CPU, with any Keras backend:

    python examples/demo.py                # KERAS_BACKEND=tensorflow (default)
    KERAS_BACKEND=jax python examples/demo.py --bands 8 --size 128

The synthetic scene is smooth random texture; the MS is its 4x-decimated,
band-mixed version and the PAN its band mean, all in [0, 1]. The model is
untrained (presets carry no weights), so the demo shows the API, the shapes
and the parameter count, not image quality.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic_pair(bands: int, size: int, seed: int = 0):
    """A float32 (ms, pan, gt) triple: ms (1, size/4, size/4, bands)."""
    rng = np.random.default_rng(seed)
    # Texture with detail finer than the MS can hold: a random field on a
    # (size/2)^2 grid, upsampled to size^2 by Fourier zero-padding.
    low = rng.random((size // 2, size // 2, bands))
    spec = np.fft.fft2(low, axes=(0, 1))
    pad = np.zeros((size, size, bands), complex)
    h = size // 4
    pad[:h, :h], pad[:h, -h:] = spec[:h, :h], spec[:h, -h:]
    pad[-h:, :h], pad[-h:, -h:] = spec[-h:, :h], spec[-h:, -h:]
    gt = np.real(np.fft.ifft2(pad, axes=(0, 1)))
    gt = (gt - gt.min()) / (gt.max() - gt.min())
    pan = gt.mean(axis=-1, keepdims=True)
    ms = gt[2::4, 2::4]
    as32 = lambda a: a[None].astype("float32")  # noqa: E731
    return as32(ms), as32(pan), as32(gt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=4, help="MS bands (4 or 8)")
    parser.add_argument("--size", type=int, default=64, help="PAN size (mult. of 4)")
    parser.add_argument(
        "--preset", default="pantiny", choices=["pantiny", "pantiny_large"]
    )
    args = parser.parse_args(argv)
    if args.size % 8 or args.size < 16:
        parser.error("--size must be a multiple of 8, at least 16")

    import keras

    import keras_pansharp

    model = keras_pansharp.PanTiny.from_preset(args.preset, bands=args.bands)
    ms, pan, gt = synthetic_pair(args.bands, args.size)
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    print(f"{args.preset}: {model.count_params():,} parameters, {args.bands} bands")
    print(f"inputs:  ms {ms.shape}  pan {pan.shape}")
    start = time.perf_counter()
    fused = model.predict({"ms": ms, "pan": pan}, verbose=0)
    elapsed = time.perf_counter() - start
    print(f"output:  {fused.shape} {fused.dtype}  ({elapsed:.2f} s incl. compile)")
    lms = keras_pansharp.Interp23Tap(4)(ms)
    lms = keras.ops.convert_to_numpy(lms)
    print(
        "interp23tap keeps the MS samples: max |lms[2::4, 2::4] - ms| = "
        f"{np.abs(lms[:, 2::4, 2::4] - ms).max():.2e}"
    )
    print(
        "untrained model, mean |fused - gt| = "
        f"{np.abs(fused - gt).mean():.4f} (interp23tap alone: "
        f"{np.abs(lms - gt).mean():.4f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
