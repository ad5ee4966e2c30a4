"""Files the package writes: one atomic-write helper for the cache, the split, predictions and keys.

:func:`atomic_write` writes through a temporary file in the destination folder (same suffixes, so
writers that pick a format by suffix -- ``.nii.gz``, ``.npy``, ``.dcm`` -- still do) and moves it into
place with ``os.replace``, which is atomic on POSIX and Windows within one filesystem: a reader sees
the old file or the new one, never a partial one (MONAI's PersistentDataset does the same).
Concurrent writers of identical content are safe: the last rename wins.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Create or replace ``path`` atomically: ``write(tmp)`` fills a temporary file, then it is renamed.

    Args:
        path: the destination; its folder must exist.
        write: called with the temporary file's path (a ``str`` ending in ``path``'s suffixes).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        Whatever ``write`` raises (the temporary file is removed), or OSError from the rename.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith((".nii.gz", ".tar.gz")) else path.suffix
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}"
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
