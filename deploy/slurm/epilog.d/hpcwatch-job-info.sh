#!/bin/sh
# hpcwatch: forget the job's account and partition when it ends (twin of prolog.d/hpcwatch-job-info.sh).
# Never fails the epilog: a stale file is never read for a job that is gone (the collector only looks up
# jobs that have a cgroup) and /run is emptied at boot.

PATH=/usr/bin:/bin
dir="${HPCWATCH_JOB_INFO_DIR:-/run/hpcwatch/jobs}"
job="${SLURM_JOB_ID:-}"

case "$job" in
    ''|*[!0-9]*) exit 0 ;;
esac

rm -f "$dir/$job" 2>/dev/null
exit 0
