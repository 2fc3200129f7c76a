"""Atomic file output, checksums and JSON helpers shared by every stage.

An existing output is a finished output: everything is written to a temporary file in the
same folder and renamed into place, so a crash never leaves a partial file behind. Outputs get
the permissions of any new file (``0666`` less the umask), so collaborators on shared storage can
read them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "stale_temporaries", "atomic_write_bytes", "atomic_write_text", "write_json",
           "read_json", "sha256_file", "safe_name"]


_TOKEN_BYTES = 4  # random bytes in a temporary file's name, written as hex


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so libraries that sniff the
    extension (h5py, PIL, safetensors) behave. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_file(path.parent, f".{path.name}.", (suffix or path.suffix) + ".tmp")
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # writers that recreate the file (safetensors) make it 0600
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty, uniquely named file with mode 0666 less the umask (``tempfile`` uses 0600)."""
    while True:
        path = folder / f"{prefix}{secrets.token_hex(_TOKEN_BYTES)}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that :func:`atomic_path` left beside ``path`` (a killed run's leftovers).

    Only names :func:`atomic_path` itself makes are matched, so other files are never touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    token = f"[0-9a-f]{{{2 * _TOKEN_BYTES}}}"
    pattern = re.compile(rf"\.{re.escape(path.name)}\.{token}{re.escape(path.suffix)}\.tmp")
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically. Non-JSON values are written with ``str``."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising ``ValueError`` naming the file if it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safe_name(name: str) -> str:
    """Turn a slide or run name into a file name that cannot escape its output folder."""
    keep = "".join(c if (c.isalnum() or c in "-_.()+") else "_" for c in Path(name).name)
    keep = keep.lstrip(".")
    if not keep:
        raise ValueError(f"cannot derive a safe file name from {name!r}")
    return keep
