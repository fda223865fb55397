"""`benchmarks/bench_scene.py`: the scene generator and the measurement helpers.

The full benchmark starts fresh processes (tens of seconds each); these tests
check its parts in-process at a tiny size.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_pansharp.data.geotiff import GeoTiffReader, check_alignment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_scene", ROOT / "benchmarks" / "bench_scene.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_scene_is_a_georeferenced_pair(bench, tmp_path):
    ms_path, pan_path = bench.generate_scene(tmp_path, 256, seed=3, max_dn=2047)
    with GeoTiffReader(ms_path) as ms, GeoTiffReader(pan_path) as pan:
        assert check_alignment(ms, pan) == []
        assert ms.shape == (64, 64, 4) and pan.shape == (256, 256, 1)
        assert ms.dtype == pan.dtype == np.uint16
        assert ms.is_tiled and ms.geo.epsg == 32633
        assert ms.geo.pixel_size == pytest.approx((2.4, 2.4))
        assert pan.geo.pixel_size == pytest.approx((0.6, 0.6))
        m, p = ms.read().astype(float), pan.read()[..., 0].astype(float)
    assert 0 < m.min() and m.max() <= 2047 and 0 < p.min() and p.max() <= 2047
    # Land cover: several distinct spectra, and the PAN is the bands' weighted
    # sum (up to noise) at MS scale.
    assert len(np.unique(np.round(m[..., 3] / 100))) > 3
    p_lr = p.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(p_lr, m @ bench.PAN_WEIGHTS, atol=8)


def test_generator_is_blockwise_consistent(bench):
    """Row blocks of any height give the same scene (bounded generation)."""
    gen = bench.SceneGenerator(128, seed=1, max_dn=2047)
    whole_pan, whole_ms = gen.pan_and_ms(0, 128)
    top = gen.bands(0, 64)
    np.testing.assert_allclose(top, gen.bands(0, 128)[:64], rtol=1e-5)
    assert whole_pan.shape == (128, 128) and whole_ms.shape == (32, 32, 4)


def test_run_stage_measures_a_child_process(bench, tmp_path):
    code = "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"
    res = bench.run_stage([sys.executable, "-c", code], tmp_path / "x.log", 120)
    assert res["returncode"] == 0 and res["seconds"] > 0
    assert 300 < res["peak_rss_mb"] < 2000  # the child's own peak, not ours
    bad = bench.run_stage(
        [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "y.log", 60
    )
    assert bad["returncode"] == 3


def test_check_georef_and_markdown(bench, tmp_path):
    _, pan_path = bench.generate_scene(tmp_path, 128, seed=0, max_dn=2047)
    assert bench.check_georef(pan_path, pan_path)
    row = {
        "model": "pnn",
        "pan_size": 128,
        "exact": False,
        "georef_equals_pan": True,
        "baseline": {"peak_rss_mb": 600.0},
        "fuse": {
            "returncode": 0,
            "seconds": 10.0,
            "fuse_geotiff_seconds": 2.0,
            "fuse_geotiff_megapixels_per_second": 0.0082,
            "peak_rss_mb": 700.0,
        },
        "evaluate": {
            "seconds": 5.0,
            "evaluate_seconds": 1.0,
            "peak_rss_mb": 650.0,
            "scores": {"hqnr": 0.9, "qnr": 0.8, "d_lambda_k": 0.05, "d_s": 0.05},
        },
    }
    result = {"backend": "jax", "cpus": 2, "load_average": (1.0, 1.0, 1.0)}
    text = bench.markdown({**result, "runs": [row]})
    assert "| pnn | 128² | blend | 10.0 (2.0) | 0.008 | 700 | 600 | True |" in text
    assert "| 0.9000 | 0.8000 | 0.0500 | 0.0500 |" in text
