"""The commands of the README and the quickstarts run as written.

Every fenced ```sh block there is either run here or listed in NEEDS with what it needs that a test
machine lacks (a Kubernetes or Slurm cluster, systemd on a real node); a new block must be one or
the other. A block whose every line is `make ...` runs as `make -n` (they run the test suite itself,
or serve until Ctrl-C); a `PYTEST_ARGS` must reach pytest whole. Every other block runs with
`bash -e -o pipefail` in a private mount and network namespace (root: `unshare`), so the default
ports are free and nothing touches the machine: /etc is a copy, /tmp and /opt are empty, with
/opt/hpcwatch this checkout's .venv (where the quickstarts install hpcwatch) and `./hpcwatch` the
checkout (the quickstarts' `git clone`). A block preceded by `<!-- file: PATH -->` is a file the doc
asks the reader to save: it is saved, not run. Blocks of one document run in order in one namespace,
README blocks from the checkout, the others from an empty folder.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile

import pytest
from helpers import IN_CI, require_binary

pytestmark = [pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", "docs/quickstart-single-node.md", "docs/quickstart-systemd.md", "docs/quickstart-kubernetes.md"]
SLURM = "a Slurm cluster (scontrol, sinfo, slurmctld for the cluster agent): tests/integration/test_slurm_real.py"
# (document, the block's first command starts with) -> why it does not run here.
NEEDS = {
    ("README.md", ".venv/bin/hpcwatch serve --agent cluster"): SLURM,
    ("docs/quickstart-single-node.md", "git clone"): "the network and minutes as root; tests/e2e/test_demo.py "
                                                     "runs `hpcwatch demo`",
    ("docs/quickstart-single-node.md", "apt-get install"): "installs Debian packages (make deps does) and the wheel "
                                                           "(tests/integration/test_wheel.py installs it the same way)",
    ("docs/quickstart-single-node.md", "/opt/hpcwatch/bin/hpcwatch serve --agent node &"): SLURM,
    ("docs/quickstart-systemd.md", "python3 -m venv /opt/hpcwatch"): "a node: creates the system user with "
                                                                      "systemd-sysusers; the wheel install is "
                                                                      "tests/integration/test_wheel.py's",
    ("docs/quickstart-systemd.md", "install -m 0644 hpcwatch/deploy/systemd/hpcwatch-node.service"):
        "systemd on a node (the units pass systemd-analyze verify in tests/integration/test_deploy.py)",
    ("docs/quickstart-systemd.md", "install -m 0644 hpcwatch/deploy/systemd/hpcwatch-cluster.service"):
        "systemd on a Slurm head node",
    ("docs/quickstart-systemd.md", "CLUSTER=$(scontrol show config"): SLURM,
    ("docs/quickstart-kubernetes.md", "kubectl label node"): "a Kubernetes cluster (the manifests are rendered and "
                                                             "validated in tests/integration/test_deploy.py)",
    ("docs/quickstart-kubernetes.md", "kubectl -n hpcwatch get pods"): "a Kubernetes cluster",
}
# Inputs a block reads that the reader brings along: (document, first command) -> shell run before it.
BRINGS = {
    ("docs/quickstart-kubernetes.md", "hpcwatch slo generate -i slos/"):
        "mkdir -p slos && cp hpcwatch/examples/slo/hpc-catalogue.yaml slos/ && "
        "hpcwatch alerts alertmanager --example-config > receivers.yml",
}
_FENCE = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)


def blocks(doc: str) -> list[dict]:
    """The shell blocks and files to save of a document, in order."""
    with open(os.path.join(ROOT, doc), encoding="utf-8") as fh:
        text = fh.read()
    out = []
    for m in _FENCE.finditer(text):
        if m.group("file"):
            out.append({"kind": "file", "path": m.group("file"), "body": m.group("body")})
        elif m.group("lang") == "sh":
            first = next(line for line in m.group("body").splitlines() if line.strip())
            out.append({"kind": "sh", "first": first.strip(), "body": m.group("body")})
    return out


def _need(doc: str, first: str) -> str | None:
    return next((why for (d, start), why in NEEDS.items() if d == doc and first.startswith(start)), None)


def _make_lines(body: str) -> list[str] | None:
    """The lines of a block that is only `make` commands (comments stripped), else None."""
    lines = [line.split("#", 1)[0].strip() for line in body.splitlines()]
    lines = [line for line in lines if line]
    return lines if lines and all(line.startswith("make ") for line in lines) else None


def test_every_block_is_run_or_says_what_it_needs():
    used = set()
    for doc in DOCS:
        for b in blocks(doc):
            if b["kind"] == "sh" and _need(doc, b["first"]):
                used |= {key for key in NEEDS if key[0] == doc and b["first"].startswith(key[1])}
    assert set(NEEDS) == used, f"NEEDS entries that match no block: {set(NEEDS) - used}"


@pytest.mark.parametrize("doc", DOCS)
def test_make_commands_parse_and_pass_their_arguments(doc):
    for b in blocks(doc):
        lines = _make_lines(b["body"]) if b["kind"] == "sh" else None
        for line in lines or ():
            argv = shlex.split(line)
            proc = subprocess.run([argv[0], "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"{doc}: {line}\n{proc.stderr}"
            for arg in argv[1:]:
                if arg.startswith("PYTEST_ARGS="):
                    assert f"-m pytest {arg.split('=', 1)[1]}" in proc.stdout, f"{doc}: {line}\n{proc.stdout}"


def _script(doc: str) -> str:
    """The document's runnable blocks as one bash script; files saved where the doc says."""
    parts = ["trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, b in enumerate(blocks(doc)):
        if b["kind"] == "file":
            parts.append(f"mkdir -p {shlex.quote(os.path.dirname(b['path']))} && "
                         f"cat > {shlex.quote(b['path'])} <<'HPCWATCH_DOC_EOF'\n{b['body']}HPCWATCH_DOC_EOF")
            continue
        if _need(doc, b["first"]) or _make_lines(b["body"]):
            continue
        bring = next((sh for (d, start), sh in BRINGS.items() if d == doc and b["first"].startswith(start)), None)
        parts.append(f"echo {shlex.quote(f'### {doc} block {i}: ' + b['first'])} >&2")
        if bring:
            parts.append(bring)
        parts.append(b["body"])
    return "\n".join(parts) + "\n"


@pytest.mark.parametrize("doc", DOCS)
def test_blocks_run_as_written(doc, tmp_path):
    if os.geteuid() != 0:
        msg = "running the documented commands in a private namespace needs root (unshare)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    for name in ("unshare", "ip", "promtool", "amtool", "curl"):
        require_binary(name)
    script = _script(doc)
    if script.count("### ") == 0:
        pytest.skip(f"{doc}: every block needs a cluster (see NEEDS)")
    etc = tempfile.mkdtemp(prefix="etc-", dir=tmp_path)
    subprocess.run(["cp", "-a", "/etc/.", etc], check=True, timeout=120)
    (tmp_path / "script.sh").write_text(script)
    cwd = ROOT if doc == "README.md" else "/tmp/work"
    root = shlex.quote(ROOT)
    setup = f"""
set -e
mount --make-rprivate /
ip link set lo up
mount --bind {shlex.quote(etc)} /etc
script=$(cat {shlex.quote(str(tmp_path / 'script.sh'))})
mount -t tmpfs tmpfs /opt && mkdir -p /opt/hpcwatch /opt/.checkout
mount --bind {shlex.quote(ROOT)} /opt/.checkout && mount --bind {shlex.quote(ROOT)}/.venv /opt/hpcwatch
mount -t tmpfs tmpfs /tmp && mkdir -p /tmp/work && ln -s {shlex.quote(ROOT)} /tmp/work/hpcwatch
# A checkout under /tmp (the empty tmpfs hid it) is put back where it was.
[ -d {root}/.venv ] || {{ mkdir -p {root} && mount --bind /opt/.checkout {root}; }}
export PATH=/opt/hpcwatch/bin:$PATH HOME=/tmp
cd {shlex.quote(cwd)}
exec bash -e -o pipefail -c "$script"
"""
    proc = subprocess.run(["unshare", "--mount", "--net", "--fork", "bash", "-c", setup], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"{doc}: a block failed (rc {proc.returncode}):\n{proc.stderr[-6000:]}"
