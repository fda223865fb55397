"""Atomic file output: a file appears complete under its name or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path that replaces `path` when the block succeeds.

    The temporary file is created in the same folder (so the final
    `os.replace` is atomic on POSIX and Windows) with the permissions a new
    file would get (`0o666` minus the umask; `mkstemp` alone gives `0o600`).
    If the block raises, the temporary file is removed and `path` is left as
    it was. Missing parent folders are created.

    Args:
        path: the final file path.
        suffix: suffix of the temporary file (default: `path`'s suffix, so
            writers that choose a format from the extension still work).

    Yields:
        The temporary `Path` to write to (it exists, empty).

    Example:

    >>> with atomic_path("fused.tif") as tmp:  # doctest: +SKIP
    ...     tifffile.imwrite(tmp, image)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent,
        prefix=f".{path.name}.tmp-",
        suffix=path.suffix if suffix is None else suffix,
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (temporary file + rename).

    Args:
        path: the file to write (parent folders are created).
        text: the full file content. Newlines are written as given.
        encoding: text encoding.

    Returns:
        `path` as a `Path`.

    Example:

    >>> write_atomic("results.md", table.to_markdown())  # doctest: +SKIP
    """
    with atomic_path(path, suffix="") as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)
    return Path(path)
