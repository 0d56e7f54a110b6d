"""The image's lock file pins every runtime dependency pyproject.toml names (`make image-lock` after a
change), each with a version and a hash: the image build installs nothing else."""

from __future__ import annotations

import os
import re
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCK = os.path.join(ROOT, "deploy", "container", "requirements.lock")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    with open(LOCK, encoding="utf-8") as fh:
        text = fh.read()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", text, re.M)
    assert len(entries) == text.count("=="), "every pin has exactly one sha256 hash"
    return {_norm(name): version for name, version, _ in entries}


def test_every_dependency_is_pinned_with_a_hash():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    names = {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}
    missing = names - set(_locked())
    assert not missing, f"not in {os.path.relpath(LOCK, ROOT)}: {sorted(missing)}; run `make image-lock`"
