"""Atomic file writes: a crashed or preempted job never leaves a half-written result behind.

Files are created with the permissions the user's umask allows (as `open` would), a full disk
says so with the file's name, and a damaged file being read is named with what to do.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DiskFull(OSError):
    """No space left for a result; the previous copy of the file is kept."""


class DamagedFile(RuntimeError):
    """A file exists but cannot be read (truncated, corrupt); the message says what to do."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # what the reader said, without the file name or the fix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise DiskFull(
                errno.ENOSPC, f"No space left on device writing {path}; the last good copy is kept"
            ) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """torch.save, atomically; serialized in memory first, so that a full disk raises an
    OSError naming the file (torch's own file writer says only "iostream error")."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def load_torch(path: str | os.PathLike, fix: str, **kwargs: Any) -> Any:
    """torch.load, with a damaged file named in one line together with `fix`."""
    import torch

    try:
        return torch.load(path, **kwargs)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DamagedFile(f"{path} is damaged ({first}); {fix}", first) from None


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically, sorted and indented so diffs stay readable."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write `text` unless the file already holds it; True if it was written.

    An input file that only changes when its content does: its modification time then says
    when what its readers compute last changed (Snakemake reruns them after that, not before).
    """
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def read_yaml(path: str | os.PathLike) -> Any:
    """YAML safely loaded, with libyaml's parser where PyYAML has it: the schema is read at
    every Snakemake start (each job's too), and the C parser is 9x faster, same result."""
    import yaml

    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
