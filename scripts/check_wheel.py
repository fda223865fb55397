"""Build the wheel, install it in a fresh virtualenv, run the quick start there.

What users `pip install` is the wheel, not the source tree: this checks that
it carries everything (package data such as the pretrained weights, the
`py.typed` marker, the console entry points) and that the README's quick
start works from it, outside the repository.

Usage:
    python scripts/check_wheel.py                 # build, install, run
    python scripts/check_wheel.py --keep          # keep the temporary folder

The virtualenv reuses the installed dependencies of the running interpreter
(its site-packages folders are appended to the new environment's path by a
`.pth` file, after the environment's own site-packages) so the check needs no
network; the package itself comes only from the wheel (`--no-deps`), and the
script runs from an empty folder so the source tree cannot be imported by
accident (an editable install of the running interpreter is not visible: its
import hook lives in a `.pth` file that a path entry does not execute).
"""

from __future__ import annotations

import argparse
import shutil
import site
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUICK_START = textwrap.dedent(
    """
    import pathlib
    import numpy as np
    import keras_pansharp as kp
    from keras_pansharp.data import synthetic

    assert "site-packages" in kp.__file__, kp.__file__
    root = pathlib.Path("home")
    paths = synthetic.ensure_datasets(("wv3", "gf2"), root=root, train_scene_size=256,
                                      valid_scene_size=256, test_images=1)
    train = kp.MultiSensorDataset(paths["train"], batch_size=4, patch_size=64,
                                  steps_per_epoch=3)
    val = kp.MultiSensorDataset.for_evaluation(paths["test_rr"])
    model = kp.PanTiny()
    kp.recipes.paper(model, epochs=1, steps_per_epoch=len(train))
    model.fit(train, epochs=1, callbacks=[kp.RREvaluation(val)], verbose=0)

    pre = kp.PanTiny.from_preset("pantiny_multisensor")     # package data, offline
    scene = synthetic.make_scene("qb", size=128, seed=0)
    fused = kp.predict_scene(pre, scene.ms, scene.pan, max_value=2047, exact=False)
    scores = kp.evaluate_fr(fused, scene.ms, scene.pan, sensor="qb")
    assert np.isfinite(scores["hqnr"]), scores
    kp.export_saved_model(pre, "saved")
    print("quick start from the wheel: OK", kp.__version__, round(scores["hqnr"], 4))
    """
)


def run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="Keep the temp folder.")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="kp_wheel_"))
    try:
        dist = tmp / "dist"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "-w",
                str(dist),
                str(ROOT),
            ]
        )
        wheels = sorted(dist.glob("keras_pansharp-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(
                f"expected one keras_pansharp wheel in {dist}, got {wheels}"
            )
        wheel = wheels[0]
        names = zipfile.ZipFile(wheel).namelist()
        for needed in (
            "keras_pansharp/presets/pantiny_multisensor.weights.h5",
            "keras_pansharp/py.typed",
        ):
            if needed not in names:
                raise SystemExit(f"{wheel.name} lacks {needed}")
        print(f"{wheel.name}: {len(names)} files, weights and py.typed present")

        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        py = venv / "bin" / "python"
        purelib = subprocess.run(
            [
                str(py),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        parent = [p for p in site.getsitepackages() if Path(p).is_dir()]
        (Path(purelib) / "_parent_env.pth").write_text("\n".join(parent) + "\n")
        run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--force-reinstall",
                str(wheel),
            ]
        )
        work = tmp / "work"
        work.mkdir()
        (work / "quick_start.py").write_text(QUICK_START)
        run([str(py), "quick_start.py"], cwd=work)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
