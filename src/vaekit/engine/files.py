"""Atomic writes: a reader never sees a half-written output."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vaekit.errors import VaekitError


def default_mode(base: int) -> int:
    """`base` (0o666 files, 0o777 folders) less the process umask: the permissions a plain open()
    or mkdir() would give, which the private temporaries of mkstemp/mkdtemp (0o600/0o700) lack."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def writing(output: Path) -> Iterator[None]:
    """A file-system error (a name too long, permission denied, a read-only disk) while preparing
    `output`, as one sentence."""
    try:
        yield
    except OSError as e:
        raise VaekitError(f"cannot write {output}: {e.strerror}") from None


def check_writable(path: str | Path, kind: str = "file") -> None:
    """Refuse an output `path` (a `kind`: "file" or "folder") that cannot be written, in one sentence:
    commands call it before their slow part, the writers again before writing."""
    path = Path(path)
    with writing(path):
        is_dir, exists = path.is_dir(), path.exists()
        file = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if kind == "file" and is_dir:
        raise VaekitError(f"the output {path} is a folder; give a file name")
    if kind == "folder" and exists and not is_dir:
        raise VaekitError(f"the output {path} is a file; give a folder")
    if file is not None:
        raise VaekitError(f"cannot write {path}: {file} is a file, not a folder")


def make_parent(path: Path, kind: str) -> None:
    """Create the folder that will hold output `path`, or say why it cannot be there."""
    check_writable(path, kind)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)


def temporary_folder(parent: Path, output: Path, prefix: str | None = None) -> Path:
    with writing(output):
        return Path(tempfile.mkdtemp(dir=parent, prefix=prefix or f".{output.name}.", suffix=".tmp"))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    make_parent(path, "file")
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename: a crash then leaves the old file, not an empty one
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode(0o666))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder, then swap it in for `path` (the old one is removed last)."""
    path = Path(path)
    make_parent(path, "folder")
    tmp = temporary_folder(path.parent, path)
    old = path.with_name(path.name + ".old")
    try:
        yield tmp
        os.chmod(tmp, default_mode(0o777))
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder inside `path` (made if missing; on its file system, where
    renames are atomic); when the block succeeds, move its files up into `path` (files already there
    under other names stay). If the block fails nothing arrives, and the folders made for it are
    removed: a failure on the tenth image of a folder leaves none of the first nine behind. (A rename
    that fails midway, after all were written, is not undone.)"""
    path = Path(path)
    check_writable(path, "folder")
    made = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)  # the topmost new folder
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    tmp, done = None, False
    try:
        tmp = temporary_folder(path, path, prefix=".vaekit-")
        yield tmp
        files = sorted(tmp.iterdir())
        in_the_way = next((path / f.name for f in files if (path / f.name).is_dir()), None)
        if in_the_way is not None:  # found before any file moves, not halfway
            raise VaekitError(f"cannot write {in_the_way}: a folder of that name is in the way")
        for file in files:
            os.replace(file, path / file.name)
        done = True
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if made is not None and not done:
            shutil.rmtree(made, ignore_errors=True)
