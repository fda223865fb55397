"""The README's and the guides' code snippets run, and their links resolve.

Each page's ```python blocks run in order in one namespace, in a fresh
folder holding small synthetic stand-ins for the files the snippets name
(`ms.tif` / `pan.tif`: a 4-band QuickBird-like GeoTIFF pair; `train_wv3.h5`,
`valid_gf2.h5`, ...: the built-in synthetic PanCollection files). A block
preceded by `<!-- docs-test: skip (reason) -->` is not run; one preceded by
`<!-- docs-test: skip-jax (reason) -->` is not run under that backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip(?:-(\w+))?\b.*?-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """`(first line number, code)` of the page's runnable python blocks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            lang, start = m.group(1), i + 1
            j = start
            while j < len(lines) and not FENCE.match(lines[j]):
                j += 1
            marker = SKIP.search(lines[i - 1]) if i > 0 else None
            skipped = marker is not None and marker.group(1) in (None, backend())
            if lang == "python" and not skipped:
                blocks.append((start + 1, "\n".join(lines[start:j])))
            i = j + 1
        else:
            i += 1
    return blocks


def backend() -> str:
    import keras

    return keras.backend.backend()


def test_python_blocks_are_found():
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 4
    assert all("import" in code or "kp." in code for _, code in blocks)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Path:
    """Files the snippets name, as small synthetic stand-ins."""
    import tifffile

    from keras_pansharp.data import synthetic

    folder = tmp_path_factory.mktemp("docs_fixtures")
    scene = synthetic.make_scene("qb", size=256, seed=0)
    tifffile.imwrite(folder / "ms.tif", scene.ms.astype(np.uint16))
    tifffile.imwrite(folder / "pan.tif", scene.pan.astype(np.uint16))
    paths = synthetic.ensure_datasets()
    for sensor in ("wv2", "wv3", "gf2"):
        (folder / f"train_{sensor}.h5").symlink_to(paths["train"][sensor])
        (folder / f"valid_{sensor}.h5").symlink_to(paths["valid"][sensor])
        (folder / f"test_{sensor}_multiExm1.h5").symlink_to(paths["test_rr"][sensor])
        (folder / f"test_{sensor}_OrigScale_multiExm1.h5").symlink_to(
            paths["test_fr"][sensor]
        )
    return folder


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_snippets_run(page, fixtures, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    for f in fixtures.iterdir():
        (tmp_path / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)
    import keras

    namespace: dict = {"__name__": "__docs__"}
    try:
        for line, code in blocks:
            where = f"{page.relative_to(ROOT)}:{line}"
            try:
                exec(compile(code, where, "exec"), namespace)  # noqa: S102
            except Exception as e:
                raise AssertionError(f"snippet at {where} failed: {e!r}") from e
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    prose = re.sub(r"`[^`]*`", "", prose)
    assert not re.search(r"\bissue\s*#?\d+", text, re.I), "internal issue number"
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+://|mailto:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: broken link {target}"
        if anchor and resolved.suffix == ".md":
            slugs = {
                re.sub(r"[^\w\- ]", "", h.strip("# ").lower()).replace(" ", "-")
                for h in resolved.read_text(encoding="utf-8").splitlines()
                if h.startswith("#")
            }
            assert anchor in slugs, f"{page.name}: no heading for #{anchor}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
