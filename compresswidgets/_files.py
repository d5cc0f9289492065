"""Writing result files: all of them or none, and an error that says what to do.

Each file is written under a temporary name in the target folder and renamed into place only
when every one of them has been written, so a full disk or a missing permission never leaves
half a result behind (a .json without its .tflite).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def safe_filename(name: str, limit: int = 80) -> str:
    """A file name made from untrusted text: letters, digits, '.', '-', '_' only; no dot first.

    Example:
        >>> safe_filename("../prune 80% > <b>x</b>")
        'prune_80_b_x_b'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    stem = re.sub(r"_+", "_", stem)[:limit].strip("._-")
    return stem or "variant"


def json_text(value: Any) -> str:
    """``value`` as indented JSON for a result file: NumPy scalars as numbers, anything else
    JSON cannot hold as its text."""
    import numpy as np

    def default(item: Any) -> Any:
        return item.item() if isinstance(item, np.generic) else str(item)

    return json.dumps(value, indent=2, default=default)


def unwritable(folder: Path, exc: OSError) -> OSError:
    """``exc`` (from writing into ``folder``) as the same kind of error, in three parts."""
    reason = exc.strerror or str(exc)
    return type(exc)(
        f"Cannot write into {str(folder)!r}: {reason}. Expected a folder you may create "
        "and write files in; choose another one (e.g. a folder next to the notebook) or fix "
        "its permissions. Nothing was written.")


def write_files(folder: str | os.PathLike, contents: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``{file name: bytes or text}`` into ``folder`` (created if missing), all or none.

    Names are used as given (callers make them safe) and must stay inside ``folder``.
    Returns the paths written. Raises the three-part :class:`OSError` of :func:`unwritable`.
    """
    target = Path(folder).expanduser()
    written: list[tuple[str, Path]] = []
    try:
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(20, "it is a file, not a folder")
        target.mkdir(parents=True, exist_ok=True)
        for name, data in contents.items():
            fd, temp = tempfile.mkstemp(dir=target, prefix=".cw-", suffix=".part")
            written.append((temp, target / name))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        for temp, final in written:
            os.replace(temp, final)
    except OSError as exc:
        for temp, _ in written:
            if os.path.exists(temp):
                os.unlink(temp)
        raise unwritable(target, exc) from exc
    return [final for _, final in written]
