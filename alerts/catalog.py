"""hpcwatch's infrastructure alerts, grouped by what they watch, each with its firing and quiet case.

Severity: `critical` pages — the cluster or a scheduler is down, or a node has become a black hole
that fails every job sent to it (GPU lost or corrupting, fabric port down); `warning` opens a
ticket — degradation someone should fix this week; `info` is recorded only (dashboards, no one is
notified). Thresholds sit next to the rule they belong to; every metric name comes from
hpcwatch.metric_names. Only PromQL that Prometheus 2.42 and vmalert 1.79 both evaluate.
"""

from __future__ import annotations

from hpcwatch.alerts.model import AlertRule, Case

from hpcwatch import metric_names as n

EXPORTER = f'job=~"{n.EXPORTER_JOB_RE}"'
# Labels of the test series: a node agent's (with `node`, as the shipped scrape config sets it) and the
# cluster agent's.
N1 = 'cluster="c1",instance="n1:19466",job="hpcwatch-node",node="n1"'
C1 = 'cluster="c1",instance="head:19467",job="hpcwatch-cluster"'
N1L = {"cluster": "c1", "instance": "n1:19466", "job": "hpcwatch-node", "node": "n1"}
C1L = {"cluster": "c1", "instance": "head:19467", "job": "hpcwatch-cluster"}


def _targets() -> list[AlertRule]:
    """Silence that no `up == 0` can see: targets service discovery lost, a cluster without its agent."""
    node, cluster = f'job="{n.NODE_AGENT_JOB}"', f'job="{n.CLUSTER_AGENT_JOB}"'
    return [
        AlertRule(
            "HpcwatchTargetsAbsent", f"absent({n.UP}{{{cluster}}}) or absent({n.UP}{{{node}}})", "warning",
            "exporter", "Prometheus has no {{ $labels.job }} target",
            "Service discovery has given Prometheus no target of job {{ $labels.job }} for 10 minutes "
            "(an empty or missing targets/*.yml file, a renamed job): nothing from those agents is "
            "scraped, so no other alert about them can fire.",
            Case(((f"up{{{N1}}}", "1x20"),), "15m", {"job": n.CLUSTER_AGENT_JOB}),
            Case(((f"up{{{N1}}}", "1x20"), (f"up{{{C1}}}", "1x20")), "15m"), "10m"),
        AlertRule(
            "HpcwatchClusterAgentMissing",
            f"group by (cluster) ({n.UP}{{{node}}}) unless on (cluster) group by (cluster) ({n.UP}{{{cluster}}})",
            "warning", "exporter", "Cluster {{ $labels.cluster }} has node agents but no cluster agent",
            "Prometheus scrapes node agents of cluster {{ $labels.cluster }} but no cluster agent target "
            "carries that cluster label: the scheduler, its SLOs and their pages are blind.",
            Case(((f"up{{{N1}}}", "1x20"), ('up{cluster="c2",instance="head2:19467",job="hpcwatch-cluster"}',
                                             "1x20")), "15m", {"cluster": "c1"}),
            Case(((f"up{{{N1}}}", "1x20"), (f"up{{{C1}}}", "1x20")), "15m"), "10m"),
    ]


def _exporter() -> list[AlertRule]:
    return [
        AlertRule(
            "HpcwatchExporterDown", f"{n.UP}{{{EXPORTER}}} == 0", "warning", "exporter",
            "hpcwatch exporter {{ $labels.instance }} is down",
            "Prometheus cannot scrape the hpcwatch agent at {{ $labels.instance }} (job {{ $labels.job }}) "
            "for 5 minutes; every metric from that host is missing and its other alerts are inhibited.",
            Case(((f"up{{{N1}}}", "0x10"),), "10m", N1L),
            Case(((f"up{{{N1}}}", "1x10"),), "10m"), "5m"),
        AlertRule(
            "HpcwatchCollectorFailing", f"{n.COLLECTOR_SUCCESS} == 0", "warning", "exporter",
            "Collector {{ $labels.collector }} failing on {{ $labels.instance }}",
            "The {{ $labels.collector }} collector on {{ $labels.instance }} has raised or timed out on every "
            "scrape for 15 minutes; its families are missing from the scrape.",
            Case(((f'{n.COLLECTOR_SUCCESS}{{collector="gpu",{N1}}}', "0x20"),), "20m", {**N1L, "collector": "gpu"}),
            Case(((f'{n.COLLECTOR_SUCCESS}{{collector="gpu",{N1}}}', "0x5 1x15"),), "20m"), "15m"),
        AlertRule(
            "HpcwatchSourceStale",
            f'time() - {n.SOURCE_LAST_SUCCESS}{{source!~"{n.SCHED_SOURCE_RE}"}} > 900', "warning", "exporter",
            "Source {{ $labels.source }} on {{ $labels.instance }} is stale",
            "The {{ $labels.source }} snapshot source on {{ $labels.instance }} last refreshed successfully "
            "{{ $value | humanizeDuration }} ago; scrapes serve its last good snapshot.",
            # The timestamp stays at 60 (1 minute in) while time moves on: stale after 15 minutes.
            Case(((f'{n.SOURCE_LAST_SUCCESS}{{source="lustre_jobstats",{C1}}}', "60x30"),), "25m",
                 {**C1L, "source": "lustre_jobstats"}, "24m 0s"),
            Case(((f'{n.SOURCE_LAST_SUCCESS}{{source="lustre_jobstats",{C1}}}', "0+60x30"),), "25m"), "5m"),
        AlertRule(
            "HpcwatchParseErrors", f"increase({n.PARSE_ERRORS}[1h]) > 0", "info", "exporter",
            "{{ $labels.instance }} skipped unreadable {{ $labels.source }} records",
            "A parser on {{ $labels.instance }} skipped records of {{ $labels.source }} in the last hour "
            "(the source's format may have changed); the exporter log names the file.",
            Case(((f'{n.PARSE_ERRORS}{{source="node_meminfo",{N1}}}', "0 0 1 2 3"),), "4m",
                 {**N1L, "source": "node_meminfo"}),
            Case(((f'{n.PARSE_ERRORS}{{source="node_meminfo",{N1}}}', "2x4"),), "4m")),
        # Reads of files that exist failing (EIO from a driver, EACCES for the agent's user). A scrape with
        # one also reports success 0, so when every scrape fails HpcwatchCollectorFailing fires as well;
        # this one also catches the intermittent failures that leave success at 1 most of the time. The
        # 15-minute window with `for: 15m` ignores one glitch and tickets errors that keep coming.
        AlertRule(
            "HpcwatchReadErrors", f"increase({n.READ_ERRORS}[15m]) > 0", "warning", "exporter",
            "{{ $labels.instance }} cannot read files of {{ $labels.source }}",
            "Files of the {{ $labels.source }} collector on {{ $labels.instance }} exist but have failed to "
            "read (I/O error, permission denied) for 15 minutes; their series are missing from those scrapes. "
            "The agent log names the file and the error.",
            Case(((f'{n.READ_ERRORS}{{source="jobs",{N1}}}', "0+2x30"),), "25m", {**N1L, "source": "jobs"}),
            Case(((f'{n.READ_ERRORS}{{source="jobs",{N1}}}', "0 3x29"),), "25m"), "15m"),
        # The scheduler's ledger could not be saved: it serves the counters it last saved, so
        # hpc_scheduler_jobs_finished_total stops moving and the job SLOs see no new jobs. Saves are tried
        # on every change; a 10-minute window held 15 minutes ignores one failed save and its retry.
        AlertRule(
            "HpcwatchStateSaveFailing", f"increase({n.STATE_SAVE_FAILURES}[10m]) > 0", "warning", "exporter",
            "{{ $labels.collector }} on {{ $labels.instance }} cannot save its state: finished-job counters frozen",
            "The {{ $labels.collector }} collector on {{ $labels.instance }} has failed to save its state file "
            "for 15 minutes. It keeps counting in memory but serves the counters it last saved, so finished jobs "
            "stop showing in hpc_scheduler_jobs_finished_total and the job SLOs; nothing is lost once a save "
            "succeeds. The agent log says why (disk full, read-only, permissions).",
            Case(((f'{n.STATE_SAVE_FAILURES}{{collector="slurm",{C1}}}', "0+1x30"),), "25m",
                 {**C1L, "collector": "slurm"}),
            Case(((f'{n.STATE_SAVE_FAILURES}{{collector="slurm",{C1}}}', "0 1x29"),), "25m"), "15m"),
        _series_growth(),
    ]


# Series growth per target (docs/scaling.md, "Protections"). Job churn adds and removes series all day
# (16 per job on a node agent): a node refilled with 128 one-core jobs adds ~2,000 in an hour, and its
# total falls back as they end. A leak (a label whose values never repeat) adds series that stay. The
# alert wants both: many new series an hour AND a total still climbing, for an hour; by then the target
# is on its way to sample_limit, where its whole scrape fails.
SERIES_ADDED_PER_HOUR = 4000
NET_GROWTH_PER_HOUR = 1000


def _series_growth() -> AlertRule:
    target = f'job=~"{n.EXPORTER_JOB_RE}|{n.NODE_EXPORTER_JOB}"'
    return AlertRule(
        "HpcwatchTargetSeriesGrowing",
        f"sum_over_time({n.SCRAPE_SERIES_ADDED}{{{target}}}[1h]) > {SERIES_ADDED_PER_HOUR} "
        f"and deriv({n.SCRAPE_SAMPLES_SCRAPED}{{{target}}}[1h]) * 3600 > {NET_GROWTH_PER_HOUR}",
        "warning", "exporter", "Series from {{ $labels.instance }} keep growing",
        f"Target {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) added more than {SERIES_ADDED_PER_HOUR:,} new "
        f"series in the last hour while its total grew by more than {NET_GROWTH_PER_HOUR:,} an hour, for an hour: "
        "a label whose values never repeat, or per-job series past what the cap allows. Past sample_limit every "
        "scrape of the target fails.",
        # 100 new series a minute and 100 more in total each minute (a leak) vs the same churn, flat total.
        Case(((f"{n.SCRAPE_SERIES_ADDED}{{{N1}}}", "100x150"), (f"{n.SCRAPE_SAMPLES_SCRAPED}{{{N1}}}", "600+100x150")),
             "140m", N1L),
        Case(((f"{n.SCRAPE_SERIES_ADDED}{{{N1}}}", "100x150"), (f"{n.SCRAPE_SAMPLES_SCRAPED}{{{N1}}}", "2600x150")),
             "140m"), "1h")


def _node() -> list[AlertRule]:
    return [
        AlertRule(
            "HpcNodeMemoryPressure", f"rate({n.NODE_PRESSURE_MEMORY_STALLED}[5m]) > 0.1", "warning",
            "node", "Memory pressure on {{ $labels.instance }}",
            "All non-idle tasks on {{ $labels.instance }} stalled on memory {{ $value | humanizePercentage }} "
            "of the time over 5 minutes (PSI memory full): the node is thrashing or reclaiming hard.",
            Case(((f"{n.NODE_PRESSURE_MEMORY_STALLED}{{{N1}}}", "0+30x30"),), "20m", N1L, "50%"),
            Case(((f"{n.NODE_PRESSURE_MEMORY_STALLED}{{{N1}}}", "0+1x30"),), "20m"), "10m"),
        AlertRule(
            "HpcNodeOOMKills", f"increase({n.NODE_OOM_KILLS}[10m]) > 0", "warning", "node",
            "OOM killer ran on {{ $labels.instance }}",
            "The kernel killed processes for lack of memory on {{ $labels.instance }} in the last 10 minutes "
            "(this counts job cgroup OOMs too: see the Jobs dashboard for which job).",
            Case(((f"{n.NODE_OOM_KILLS}{{{N1}}}", "0 0 0 1 1"),), "4m", N1L),
            Case(((f"{n.NODE_OOM_KILLS}{{{N1}}}", "3x20"),), "15m")),
        AlertRule(
            "HpcNodeNetworkLinkFlapping", f"increase({n.NODE_NETWORK_CARRIER_CHANGES}[15m]) > 4", "warning", "node",
            "Network link {{ $labels.device }} on {{ $labels.instance }} is flapping",
            "The carrier of {{ $labels.device }} on {{ $labels.instance }} went up or down {{ $value }} times in "
            "15 minutes: a bad cable, transceiver or switch port; jobs using it see stalls and retransmits.",
            Case(((f'{n.NODE_NETWORK_CARRIER_CHANGES}{{device="ib0",{N1}}}', "0+1x20"),), "16m",
                 {**N1L, "device": "ib0"}, "15"),
            Case(((f'{n.NODE_NETWORK_CARRIER_CHANGES}{{device="ib0",{N1}}}', "2x20"),), "16m"), "5m"),
        AlertRule(
            "HpcNodeTextfileScrapeError", f"{n.NODE_TEXTFILE_ERROR} == 1", "warning", "node",
            "A textfile on {{ $labels.instance }} cannot be read",
            "The textfile collector on {{ $labels.instance }} skipped a *.prom file or family for 15 minutes "
            "(parse error, timestamps, a clash with hpcwatch's own families, conflicting HELP or TYPE): "
            "the prolog, epilog or cron metrics it should carry are missing.",
            Case(((f"{n.NODE_TEXTFILE_ERROR}{{{N1}}}", "1x20"),), "20m", N1L),
            Case(((f"{n.NODE_TEXTFILE_ERROR}{{{N1}}}", "1x5 0x15"),), "20m"), "15m"),
    ]


def _gpu() -> list[AlertRule]:
    g = f'{N1},gpu="0",uuid="GPU-0"'
    gl = {**N1L, "gpu": "0", "uuid": "GPU-0"}

    def reason(value: str, seq: str) -> tuple[str, str]:
        return (f'{n.GPU_CLOCK_EVENT}{{reason="{value}",{g}}}', seq)

    return [
        AlertRule(
            "HpcGpuCriticalXid", f'increase({n.GPU_XID_ERRORS}{{xid=~"{n.GPU_CRITICAL_XIDS}"}}[10m]) > 0',
            "critical", "gpu", "GPU {{ $labels.gpu }} on {{ $labels.instance }} reported XID {{ $labels.xid }}",
            "XID {{ $labels.xid }} on GPU {{ $labels.gpu }} ({{ $labels.uuid }}) of {{ $labels.instance }} "
            "means the GPU needs a reset, a drain or replacing; jobs on it fail or compute garbage.",
            Case(((f'{n.GPU_XID_ERRORS}{{xid="79",{g}}}', "0 0 1 1"),), "3m", {**gl, "xid": "79"}),
            # XID 13 (graphics engine exception) is an application error: no alert.
            Case(((f'{n.GPU_XID_ERRORS}{{xid="13",{g}}}', "0 0 5 9"),), "3m")),
        AlertRule(
            "HpcGpuEccUncorrectable",
            f'increase({n.GPU_ECC_ERRORS}{{type="uncorrected",counter="volatile"}}[10m]) > 0', "critical", "gpu",
            "Uncorrectable ECC errors on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} hit uncorrectable memory "
            "errors: the jobs on it have corrupt data or crashed.",
            Case(((f'{n.GPU_ECC_ERRORS}{{type="uncorrected",counter="volatile",{g}}}', "0 0 2 2"),), "3m",
                 {**gl, "type": "uncorrected", "counter": "volatile"}),
            Case(((f'{n.GPU_ECC_ERRORS}{{type="corrected",counter="volatile",{g}}}', "0 5 10 15"),
                  (f'{n.GPU_ECC_ERRORS}{{type="uncorrected",counter="volatile",{g}}}', "0x3")), "3m")),
        AlertRule(
            "HpcGpuRowRemapFailure", f'{n.GPU_REMAPPED_ROWS}{{state="failure"}} > 0', "critical", "gpu",
            "Row remapping failed on GPU {{ $labels.gpu }} of {{ $labels.instance }}",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} could not remap a failing "
            "memory row: the GPU must be replaced.",
            Case(((f'{n.GPU_REMAPPED_ROWS}{{state="failure",{g}}}', "1x3"),), "2m", {**gl, "state": "failure"}),
            Case(((f'{n.GPU_REMAPPED_ROWS}{{state="failure",{g}}}', "0x3"),), "2m")),
        AlertRule(
            "HpcGpuRowRemapPending", f'{n.GPU_REMAPPED_ROWS}{{state="pending"}} > 0', "warning", "gpu",
            "GPU {{ $labels.gpu }} of {{ $labels.instance }} needs a reset to remap rows",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} has a row remap pending; "
            "it takes effect at the next GPU reset. Drain the node and reset the GPU.",
            Case(((f'{n.GPU_REMAPPED_ROWS}{{state="pending",{g}}}', "1x20"),), "15m", {**gl, "state": "pending"}),
            Case(((f'{n.GPU_REMAPPED_ROWS}{{state="pending",{g}}}', "0x20"),), "15m"), "10m"),
        AlertRule(
            "HpcGpuThermalThrottling",
            f'max without (reason) (avg_over_time({n.GPU_CLOCK_EVENT}{{reason=~"{n.GPU_THERMAL_REASONS}"}}[15m])) '
            "> 0.5", "warning", "gpu",
            "GPU {{ $labels.gpu }} of {{ $labels.instance }} is thermally throttled",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} ran with clocks held down "
            "for heat {{ $value | humanizePercentage }} of the last 15 minutes.",
            Case((reason("hw_thermal_slowdown", "1x40"),), "30m", gl, "100%"),
            Case((reason("hw_thermal_slowdown", "0x40"), reason("sw_power_cap", "1x40")), "30m"), "10m"),
        AlertRule(
            "HpcGpuPowerThrottling",
            f'max without (reason) (avg_over_time({n.GPU_CLOCK_EVENT}{{reason=~"{n.GPU_POWER_REASONS}"}}[15m])) '
            "> 0.5", "warning", "gpu",
            "GPU {{ $labels.gpu }} of {{ $labels.instance }} is power-brake throttled",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} ran with clocks held down by "
            "a hardware power brake or slowdown {{ $value | humanizePercentage }} of the last 15 minutes "
            "(a power supply or board problem, not the normal software power cap).",
            Case((reason("hw_power_brake_slowdown", "1x40"),), "30m", gl, "100%"),
            Case((reason("hw_power_brake_slowdown", "0x40"), reason("sw_power_cap", "1x40")), "30m"), "10m"),
        AlertRule(
            "HpcGpuLost", f"{n.GPU_UP} == 0", "critical", "gpu",
            "GPU {{ $labels.gpu }} on {{ $labels.instance }} is lost",
            "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }} stopped answering NVML "
            "(fell off the bus): jobs sent to this node will fail until it is drained and the GPU recovered.",
            Case(((f"{n.GPU_UP}{{{g}}}", "0x5"),), "5m", gl),
            Case(((f"{n.GPU_UP}{{{g}}}", "1x5"),), "5m"), "2m"),
    ]


def _fabric() -> list[AlertRule]:
    p = f'{N1},device="mlx5_0",port="1"'
    pl = {**N1L, "device": "mlx5_0", "port": "1"}

    def err(counter: str) -> str:
        return f'{n.FABRIC_ERRORS}{{counter="{counter}"}}'

    def err_series(counter: str, seq: str) -> tuple[str, str]:
        return (f'{n.FABRIC_ERRORS}{{counter="{counter}",{p}}}', seq)

    return [
        AlertRule(
            "HpcFabricPortDown", f"{n.FABRIC_PORT_UP} == 0", "critical", "fabric",
            "Fabric port {{ $labels.device }}/{{ $labels.port }} on {{ $labels.instance }} is down",
            "Port {{ $labels.port }} of {{ $labels.device }} on {{ $labels.instance }} is not Active with "
            "its physical link up: MPI jobs sent to this node will fail. Ports that are meant to be unused "
            "belong in --collector.fabric.ignored-devices.",
            Case(((f"{n.FABRIC_PORT_UP}{{{p}}}", "0x10"),), "10m", pl),
            Case(((f"{n.FABRIC_PORT_UP}{{{p}}}", "1x10"),), "10m"), "5m"),
        AlertRule(
            "HpcFabricPhysicalStateChanged", f"changes({n.FABRIC_PORT_PHYS_STATE}[15m]) > 0", "warning", "fabric",
            "Fabric port {{ $labels.device }}/{{ $labels.port }} on {{ $labels.instance }} changed physical state",
            "The physical link of {{ $labels.device }} port {{ $labels.port }} on {{ $labels.instance }} "
            "changed state {{ $value }} times in 15 minutes: a flapping cable, transceiver or switch port.",
            Case(((f"{n.FABRIC_PORT_PHYS_STATE}{{{p}}}", "5 5 2 5 5"),), "4m", pl, "2"),
            Case(((f"{n.FABRIC_PORT_PHYS_STATE}{{{p}}}", "5x20"),), "15m")),
        AlertRule(
            "HpcFabricSymbolErrors", f"increase({err(n.FABRIC_SYMBOL_ERROR)}[1h]) > 10", "warning", "fabric",
            "Symbol errors rising on {{ $labels.device }}/{{ $labels.port }} of {{ $labels.instance }}",
            "{{ $labels.device }} port {{ $labels.port }} on {{ $labels.instance }} counted more than 10 "
            "symbol errors in an hour (the IBTA threshold): a marginal cable or transceiver.",
            Case((err_series(n.FABRIC_SYMBOL_ERROR, "0+2x30"),), "30m", {**pl, "counter": n.FABRIC_SYMBOL_ERROR}),
            Case((err_series(n.FABRIC_SYMBOL_ERROR, "0 1 2 3 3 3"),), "5m")),
        AlertRule(
            "HpcFabricLinkErrorRecovery", f"increase({err(n.FABRIC_LINK_ERROR_RECOVERY)}[1h]) > 0", "warning",
            "fabric",
            "Link error recovery on {{ $labels.device }}/{{ $labels.port }} of {{ $labels.instance }}",
            "{{ $labels.device }} port {{ $labels.port }} on {{ $labels.instance }} went through link error "
            "recovery in the last hour: the link retrained, stalling traffic.",
            Case((err_series(n.FABRIC_LINK_ERROR_RECOVERY, "0 0 1 1"),), "3m",
                 {**pl, "counter": n.FABRIC_LINK_ERROR_RECOVERY}),
            Case((err_series(n.FABRIC_LINK_ERROR_RECOVERY, "4x10"),), "10m")),
        AlertRule(
            "HpcFabricLinkDowned", f"increase({err(n.FABRIC_LINK_DOWNED)}[15m]) > 0", "warning", "fabric",
            "Link downed on {{ $labels.device }}/{{ $labels.port }} of {{ $labels.instance }}",
            "The link of {{ $labels.device }} port {{ $labels.port }} on {{ $labels.instance }} went down "
            "in the last 15 minutes; jobs using it may have failed.",
            Case((err_series(n.FABRIC_LINK_DOWNED, "0 0 1 1"),), "3m", {**pl, "counter": n.FABRIC_LINK_DOWNED}),
            Case((err_series(n.FABRIC_LINK_DOWNED, "2x20"),), "15m")),
        AlertRule(
            # PortXmitWait ticks per second; 5e6 is about a tenth of the time on HDR ports. Tune per fabric.
            "HpcFabricCongestion", f"rate({n.FABRIC_TRANSMIT_WAIT}[5m]) > 5e+06", "warning", "fabric",
            "Congestion on {{ $labels.device }}/{{ $labels.port }} of {{ $labels.instance }}",
            "{{ $labels.device }} port {{ $labels.port }} on {{ $labels.instance }} waited for credits "
            "{{ $value | humanize }} ticks per second for 15 minutes: congestion downstream of this port.",
            Case(((f"{n.FABRIC_TRANSMIT_WAIT}{{{p}}}", "0+600000000x30"),), "25m", pl, "10M"),
            Case(((f"{n.FABRIC_TRANSMIT_WAIT}{{{p}}}", "0+6000x30"),), "25m"), "15m"),
        AlertRule(
            "HpcFabricCounterSaturated", f"{n.FABRIC_COUNTER_SATURATED} == 1", "info", "fabric",
            "Counter {{ $labels.counter }} saturated on {{ $labels.device }}/{{ $labels.port }} of "
            "{{ $labels.instance }}",
            "{{ $labels.counter }} on {{ $labels.device }} port {{ $labels.port }} of {{ $labels.instance }} "
            "is pinned at its maximum and no longer counts; reset the port counters (perfquery -R).",
            Case(((f'{n.FABRIC_COUNTER_SATURATED}{{counter="symbol_error",{p}}}', "1x70"),), "65m",
                 {**pl, "counter": "symbol_error"}),
            Case(((f'{n.FABRIC_COUNTER_SATURATED}{{counter="symbol_error",{p}}}', "0x70"),), "65m"), "1h"),
    ]


def _filesystems() -> list[AlertRule]:
    t = f'{C1},target="scratch-OST0001"'  # the target name leads with its filesystem's
    tl = {**C1L, "target": "scratch-OST0001"}
    m = f'{N1},mountpoint="/home",operation="READ"'
    return [
        AlertRule(
            "HpcLustreTargetNearlyFull",
            f"1 - {n.LUSTRE_TARGET_AVAILABLE} / {n.LUSTRE_TARGET_CAPACITY} > 0.9", "warning", "filesystem",
            "Lustre target {{ $labels.target }} is {{ $value | humanizePercentage }} full",
            "{{ $labels.target }} has less than 10% of its space available; "
            "writes striped onto it fail with ENOSPC when it fills.",
            Case(((f"{n.LUSTRE_TARGET_CAPACITY}{{{t}}}", "1000x40"), (f"{n.LUSTRE_TARGET_AVAILABLE}{{{t}}}", "50x40")),
                 "30m", tl, "95%"),
            Case(((f"{n.LUSTRE_TARGET_CAPACITY}{{{t}}}", "1000x40"), (f"{n.LUSTRE_TARGET_AVAILABLE}{{{t}}}", "500x40")),
                 "30m"), "15m"),
        AlertRule(
            "HpcLustreTargetInodesNearlyFull",
            f"1 - {n.LUSTRE_TARGET_FILES_FREE} / {n.LUSTRE_TARGET_FILES} > 0.9", "warning", "filesystem",
            "Lustre target {{ $labels.target }} is out of inodes",
            "{{ $labels.target }} has used {{ $value | humanizePercentage }} "
            "of its inodes; file creation fails when an MDT runs out.",
            Case(((f"{n.LUSTRE_TARGET_FILES}{{{t}}}", "1000x40"), (f"{n.LUSTRE_TARGET_FILES_FREE}{{{t}}}", "20x40")),
                 "30m", tl, "98%"),
            Case(((f"{n.LUSTRE_TARGET_FILES}{{{t}}}", "1000x40"), (f"{n.LUSTRE_TARGET_FILES_FREE}{{{t}}}", "900x40")),
                 "30m"), "15m"),
        AlertRule(
            "HpcLustreTargetRecoveryStuck",
            f'{n.LUSTRE_RECOVERY_STATUS}{{status=~"{n.LUSTRE_RECOVERY_STUCK_STATES}"}} == 1', "warning", "filesystem",
            "Lustre target {{ $labels.target }} stuck in {{ $labels.status }}",
            "{{ $labels.target }} has been in recovery ({{ $labels.status }}) for 20 minutes; clients that "
            "reconnected wait on it, and clients still missing are evicted when the recovery window closes.",
            Case(((f'{n.LUSTRE_RECOVERY_STATUS}{{target="scratch-OST0001",status="RECOVERING",{C1}}}', "1x30"),),
                 "25m", {**C1L, "target": "scratch-OST0001", "status": "RECOVERING"}),
            Case(((f'{n.LUSTRE_RECOVERY_STATUS}{{target="scratch-OST0001",status="RECOVERING",{C1}}}',
                   "1x10 0x20"),), "25m"), "20m"),
        AlertRule(
            "HpcLustreUnhealthy", f"{n.LUSTRE_HEALTHY} == 0", "critical", "filesystem",
            "Lustre reports NOT HEALTHY on {{ $labels.instance }}",
            "Lustre's health_check on {{ $labels.instance }} has reported a device unhealthy for 5 minutes; "
            "I/O to the devices it names hangs or fails, so jobs placed there fail.",
            Case(((f"{n.LUSTRE_HEALTHY}{{{N1}}}", "0x10"),), "10m", N1L),
            Case(((f"{n.LUSTRE_HEALTHY}{{{N1}}}", "1x10"),), "10m"), "5m"),
        AlertRule(
            "HpcLustreLBUG", f"{n.LUSTRE_LBUG} == 1", "critical", "filesystem",
            "Lustre LBUG on {{ $labels.instance }}",
            "A Lustre assertion failed (LBUG) on {{ $labels.instance }}: the Lustre modules are wedged until the "
            "node reboots, and every process touching Lustre there hangs.",
            Case(((f"{n.LUSTRE_LBUG}{{{N1}}}", "0 0 1 1 1"),), "4m", N1L),
            Case(((f"{n.LUSTRE_LBUG}{{{N1}}}", "0x10"),), "10m")),
        AlertRule(
            "HpcGpfsDaemonDown",
            f'{n.GPFS_STATE}{{state="active"}} == 0 or {n.SOURCE_UP}{{source="gpfs_mmgetstate"}} == 0',
            "critical", "filesystem", "GPFS daemon not active on {{ $labels.instance }}",
            "The GPFS daemon on {{ $labels.instance }} has not been active for 10 minutes (or mmgetstate "
            "cannot say): its filesystems are unmounted or hung, so jobs placed there fail.",
            Case(((f'{n.GPFS_STATE}{{state="active",{N1}}}', "0x20"),), "15m", {**N1L, "state": "active"}),
            Case(((f'{n.GPFS_STATE}{{state="active",{N1}}}', "1x20"),), "15m"), "10m"),
        AlertRule(
            "HpcGpfsLongWaiters", f"{n.GPFS_WAITER_LONGEST} > 300", "warning", "filesystem",
            "GPFS threads on {{ $labels.instance }} waiting {{ $value | humanizeDuration }}",
            "A GPFS daemon thread on {{ $labels.instance }} has been waiting {{ $value | humanizeDuration }} "
            "(mmdiag --waiters), longer than 5 minutes for 10 minutes: I/O to some disk, node or token "
            "server is stuck.",
            Case(((f"{n.GPFS_WAITER_LONGEST}{{{N1}}}", "400x20"),), "15m", N1L, "6m 40s"),
            Case(((f"{n.GPFS_WAITER_LONGEST}{{{N1}}}", "2x20"),), "15m"), "10m"),
        AlertRule(
            "HpcGpfsComponentFailed",
            # The alert's own `component` label (filesystem) would hide mmhealth's: keep it as gpfs_component.
            f'label_replace({n.GPFS_HEALTH_STATUS}{{status="FAILED"}} == 1, "gpfs_component", "$1", "component", '
            f'"(.*)")', "warning", "filesystem",
            "GPFS {{ $labels.gpfs_component }} {{ $labels.entity }} FAILED on {{ $labels.instance }}",
            "mmhealth on {{ $labels.instance }} has reported {{ $labels.gpfs_component }} entity {{ $labels.entity }} "
            "({{ $labels.entity_type }}) FAILED for 10 minutes.",
            Case(((f'{n.GPFS_HEALTH_STATUS}{{component="NETWORK",entity="ib0",entity_type="NIC",status="FAILED",'
                   f'{N1}}}', "1x20"),), "15m",
                 {**N1L, "gpfs_component": "NETWORK", "entity": "ib0", "entity_type": "NIC", "status": "FAILED"}),
            Case(((f'{n.GPFS_HEALTH_STATUS}{{component="NETWORK",entity="ib0",entity_type="NIC",status="FAILED",'
                   f'{N1}}}', "0x20"),), "15m"), "10m"),
        AlertRule(
            "HpcNfsMajorTimeouts", f"increase({n.NFS_MAJOR_TIMEOUTS}[10m]) > 0", "warning", "filesystem",
            "NFS major timeouts on {{ $labels.mountpoint }} of {{ $labels.instance }}",
            "{{ $labels.operation }} RPCs to {{ $labels.mountpoint }} on {{ $labels.instance }} timed out "
            "completely in the last 10 minutes: the server did not answer and processes hang in D state.",
            Case(((f"{n.NFS_MAJOR_TIMEOUTS}{{{m}}}", "0 0 3 3"),), "3m",
                 {**N1L, "mountpoint": "/home", "operation": "READ"}),
            Case(((f"{n.NFS_MAJOR_TIMEOUTS}{{{m}}}", "7x20"),), "15m")),
    ]


def _scheduler() -> list[AlertRule]:
    nodes = f"{n.SCHED_NODES}"
    q = f'{C1},queue="batch"'

    def node_series(state: str, seq: str) -> tuple[str, str]:
        return (f'{nodes}{{state="{state}",{q}}}', seq)

    fin = n.SCHED_JOBS_FINISHED
    return [
        AlertRule(
            # The cluster agent answers but serves no hpc_scheduler_up under the cluster its target is
            # labelled with: the slurm/flux collector was skipped, or slurm.conf names another cluster.
            "HpcSchedulerMetricsMissing",
            f'{n.UP}{{job="{n.CLUSTER_AGENT_JOB}"}} == 1 unless on (cluster) {n.SCHED_UP}', "warning", "scheduler",
            "Cluster agent {{ $labels.instance }} serves no scheduler metrics for {{ $labels.cluster }}",
            "The cluster agent at {{ $labels.instance }} is up but has exported no hpc_scheduler_up with "
            "cluster=\"{{ $labels.cluster }}\" for 10 minutes: its scheduler collector is not running, or "
            "the scheduler names the cluster differently from the scrape target's label.",
            Case(((f"up{{{C1}}}", "1x20"), (f'{n.SCHED_UP}{{cluster="other",instance="head:19467",'
                                            f'job="hpcwatch-cluster"}}', "1x20")), "15m", C1L),
            Case(((f"up{{{C1}}}", "1x20"), (f"{n.SCHED_UP}{{{C1}}}", "1x20")), "15m"), "10m"),
        AlertRule(
            "HpcSchedulerDown", f"{n.SCHED_UP} == 0", "critical", "scheduler",
            "Scheduler of cluster {{ $labels.cluster }} is unreachable",
            "The cluster agent has not reached the scheduler of {{ $labels.cluster }} for 5 minutes: no jobs "
            "start, and job-failure alerts are inhibited until it is back.",
            Case(((f"{n.SCHED_UP}{{{C1}}}", "0x10"),), "10m", C1L),
            Case(((f"{n.SCHED_UP}{{{C1}}}", "1x10"),), "10m"), "5m"),
        AlertRule(
            "HpcSchedulerStale",
            f'time() - {n.SOURCE_LAST_SUCCESS}{{source=~"{n.SCHED_SOURCE_RE}"}} > 300', "warning", "scheduler",
            "Scheduler data from {{ $labels.instance }} is stale",
            "The {{ $labels.source }} source on {{ $labels.instance }} last refreshed successfully "
            "{{ $value | humanizeDuration }} ago; dashboards and SLOs see an old snapshot.",
            Case(((f'{n.SOURCE_LAST_SUCCESS}{{source="slurm",{C1}}}', "60x20"),), "15m", {**C1L, "source": "slurm"},
                 "14m 0s"),
            Case(((f'{n.SOURCE_LAST_SUCCESS}{{source="slurm",{C1}}}', "0+60x20"),), "15m"), "5m"),
        AlertRule(
            "HpcSchedulerSlowCycles", f"avg_over_time({n.SLURM_SCHED_CYCLE_LAST}[15m]) > 5", "warning", "scheduler",
            "Slurm scheduling cycles on {{ $labels.cluster }} are slow",
            "The main scheduling cycle of {{ $labels.cluster }} averaged {{ $value | humanizeDuration }} over "
            "15 minutes (sdiag); slurmctld is overloaded and job starts and RPCs lag.",
            Case(((f"{n.SLURM_SCHED_CYCLE_LAST}{{{C1}}}", "12x40"),), "30m", C1L, "12s"),
            Case(((f"{n.SLURM_SCHED_CYCLE_LAST}{{{C1}}}", "0.05x40"),), "30m"), "15m"),
        AlertRule(
            "HpcSchedulerNodesDown",
            f'sum by (cluster) ({nodes}{{state=~"{n.SCHED_NODE_DOWN_STATES}"}}) / '
            f'sum by (cluster) ({nodes}{{state!="{n.SCHED_NODE_MAINT_STATE}"}}) > 0.05',
            "warning", "scheduler", "{{ $value | humanizePercentage }} of nodes down in {{ $labels.cluster }}",
            "More than 5% of the node slots of {{ $labels.cluster }} are down (not responding or failed) for "
            "10 minutes (nodes under maintenance are left out of both counts).",
            Case((node_series("down", "10x20"), node_series("idle", "90x20")), "15m", {"cluster": "c1"}, "10%"),
            Case((node_series("down", "1x20"), node_series("idle", "99x20")), "15m"), "10m"),
        AlertRule(
            "HpcSchedulerNodesDrained",
            f'sum by (cluster) ({nodes}{{state=~"{n.SCHED_NODE_DRAINED_STATES}"}}) / '
            f'sum by (cluster) ({nodes}{{state!="{n.SCHED_NODE_MAINT_STATE}"}}) > 0.2', "warning", "scheduler",
            "{{ $value | humanizePercentage }} of nodes drained in {{ $labels.cluster }}",
            "More than 20% of the node slots of {{ $labels.cluster }} have been drained for 30 minutes; "
            "check that the drains are intended and not left over.",
            Case((node_series("drain", "30x50"), node_series("allocated", "70x50")), "45m", {"cluster": "c1"}, "30%"),
            Case((node_series("drain", "5x50"), node_series("allocated", "95x50")), "45m"), "30m"),
        AlertRule(
            "HpcSchedulerSystemJobFailures",
            f'sum by (cluster) (increase({fin}{{cause="system"}}[15m])) >= 5 and '
            f'sum by (cluster) (increase({fin}{{cause="system"}}[15m])) / '
            f'sum by (cluster) (increase({fin}{{outcome!="cancelled"}}[15m])) > 0.1',
            "warning", "jobs", "Spike of system-caused job failures in {{ $labels.cluster }}",
            "At least 5 jobs and more than 10% of the jobs that finished in {{ $labels.cluster }} in the "
            "last 15 minutes failed because of the system (node failures, boot failures, preemption).",
            Case(((f'{fin}{{outcome="node_fail",cause="system",{q}}}', "0+2x20"),
                  (f'{fin}{{outcome="success",cause="none",{q}}}', "0+5x20")), "15m", {"cluster": "c1"}),
            # Many user failures and one system failure: not a system problem.
            Case(((f'{fin}{{outcome="node_fail",cause="system",{q}}}', "0 1x20"),
                  (f'{fin}{{outcome="failed",cause="user",{q}}}', "0+10x20")), "15m")),
    ]


def all_alerts() -> list[tuple[str, list[AlertRule]]]:
    """(rule group name, alerts) in the order they are written."""
    return [("hpcwatch-exporter", _targets() + _exporter()), ("hpcwatch-node", _node()), ("hpcwatch-gpu", _gpu()),
            ("hpcwatch-fabric", _fabric()), ("hpcwatch-filesystems", _filesystems()),
            ("hpcwatch-scheduler", _scheduler())]


def alert_names() -> list[str]:
    return [a.name for _, group in all_alerts() for a in group]
