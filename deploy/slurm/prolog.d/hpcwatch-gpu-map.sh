#!/bin/sh
# hpcwatch: record which GPUs this Slurm job was given, for the gpu collector's job mapping
# (hpc_gpu_job_info) on GPUs where the job's processes cannot be found through their cgroups yet
# (allocated but idle GPUs, containers, processes outside the job cgroup).
#
# Install as a Prolog (slurm.conf: Prolog=/etc/slurm/prolog.d/*), with its twin in epilog.d.
# Writes $HPCWATCH_GPU_MAP_DIR/<jobid> (default /run/hpcwatch/gpu-jobs) holding the job's GPUs, one per
# line, exactly as Slurm names them: NVML indices (SLURM_JOB_GPUS / CUDA_VISIBLE_DEVICES / GPU_DEVICE_ORDINAL)
# or GPU-/MIG- UUIDs where the Slurm version hands the prolog UUIDs. The collector accepts both.
# Never fails the job: every error exits 0 (a missing map only costs attribution, not the job).

dir="${HPCWATCH_GPU_MAP_DIR:-/run/hpcwatch/gpu-jobs}"
job="${SLURM_JOB_ID:-}"

case "$job" in
    ''|*[!0-9]*) exit 0 ;;   # not a job id we can name a file after
esac

gpus="${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-${GPU_DEVICE_ORDINAL:-}}}"
[ -n "$gpus" ] || exit 0
case "$gpus" in
    NoDevFiles|none|'') exit 0 ;;
esac

# World-readable whatever slurmd's umask: the node agent runs as an unprivileged user.
(umask 022 && mkdir -p "$dir") 2>/dev/null || exit 0
tmp="$dir/.$job.$$"
# One token per line; only index or UUID characters pass, anything else is dropped here already.
printf '%s\n' "$gpus" | tr ',' '\n' | grep -E '^([0-9]{1,4}|(GPU|MIG)-[0-9A-Za-z/_-]{1,128})$' > "$tmp" 2>/dev/null
if [ -s "$tmp" ]; then
    chmod 0644 "$tmp" 2>/dev/null
    mv -f "$tmp" "$dir/$job" 2>/dev/null   # atomic: the collector never reads half a file
fi
rm -f "$tmp" 2>/dev/null
exit 0
