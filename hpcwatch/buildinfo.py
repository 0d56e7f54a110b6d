"""Which source revision this install was built from, for `hpcwatch_build_info{revision}`.

In order: the REVISION file `setup.py` writes into a built package, the commit pip recorded for a
VCS install (PEP 610 direct_url.json), the git checkout an editable install runs from, else
"unknown". Git is read from its files, never by running git. Standard library only: setup.py
loads this module before hpcwatch's dependencies are installed.
"""

from __future__ import annotations

import functools
import json
import os
import re

REVISION_FILE = "REVISION"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _git_dirs(start: str) -> tuple[str, str] | None:
    """(git dir, common dir) of the checkout holding `start`; worktrees point to theirs with a file."""
    here = os.path.abspath(start)
    while True:
        dot = os.path.join(here, ".git")
        if os.path.isdir(dot):
            gitdir = dot
            break
        text = _read(dot) if os.path.isfile(dot) else None
        if text and text.startswith("gitdir:"):
            gitdir = os.path.normpath(os.path.join(here, text.split(":", 1)[1].strip()))
            break
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    common = _read(os.path.join(gitdir, "commondir"))
    return gitdir, os.path.normpath(os.path.join(gitdir, common)) if common else gitdir


def git_revision(start: str) -> str | None:
    """The commit HEAD points to in the checkout holding `start`, or None."""
    dirs = _git_dirs(start)
    if dirs is None:
        return None
    gitdir, common = dirs
    head = _read(os.path.join(gitdir, "HEAD")) or ""
    if _SHA.match(head):
        return head
    if not head.startswith("ref:"):
        return None
    ref = head.split(":", 1)[1].strip()
    for base in (gitdir, common):
        sha = _read(os.path.join(base, *ref.split("/")))
        if sha and _SHA.match(sha):
            return sha
    for line in (_read(os.path.join(common, "packed-refs")) or "").splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and _SHA.match(sha):
            return sha
    return None


def _direct_url_revision() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        text = distribution("hpcwatch").read_text("direct_url.json")
    except (ImportError, PackageNotFoundError):
        return None
    try:
        commit = json.loads(text or "{}").get("vcs_info", {}).get("commit_id")
    except ValueError:
        return None
    return commit if isinstance(commit, str) and _SHA.match(commit) else None


@functools.cache
def revision() -> str:
    """This install's source revision (40 hex digits), or "unknown"."""
    here = os.path.dirname(os.path.abspath(__file__))
    stamped = _read(os.path.join(here, REVISION_FILE))
    if stamped and _SHA.match(stamped):
        return stamped
    return _direct_url_revision() or git_revision(here) or "unknown"
