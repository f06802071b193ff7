"""Atomic outputs: all or nothing, with the permissions a plain write would give."""
import os

import pytest

from vaekit.engine.files import atomic_dir, atomic_path, write_text


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_outputs_get_the_usual_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "hi")
    with atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask()
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask()


def test_a_failed_write_leaves_nothing(tmp_path):
    write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
