"""Filesystems: Lustre, NFS, GPFS and BeeGFS throughput, metadata operations, fullness, top jobs by I/O; Lustre
recovery, health, disk I/O histograms and LNet; GPFS daemon state, waiters and health events."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    CLUSTER,
    HIGH_BAD_RATIO,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    heatmap,
    row,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-filesystems"
RI = "$__rate_interval"
FULL = ((None, "green"), (0.8, "orange"), (0.9, "red"))
LONG_WAIT = ((None, "green"), (60, "orange"), (300, "red"))  # seconds; HpcGpfsLongWaiters fires past 300


def build() -> Dashboard:
    c = CLUSTER
    job_bytes = f"sum by (jobid) (rate({n.LUSTRE_JOB_BYTES}{{{c}}}[{RI}]))"
    md = f'operation!~"{n.LUSTRE_DATA_OPS}",{c}'
    panels = [
        row("Lustre"),
        # The client panels sum every node's series: pre-aggregated per cluster (alerts/recording.py).
        timeseries("Lustre client throughput",
                   "Bytes per second all clients read and wrote, per filesystem and operation (5-minute rate).",
                   [Q(f"sum by (fs, operation) ({n.REC_LUSTRE_CLIENT_BYTES_RATE}{{{c}}})", "{{fs}} {{operation}}")],
                   "Bps", min_=0),
        timeseries("Lustre client operations", "Operations per second from all clients, by operation "
                   "(open, close, getattr, ... are metadata; 5-minute rate).",
                   [Q(f"sum by (fs, operation) ({n.REC_LUSTRE_CLIENT_OPS_RATE}{{{c}}})", "{{fs}} {{operation}}")],
                   "ops", min_=0),
        bargauge("OST/MDT space used", "Share of each target's space in use; Lustre slows and fails writes "
                 "as OSTs fill.", [Q(f"1 - {n.LUSTRE_TARGET_AVAILABLE}{{{c}}} / {n.LUSTRE_TARGET_CAPACITY}{{{c}}}",
                                     "{{target}}", instant=True)], thresholds=FULL),
        bargauge("OST/MDT inodes used", "Share of each target's inodes in use; a full MDT stops file creation.",
                 [Q(f"1 - {n.LUSTRE_TARGET_FILES_FREE}{{{c}}} / {n.LUSTRE_TARGET_FILES}{{{c}}}", "{{target}}",
                    instant=True)], thresholds=FULL),
        table("Top jobs by I/O", "The ten jobs moving the most bytes on Lustre now (server job_stats).",
              [Q(f"topk(10, {job_bytes})", "bytes/s")], "Bps", hide=("Time",), w=12, sort_by="bytes/s"),
        table("Top jobs by metadata operations", "The ten jobs making the most metadata operations now.",
              [Q(f"topk(10, sum by (jobid) (rate({n.LUSTRE_JOB_OPS}{{{md}}}[{RI}])))", "ops/s")], "ops",
              hide=("Time",), w=12, sort_by="ops/s"),
        table("Lustre targets in recovery", "Targets recovering after a restart or failover: clients reconnected of "
              "those expected, and the time left before the missing ones are evicted.",
              [Q(f"max by (target) ({n.LUSTRE_RECOVERY_CONNECTED}{{{c}}})", "reconnected"),
               Q(f"max by (target) ({n.LUSTRE_RECOVERY_EXPECTED}{{{c}}}) and on (target) "
                 f"max by (target) ({n.LUSTRE_RECOVERY_CONNECTED}{{{c}}})", "expected"),
               Q(f"max by (target) ({n.LUSTRE_RECOVERY_REMAINING}{{{c}}})", "seconds left")],
              hide=("Time",), w=12),
        timeseries("Lustre hosts unhealthy", "Hosts whose health_check says NOT HEALTHY, and hosts after an LBUG "
                   "(reboot needed).",
                   [Q(f"sum(1 - {n.LUSTRE_HEALTHY}{{{c}}})", "NOT HEALTHY"), Q(f"sum({n.LUSTRE_LBUG}{{{c}}})", "LBUG")],
                   "none", ANY_BAD, 0),
        heatmap("OST/MDT disk I/O time", "Disk I/Os per second by how long they took to complete (OSD brw_stats, "
                "reads and writes); a shift right is a slow disk or an overloaded target.",
                f"sum by (le) (rate({n.LUSTRE_BRW_IO_TIME}_bucket{{{c}}}[{RI}]))"),
        heatmap("OST/MDT disk I/O size", "Disk I/Os per second by size (OSD brw_stats); small I/Os on OSTs mean "
                "fragmented files or small-block writers.",
                f"sum by (le) (rate({n.LUSTRE_BRW_IO_SIZE}_bucket{{{c}}}[{RI}]))", "bytes"),
        timeseries("LNet drops and health events", "Messages LNet dropped, and resends and timeouts by cause "
                   "(lnetctl health counters), per host: a bad link or router shows here first.",
                   [Q(f"sum by (instance) (rate({n.LNET_DROPPED}{{{c}}}[{RI}]))", "{{instance}} dropped"),
                    Q(f"sum by (instance, event) (rate({n.LNET_HEALTH_EVENTS}{{{c}}}[{RI}]))",
                      "{{instance}} {{event}}")], "pps", ANY_BAD, 0, w=24),
        row("NFS"),
        timeseries("NFS throughput", "Bytes per second read and written per mount (5-minute rate).",
                   [Q(f'sum by (mountpoint) ({n.REC_NFS_IO_BYTES_RATE}{{kind=~"{n.NFS_READ_KINDS}",{c}}})',
                      "{{mountpoint}} read"),
                    Q(f'sum by (mountpoint) ({n.REC_NFS_IO_BYTES_RATE}{{kind=~"{n.NFS_WRITE_KINDS}",{c}}})',
                      "{{mountpoint}} write")],
                   "Bps", min_=0),
        timeseries("NFS operations", "RPC operations per second per mount and operation.",
                   [Q(f"sum by (mountpoint, operation) (rate({n.NFS_REQUESTS}{{{c}}}[{RI}]))",
                      "{{mountpoint}} {{operation}}")], "ops", min_=0),
        timeseries("NFS major timeouts", "RPCs that timed out completely (the server did not answer): "
                   "clients hang on these mounts.",
                   [Q(f"sum by (instance, mountpoint) (increase({n.NFS_MAJOR_TIMEOUTS}{{{c}}}[{RI}]))",
                      "{{instance}} {{mountpoint}}")], "none", ANY_BAD, 0, w=24),
        row("GPFS and BeeGFS"),
        timeseries("GPFS throughput", "Bytes per second read and written per GPFS filesystem (mmpmon fs_io_s).",
                   [Q(f"sum by (fs) (rate({n.GPFS_READ}{{{c}}}[{RI}]))", "{{fs}} read"),
                    Q(f"sum by (fs) (rate({n.GPFS_WRITE}{{{c}}}[{RI}]))", "{{fs}} write")],
                   "Bps", min_=0),
        bargauge("GPFS space used", "Share of each GPFS filesystem in use (mmdf).",
                 [Q(f"1 - max by (fs) ({n.GPFS_FREE}{{{c}}}) / max by (fs) ({n.GPFS_SIZE}{{{c}}})",
                    "{{fs}}", instant=True)], thresholds=HIGH_BAD_RATIO),
        timeseries("GPFS daemon states", "Nodes by the state of their GPFS daemon (mmgetstate): anything but "
                   "active means the node's GPFS filesystems are gone.",
                   [Q(f"sum by (state) ({n.GPFS_STATE}{{{c}}})", "{{state}}")], "none", min_=0),
        timeseries("GPFS longest waiter", "The longest wait of a GPFS daemon thread per node (mmdiag --waiters); "
                   "minutes-long waiters mean stuck I/O, tokens or RPCs.",
                   [Q(f"max by (instance) ({n.GPFS_WAITER_LONGEST}{{{c}}})", "{{instance}}")], "s", LONG_WAIT, 0),
        table("GPFS health events", "Events mmhealth reports active now, per node and component.",
              [Q(f"max by (instance, component, entity, event, severity) ({n.GPFS_HEALTH_EVENT}{{{c}}})", "active")],
              hide=("Time", "active"), w=24),
        timeseries("BeeGFS operations", "Operations per second on BeeGFS metadata and storage servers.",
                   [Q(f"sum by (nodetype, operation) (rate({n.BEEGFS_OPERATIONS}{{{c}}}[{RI}]))",
                      "{{nodetype}} {{operation}}")], "ops", min_=0, w=24),
    ]
    return Dashboard(UID, "hpcwatch / Filesystems", "Parallel and network filesystems: throughput, metadata "
                     "operations, fullness, the jobs doing the I/O, Lustre recovery, health, disk I/O histograms "
                     "and LNet, GPFS daemon state, waiters and health events.", "filesystems", panels,
                     [cluster_variable(f'{n.UP}{{job=~"{n.EXPORTER_JOB_RE}"}}')], ("filesystems",))
