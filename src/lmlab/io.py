"""Files written safely: atomic writes and checked safetensors.

The saved-model folder built on these is in :mod:`lmlab.pretrained`.

Every write is atomic: the bytes go to a temporary file in the same folder,
are fsync'ed, then renamed over the target, so a crash leaves either the old
file or the new one, never half of one. Folders are written the same way
(a temporary sibling folder, renamed into place).
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import CheckpointError, DataError

# errno values of a write that failed for want of room: a full disk, a quota, a file-size limit
# (ulimit -f), a file system gone read-only, an I/O error
WRITE_FAILURES = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_open(path: str | Path, gz: bool = False) -> Iterator[BinaryIO]:
    """A binary file to stream into; when the block ends without an error it replaces ``path``.

    The bytes go to a temporary file in the same folder (``gz``: gzip-compressed), which is
    fsync'ed and renamed over ``path``. If the block raises, the temporary file is removed
    and ``path`` (old file or none) is untouched. The file gets the usual permissions
    (0o666 less the umask), as :func:`open` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            if gz:
                with gzip.GzipFile(filename=path.name, mode="wb", fileobj=handle) as zipped:
                    yield zipped
            else:
                yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno not in WRITE_FAILURES:
            raise
        kept = "the old file is kept" if path.exists() else "nothing was written"
        raise DataError(f"cannot write {path}: {err.strerror or err} ({kept})") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` in one rename.

    If the body raises, the temporary folder is removed and ``path`` is untouched.
    With ``overwrite=False`` an existing ``path`` is an error (nothing the user had
    is lost).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                with open(child, "rb") as handle:
                    os.fsync(handle.fileno())
        _fsync_dir(tmp)
        replace_dir(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno not in WRITE_FAILURES:
            raise
        kept = "the old folder is kept" if path.exists() else "nothing was written"
        raise DataError(f"cannot write {path}/: {err.strerror or err} ({kept})") from err
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if type(err).__name__ == "SafetensorError" and "I/O error" in str(err):  # safetensors' own wrapper
            kept = "the old folder is kept" if path.exists() else "nothing was written"
            reason = str(err).split("I/O error:", 1)[1].strip()
            raise DataError(f"cannot write {path}/: {reason} ({kept})") from err
        raise


def replace_dir(tmp: str | Path, path: str | Path) -> None:
    """Put the finished folder ``tmp`` (already fsync'ed) at ``path`` by renames in one folder.

    An existing ``path`` is first renamed aside and removed only once ``tmp`` is in place, so
    ``path`` always names a complete folder (the old one or the new one).
    """
    tmp, path = Path(tmp), Path(path)
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    _fsync_dir(path.parent)


def check_safetensors(path: str | Path) -> None:
    """Validate a safetensors file's header and size before anything is loaded from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file: {path}")
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes)")
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > size - 8 or header_len > 100_000_000:
            raise CheckpointError(f"{path}: bad safetensors header (length {header_len}, file {size} bytes)")
        try:
            header = json.loads(handle.read(header_len).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: bad safetensors header (not JSON)") from None
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise CheckpointError(f"{path}: bad safetensors header entry {name!r}") from None
    if 8 + header_len + end > size:
        raise CheckpointError(
            f"{path}: truncated safetensors file (needs {8 + header_len + end} bytes, has {size})"
        )


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Save a dict of torch tensors as safetensors, atomically."""
    from safetensors.torch import save

    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


def load_tensors(path: str | Path) -> dict:
    """Load a safetensors file into a dict of torch tensors, with a checked header."""
    from safetensors.torch import load_file

    check_safetensors(path)
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read safetensors: {err}") from None
