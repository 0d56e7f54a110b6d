"""deploy/slurm prolog/epilog helpers: what the prolog writes is what the gpu collector reads."""

from __future__ import annotations

import os
import subprocess

from hpcwatch.exporters.gpu.jobs import read_job_map

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "slurm")
PROLOG = os.path.join(DEPLOY, "prolog.d", "hpcwatch-gpu-map.sh")
EPILOG = os.path.join(DEPLOY, "epilog.d", "hpcwatch-gpu-map.sh")


def run(script: str, map_dir: str, **env: str) -> subprocess.CompletedProcess:
    # Slurm runs prologs with an almost empty environment; so do we.
    return subprocess.run(
        ["/bin/sh", script],
        env={"PATH": "/usr/bin:/bin", "HPCWATCH_GPU_MAP_DIR": map_dir, **env},
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_prolog_writes_indices_and_uuids_and_epilog_removes_them(tmp_path):
    d = str(tmp_path / "gpu-jobs")
    assert run(PROLOG, d, SLURM_JOB_ID="501", SLURM_JOB_GPUS="0,3").returncode == 0
    assert (
        run(
            PROLOG,
            d,
            SLURM_JOB_ID="502",
            CUDA_VISIBLE_DEVICES="GPU-5c8e2a3f-1111-2222-3333-444455556666,MIG-aaaa-bbbb",
        ).returncode
        == 0
    )
    assert read_job_map(d) == {
        "0": {"501"},
        "3": {"501"},
        "GPU-5c8e2a3f-1111-2222-3333-444455556666": {"502"},
        "MIG-aaaa-bbbb": {"502"},
    }
    assert sorted(os.listdir(d)) == ["501", "502"]  # no temp file left behind
    assert run(EPILOG, d, SLURM_JOB_ID="501").returncode == 0
    assert read_job_map(d) == {"GPU-5c8e2a3f-1111-2222-3333-444455556666": {"502"}, "MIG-aaaa-bbbb": {"502"}}


def test_prolog_never_fails_the_job_and_writes_nothing_it_cannot_vouch_for(tmp_path):
    d = str(tmp_path / "gpu-jobs")
    assert run(PROLOG, d, SLURM_JOB_ID="503").returncode == 0  # no GPUs
    assert run(PROLOG, d, SLURM_JOB_ID="../../etc/x", SLURM_JOB_GPUS="0").returncode == 0
    assert run(PROLOG, d, SLURM_JOB_ID="504", SLURM_JOB_GPUS="$(reboot);x,`id`").returncode == 0
    assert not os.path.exists(d) or os.listdir(d) == []
    unwritable = str(tmp_path / "file")
    open(unwritable, "w").close()
    assert run(PROLOG, unwritable + "/sub", SLURM_JOB_ID="505", SLURM_JOB_GPUS="1").returncode == 0
    assert run(EPILOG, d, SLURM_JOB_ID="*").returncode == 0
