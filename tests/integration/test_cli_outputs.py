"""Every command that writes files: it creates missing folders and writes 0644 files; a folder it may
not write to, or a file where a folder should be, ends with `error: PATH: reason` and status 1, never
a traceback.

The read-only case runs the installed `hpcwatch` as `nobody` (setpriv) when the tests run as root,
since root writes through any permission bit (otherwise as the current user); the other two cases
call the same `main()` in this process, which is what the command runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
from helpers import require_binary

pytestmark = [pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
CATALOGUE = os.path.join(ROOT, "examples", "slo", "hpc-catalogue.yaml")


def _sacct(path: str) -> str:
    """A job history in sacct's format for `slo report` (the history module's synthetic generator)."""
    from hpcwatch.slo.history.synthetic import synthetic_jobs, to_sacct

    with open(path, "w") as fh:
        fh.write(to_sacct(synthetic_jobs(300, 1_700_000_000, 2, seed=1)))
    return path


# name: (argv with {out} where the output folder goes, paths written under {out})
COMMANDS = {
    "alerts rules": (["alerts", "rules", "-o", "{out}/rules.yml"], ["rules.yml"]),
    "alerts tests": (["alerts", "tests", "-o", "{out}/rules.test.yml"], ["rules.test.yml"]),
    "alerts alertmanager": (["alerts", "alertmanager", "-o", "{out}/alertmanager.yml"], ["alertmanager.yml"]),
    "dashboards write": (["dashboards", "write", "-o", "{out}/dashboards"], ["dashboards/hpcwatch-node.json"]),
    "generate": (["generate", "-o", "{out}/deploy"], ["deploy/prometheus/prometheus.yml",
                                                      "deploy/grafana/dashboards/hpcwatch-cluster.json"]),
    "docs metrics": (["docs", "metrics", "--repo", ROOT, "-o", "{out}/metrics.md"], ["metrics.md"]),
    "slo generate (file)": (["slo", "generate", "-i", CATALOGUE, "-o", "{out}/slo.rules.yml", "--tests",
                             "{out}/tests"], ["slo.rules.yml"]),
    "slo generate (folder)": (["slo", "generate", "-i", CATALOGUE, "-o", "{out}/rules/"], ["rules/hpc-catalogue.yml"]),
    "slo report": (["slo", "report", "--spec", CATALOGUE, "--jobs", "{sacct}", "--format", "html", "-o",
                    "{out}/report.html"], ["report.html"]),
}


@pytest.fixture(scope="module")
def world():
    """A folder everyone may enter (so `nobody` can run the commands), with a job history in it."""
    base = tempfile.mkdtemp(prefix="hpcwatch-outputs-")
    os.chmod(base, 0o755)
    sacct = _sacct(os.path.join(base, "sacct.txt"))
    os.chmod(sacct, 0o644)
    yield base, sacct
    shutil.rmtree(base, ignore_errors=True)


def _run(argv: list[str], out: str, sacct: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    args = [a.replace("{out}", out).replace("{sacct}", sacct) for a in argv]
    drop = [require_binary("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    return subprocess.run([*drop, HPCWATCH, *args], capture_output=True, text=True, timeout=300, cwd="/",
                          env={**os.environ, "HOME": "/tmp"})


def _main(argv: list[str], out: str, sacct: str, capsys) -> tuple[int, str]:
    """`hpcwatch ARGV` in this process: (status, stderr)."""
    from hpcwatch.cli import main

    capsys.readouterr()
    rc = main([a.replace("{out}", out).replace("{sacct}", sacct) for a in argv])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_folders_are_created_and_files_are_0644(name, world, capsys):
    base, sacct = world
    argv, written = COMMANDS[name]
    out = os.path.join(base, name.replace(" ", "-").replace("(", "").replace(")", ""), "not", "there", "yet")
    old = os.umask(0o077)  # a umask that would make files 0600: the outputs are 0644 whatever it is
    try:
        rc, err = _main(argv, out, sacct, capsys)
    finally:
        os.umask(old)
    assert rc == 0, err
    for rel in written:
        mode = stat.S_IMODE(os.stat(os.path.join(out, rel)).st_mode)
        assert mode == 0o644, f"{rel}: {oct(mode)}"


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_folder_is_an_error_naming_the_path(name, world):
    base, sacct = world
    argv, _ = COMMANDS[name]
    ro = tempfile.mkdtemp(prefix="ro-", dir=base)
    os.chmod(ro, 0o555)
    proc = _run(argv, os.path.join(ro, "out"), sacct, as_nobody=os.geteuid() == 0)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {ro}") and "Permission denied" in last, proc.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_a_file_where_a_folder_should_be_is_an_error_naming_it(name, world, capsys):
    base, sacct = world
    argv, _ = COMMANDS[name]
    blocker = tempfile.mktemp(prefix="file-", dir=base)
    with open(blocker, "w") as fh:
        fh.write("not a folder\n")
    rc, err = _main(argv, os.path.join(blocker, "out"), sacct, capsys)
    assert rc == 1, err
    assert err.strip().splitlines()[-1] == f"error: {blocker}: not a directory", err
