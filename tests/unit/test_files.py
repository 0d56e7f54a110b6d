"""The one small-file reader (exporters/files.py): absent files are quiet, read errors are loud.

EIO is produced at the OS boundary: os.read is replaced for one file's descriptor only (that is the
kernel's answer, not our code), and EISDIR by a directory where a file is expected.
"""

from __future__ import annotations

import errno
import os
import shutil

import helpers
import pytest
from hpcwatch.exporters import files
from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.selfmetrics import read_errors

REAL = os.path.join(os.path.dirname(__file__), "..", "fixtures", "node", "real")


@pytest.fixture
def eio_on(monkeypatch):
    """Make reads of the given paths fail with EIO, as a driver's show() or a bad disk would."""
    broken: set[str] = set()
    real_read, real_pread = os.read, os.pread

    def check(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") in broken:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    def read(fd: int, n: int) -> bytes:
        check(fd)
        return real_read(fd, n)

    def pread(fd: int, n: int, offset: int) -> bytes:
        check(fd)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(os, "pread", pread)
    return lambda path: broken.add(os.path.realpath(path))


def test_absent_files_are_none_and_quiet(tmp_path):
    with files.reading("test_absent") as errors:
        assert files.read_text(str(tmp_path / "missing")) is None
        assert files.read_text(str(tmp_path / "missing" / "below")) is None  # ENOTDIR
        assert files.read_text("bad\0path") is None
        assert files.list_dir(str(tmp_path / "missing")) == []
    assert errors.errors == []
    assert read_errors("test_absent") == 0


def test_a_directory_where_a_file_is_expected_is_a_read_error(tmp_path):
    (tmp_path / "dir").mkdir()
    with files.reading("test_eisdir") as errors:
        assert files.read_text(str(tmp_path / "dir")) is None
    assert read_errors("test_eisdir") == 1
    assert errors.first().startswith(f"cannot read {tmp_path / 'dir'}: Is a directory")
    with files.reading("test_eisdir_quiet") as quiet:
        assert files.read_text(str(tmp_path / "dir"), quiet=True) is None
    assert quiet.errors == [] and read_errors("test_eisdir_quiet") == 0


def test_eio_is_a_read_error_and_the_other_files_still_read(tmp_path, eio_on):
    helpers.write_tree(str(tmp_path), {"bad": "1\n", "good": "2\n"})
    eio_on(str(tmp_path / "bad"))
    with files.reading("test_eio") as errors:
        assert files.read_int(str(tmp_path / "bad")) is None
        assert files.read_int(str(tmp_path / "good")) == 2
    assert read_errors("test_eio") == 1
    assert errors.errors == [f"cannot read {tmp_path / 'bad'}: Input/output error"]


def test_held_files_report_read_errors(tmp_path, eio_on):
    helpers.write_tree(str(tmp_path), {"a": "1\n"})
    held = files.HeldFiles(budget=1)
    try:
        eio_on(str(tmp_path / "a"))
        with files.reading("test_held") as errors:
            assert held.read_all([str(tmp_path / "a"), str(tmp_path / "gone")]) == [None, None]
        assert len(errors.errors) == 1 and read_errors("test_held") == 1
        assert len(held) == 0  # a file that failed is not held: the next scrape opens it again
    finally:
        held.close()


def node_on(tmp_path) -> tuple[NodeCollector, str]:
    root = str(tmp_path / "real")
    shutil.copytree(REAL, root, symlinks=True)
    ctx = helpers.make_context(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"), cls=NodeCollector)
    return NodeCollector(ctx, stat=lambda _path: os.statvfs("/")), root


def test_eio_from_proc_fails_the_collector_and_counts_instead_of_vanishing(tmp_path, eio_on):
    """Before: a /proc file answering EIO silently dropped its families while success stayed 1."""
    collector, root = node_on(tmp_path)
    eio_on(os.path.join(root, "proc", "meminfo"))
    before = read_errors("node")
    try:
        text = helpers.render(collector)
    finally:
        collector.close()
    assert helpers.collector_success(text) == {"node": 0}
    assert helpers.values(text, "hpcwatch_read_errors_total", source="node") == [before + 1]
    assert not helpers.values(text, "node_memory_MemTotal_bytes")
    assert helpers.values(text, "node_load1")  # the rest of the collector is still served
    helpers.assert_promtool_clean(text)


def test_a_directory_in_place_of_a_proc_file_fails_the_collector(tmp_path):
    collector, root = node_on(tmp_path)
    os.remove(os.path.join(root, "proc", "loadavg"))
    os.mkdir(os.path.join(root, "proc", "loadavg"))
    try:
        text = helpers.render(collector)
    finally:
        collector.close()
    assert helpers.collector_success(text) == {"node": 0}
    assert helpers.values(text, "hpcwatch_read_errors_total", source="node")
    assert not helpers.values(text, "node_load1")
    assert helpers.values(text, "node_memory_MemTotal_bytes")
