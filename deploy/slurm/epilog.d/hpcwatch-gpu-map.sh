#!/bin/sh
# hpcwatch: forget the job's GPUs when it ends (twin of prolog.d/hpcwatch-gpu-map.sh).
# Never fails the epilog: a stale file only leaves hpc_gpu_job_info for a finished job until cleared.

dir="${HPCWATCH_GPU_MAP_DIR:-/run/hpcwatch/gpu-jobs}"
job="${SLURM_JOB_ID:-}"

case "$job" in
    ''|*[!0-9]*) exit 0 ;;
esac

rm -f "$dir/$job" 2>/dev/null
exit 0
