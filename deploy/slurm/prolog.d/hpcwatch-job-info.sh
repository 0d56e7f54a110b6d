#!/bin/sh
# hpcwatch: record the account, partition and owner Slurm gave this job, for the jobs collector's
# hpc_job_info{account,partition} (a job's cgroup tells the collector its uid, never its account).
#
# Install as a Prolog (slurm.conf: Prolog=/etc/slurm/prolog.d/*), with its twin in epilog.d.
# Writes $HPCWATCH_JOB_INFO_DIR/<jobid> (default /run/hpcwatch/jobs): NAME=value entries, each ended by
# a NUL byte (the format of /proc/<pid>/environ), for SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION,
# SLURM_JOB_USER and SLURM_JOB_UID as slurmd hands them to the prolog. An environment value cannot hold
# a NUL, so no account name (newlines, quotes, `|`, UTF-8) can break an entry; each value is cut to
# 1024 bytes (the collector keeps 128 characters of a label).
# Never fails the job: every error exits 0 (a missing file only costs the labels, not the job).

PATH=/usr/bin:/bin   # slurmd runs prologs without a search path
dir="${HPCWATCH_JOB_INFO_DIR:-/run/hpcwatch/jobs}"
job="${SLURM_JOB_ID:-}"

case "$job" in
    ''|*[!0-9]*) exit 0 ;;   # not a job id we can name a file after
esac

# World-readable whatever slurmd's umask: the node agent runs as an unprivileged user.
(umask 022 && mkdir -p "$dir") 2>/dev/null || exit 0
tmp="$dir/.$job.$$"
if printf 'SLURM_JOB_ACCOUNT=%.1024s\000SLURM_JOB_PARTITION=%.1024s\000SLURM_JOB_USER=%.1024s\000SLURM_JOB_UID=%.20s\000' \
        "${SLURM_JOB_ACCOUNT:-}" "${SLURM_JOB_PARTITION:-}" "${SLURM_JOB_USER:-}" "${SLURM_JOB_UID:-}" \
        > "$tmp" 2>/dev/null; then
    chmod 0644 "$tmp" 2>/dev/null
    mv -f "$tmp" "$dir/$job" 2>/dev/null   # atomic: the collector never reads half a file
fi
rm -f "$tmp" 2>/dev/null
exit 0
