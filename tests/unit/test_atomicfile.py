"""The one temp-and-rename writer (exporters/atomicfile.py) and the outputs layer on it (hpcwatch/outputs.py):
modes, all-or-nothing, folders created, no temp file left behind, errors naming the real file."""

from __future__ import annotations

import os

import pytest
from hpcwatch.exporters.atomicfile import write_atomically, write_many

from hpcwatch.outputs import OutputError, write_files, write_text


def _listing(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_state_files_stay_private_and_folders_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "state.json"
    write_atomically(str(path), lambda fh: fh.write(b"{}"))
    assert path.read_bytes() == b"{}" and _mode(path) == 0o600
    assert _listing(tmp_path) == ["a/b/state.json"]


def test_a_mode_is_applied_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_atomically(str(tmp_path / "x"), lambda fh: fh.write(b"1"), mode=0o644)
        write_text(str(tmp_path / "y"), "é")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "x") == 0o644 and _mode(tmp_path / "y") == 0o644
    assert (tmp_path / "y").read_bytes() == "é".encode()


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b"old")

    def boom(fh):
        fh.write(b"half")
        raise ValueError("encoder failed")

    with pytest.raises(ValueError, match="encoder failed"):
        write_atomically(str(path), boom)
    assert path.read_bytes() == b"old" and _listing(tmp_path) == ["state.json"]


def test_all_or_nothing_and_the_error_names_the_blocking_path(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    first, second = tmp_path / "ok" / "one.yml", tmp_path / "blocker" / "sub" / "two.yml"
    with pytest.raises(OSError) as caught:
        write_many({str(first): lambda fh: fh.write(b"1"), str(second): lambda fh: fh.write(b"2")})
    assert caught.value.filename in (str(tmp_path / "blocker"), str(tmp_path / "blocker" / "sub"))
    assert not first.exists() and _listing(tmp_path) == ["blocker"]


def test_a_rename_failure_names_the_target_not_the_temp(tmp_path):
    target = tmp_path / "is-a-folder"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(OSError) as caught:
        write_atomically(str(target), lambda fh: fh.write(b"x"))
    assert caught.value.filename == str(target)
    assert _listing(tmp_path) == []  # the temp file is gone; only the folders remain


def test_outputs_say_path_and_reason(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(OutputError) as caught:
        write_files({str(tmp_path / "fine.txt"): "1", str(tmp_path / "blocker" / "x.txt"): "2"})
    assert str(caught.value) == f"{tmp_path / 'blocker'}: not a directory"
    assert _listing(tmp_path) == ["blocker"]
    target = tmp_path / "dir"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(OutputError) as caught:
        write_text(str(target), "x")
    assert caught.value.path == str(target) and caught.value.reason == "Is a directory"
