"""Shared pytest fixtures.

Real data live in `../shared/` next to the project root (or wherever
`KERAS_PANSHARP_SHARED` points). Tests that need them skip cleanly when absent.
"""

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Test inputs are tiny, so XLA's compile time dominates JAX runs (every new
# weight shape compiles its initializer). Unoptimised XLA code compiles much
# faster and cut the PanTiny tests' CPU time by ~40% (47 s -> 27 s). Only a
# default: an XLA_FLAGS set by the caller wins. Must run before JAX is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


def shared_dir() -> Path:
    """Location of the optional shared data folder (may not exist)."""
    env = os.environ.get("KERAS_PANSHARP_SHARED")
    if env:
        return Path(env)
    return PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_path() -> Path:
    """Path of `../shared`, skipping the test when it is absent."""
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path}")
    return path


@pytest.fixture(scope="session")
def golden_dir(shared_path) -> Path:
    path = shared_path / "golden"
    if not (path / "golden.json").is_file():
        pytest.skip(f"golden values not found in {path}")
    return path


@pytest.fixture(scope="session")
def shared_data_dir(shared_path) -> Path:
    path = shared_path / "data"
    if not path.is_dir():
        pytest.skip(f"shared data not found in {path}")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Seed every test and reset Keras' global state after it.

    `free_memory=False` skips the full `gc.collect()` (about 0.5 s a test);
    the reset of name counters and TF graphs is what isolation needs.
    """
    import keras

    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
