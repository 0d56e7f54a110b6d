"""docs/slo-history.md's quickstart, run exactly as written: the shell block under "## Quickstart"
goes to bash in an empty folder with the installed `hpcwatch` on PATH, and must leave a report."""

from __future__ import annotations

import os
import re
import subprocess
import sys

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "slo-history.md")


def quickstart_block() -> str:
    text = open(DOC, encoding="utf-8").read()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the quickstart has one runnable ```sh block"
    return blocks[0]


def test_quickstart_runs_as_written(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", quickstart_block()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "hpc-job-success-alpha-batch" in proc.stdout and "would have been paged" in proc.stdout
    page = (tmp_path / "slo-report.html").read_text()
    assert page.count('<p class="verdict">') == 3 and page.count("<svg") == 12
