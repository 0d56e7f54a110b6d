"""The container image the Kubernetes manifests run: `make image` builds it without a registry pull
(debootstrap's Debian 12 as the base, buildah to assemble), and it runs `hpcwatch` as a non-root user.

The test runs `make image` as an operator would (the first build debootstraps the base root
filesystem into the cache outside the repository, minutes; later builds reuse it and buildah's
layers), then `hpcwatch version`, `hpcwatch serve --help` and a real scrape of `hpcwatch serve` in
the image with podman. Where this sandbox cannot run a container, it inspects the image instead
(user, entrypoint, the installed files) and says so in the test output.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time

import pytest
from helpers import IN_CI, require_binary

from hpcwatch.harness.util import free_port, http_get
from hpcwatch.version import __version__

pytestmark = [pytest.mark.slow, pytest.mark.daemons]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = f"localhost/hpcwatch:{__version__}"
# Errors that mean "this sandbox cannot start containers", not "the image is broken".
SANDBOX = ("cgroup", "OCI runtime", "OCI permission", "setrlimit", "netavark", "slirp4netns", "newuidmap",
           "operation not permitted", "mount", "namespace", "executable file not found")


@pytest.fixture(scope="module")
def image(request) -> dict:
    """Build with `make image`; the image's inspect document (timing and size reported)."""
    if os.geteuid() != 0:
        msg = "building the image needs root (debootstrap, buildah): run the tests as root"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    for name in ("debootstrap", "buildah", "podman", "make"):
        require_binary(name)
    began = time.monotonic()
    proc = subprocess.run(["make", "-s", "-C", ROOT, "image"], capture_output=True, text=True, timeout=2400)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(subprocess.run(["podman", "image", "inspect", IMAGE], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)[0]
    _say(request, f"make image: {took:.0f}s; {IMAGE}: {doc['Size'] / 1e6:.0f} MB")
    return doc


def _say(request, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


def _podman(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=timeout)


# How to start a container here, most ordinary first: sandboxes refuse podman's default rlimits
# (raise above the hard limit) or crun's cgroup setup on hybrid cgroup hierarchies.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")
WAYS = ((), ULIMITS, ("--runtime", "runc", *ULIMITS))


@functools.cache
def _run_args() -> tuple[tuple[str, ...] | None, str]:
    """(podman global+run options that start a container here, or None; the last refusal)."""
    why = ""
    for way in WAYS:
        runtime, rest = (way[:2], way[2:]) if way[:1] == ("--runtime",) else ((), way)
        proc = _podman(*runtime, "run", "--rm", "--network=none", *rest, "--entrypoint=/bin/true", IMAGE)
        if proc.returncode == 0:
            return way, ""
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"status {proc.returncode}"
        if not any(s.lower() in proc.stderr.lower() for s in SANDBOX):
            raise AssertionError(f"podman run failed for another reason than the sandbox: {proc.stderr}")
    return None, why


def _run(*argv: str, detach: bool = False) -> subprocess.CompletedProcess:
    way, _ = _run_args()
    runtime, rest = (way[:2], way[2:]) if way[:1] == ("--runtime",) else ((), way)
    return _podman(*runtime, "run", *(("-d",) if detach else ("--rm",)), *rest, *argv)


def test_the_image_is_what_the_manifests_run(image):
    cfg = image["Config"]
    assert image["RepoTags"] and IMAGE in image["RepoTags"]
    assert cfg["User"] == "19466:19466"
    assert cfg["Entrypoint"] == ["/opt/hpcwatch/bin/hpcwatch"] and cfg["Cmd"] == ["serve"]
    assert {"19466/tcp", "19467/tcp"} <= set(cfg.get("ExposedPorts") or {})
    rendered = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy", "kubernetes", "base")],
                              capture_output=True, text=True, timeout=120, check=True).stdout
    assert rendered.count(f"image: {IMAGE}") == 2


def test_the_image_installs_hpcwatch_and_the_slurm_client(image, request):
    """The files, read from the image itself (works whether or not containers can run here)."""
    cid = _podman("create", IMAGE).stdout.strip()
    try:
        mount = _podman("mount", cid)
        assert mount.returncode == 0, mount.stderr
        root = mount.stdout.strip()
        for path in ("opt/hpcwatch/bin/hpcwatch", "usr/bin/python3", "usr/bin/squeue", "usr/bin/sacct",
                     "usr/bin/sdiag"):
            assert os.path.exists(os.path.join(root, path)), path
        site = [p for p in os.listdir(os.path.join(root, "opt/hpcwatch/lib")) if p.startswith("python3")]
        assert os.path.isdir(os.path.join(root, "opt/hpcwatch/lib", site[0], "site-packages", "hpcwatch"))
        assert not os.path.exists(os.path.join(root, "opt/hpcwatch/bin/pip")), "pip is left out of the image"
        with open(os.path.join(root, "etc/passwd")) as fh:
            assert any(line.startswith("hpcwatch:x:19466:19466:") for line in fh)
    finally:
        _podman("umount", cid)
        _podman("rm", "-f", cid)


def test_hpcwatch_runs_in_the_image(image, request):
    way, why = _run_args()
    if way is None:
        _say(request, f"podman cannot start a container in this sandbox ({why}); the image was inspected instead")
        return
    if way:
        _say(request, f"containers start here with: podman {' '.join(way)}")
    version = _run("--network=none", IMAGE, "version")
    assert version.returncode == 0 and version.stdout.strip() == f"hpcwatch {__version__}", version.stderr
    helptext = _run("--network=none", IMAGE, "serve", "--help")
    assert helptext.returncode == 0 and "--web.listen-address" in helptext.stdout, helptext.stderr
    # Every runtime requirement of the installed distribution is there (the lock file kept up with pyproject).
    check = ("import importlib.metadata as m, re\n"
             "reqs = [r for r in m.requires('hpcwatch') if 'extra ==' not in r]\n"
             "missing = [r for r in reqs if not list(m.distributions(name=re.split(r'[<>=!~;\\[ ]', r)[0]))]\n"
             "print(missing); raise SystemExit(1 if missing else 0)")
    deps = _run("--network=none", "--entrypoint=/opt/hpcwatch/bin/python", IMAGE, "-c", check)
    assert deps.returncode == 0, deps.stdout + deps.stderr
    # The node agent as the DaemonSet runs it (nobody, read-only root filesystem), answering a scrape.
    port = free_port()
    started = _run("--network=host", "--user=65534:65534", "--read-only", IMAGE, "serve", "--agent=node",
                   f"--web.listen-address=127.0.0.1:{port}", detach=True)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, _podman("logs", cid).stderr
            time.sleep(0.5)
        assert re.search(rb'\nhpcwatch_collector_success\{collector="node"\} 1(\.0)?\n', body), body[:2000]
    finally:
        _podman("rm", "-f", cid)
