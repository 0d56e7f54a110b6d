"""Every metric and recording-rule name the dashboards and alerts read, in one place.

Collectors are built in parallel with the dashboards; when a collector names a family differently,
change it here and regenerate (`hpcwatch generate`) — no dashboard or alert spells a name itself.
Names marked "assumed" were not yet exported by a collector when this module was written.
"""

from __future__ import annotations

import re

# --- exporter health (exporters/scrape.py, exporters/selfmetrics.py) -------------------------------
UP = "up"  # Prometheus' own per-target series
COLLECTOR_SUCCESS = "hpcwatch_collector_success"
COLLECTOR_DURATION = "hpcwatch_collector_duration_seconds"
SOURCE_LAST_SUCCESS = "hpcwatch_source_last_success_timestamp_seconds"
SOURCE_UP = "hpcwatch_source_up"
PARSE_ERRORS = "hpcwatch_parse_errors_total"
READ_ERRORS = "hpcwatch_read_errors_total"  # {source}: a file that exists could not be read
STATE_SAVE_FAILURES = "hpcwatch_state_save_failures_total"  # {collector}: scheduler state not saved
# Prometheus `job` label of the scrape jobs in deploy/prometheus/prometheus.yml (hpcwatch.promconfig).
EXPORTER_JOB_RE = "hpcwatch.*"
NODE_AGENT_JOB = "hpcwatch-node"
CLUSTER_AGENT_JOB = "hpcwatch-cluster"
NODE_EXPORTER_JOB = "node"  # a plain node_exporter, where a site keeps it

# --- node collector (exporters/node): node_exporter's exact names, so these dashboards and alerts
# work on a site that runs plain node_exporter, and node_exporter's own dashboards work on ours -----
NODE_CPU_SECONDS = "node_cpu_seconds_total"  # {cpu, mode}
NODE_LOAD1 = "node_load1"
NODE_MEMORY_TOTAL = "node_memory_MemTotal_bytes"
NODE_MEMORY_AVAILABLE = "node_memory_MemAvailable_bytes"
NODE_PRESSURE_CPU_WAITING = "node_pressure_cpu_waiting_seconds_total"  # PSI cpu "some"
NODE_PRESSURE_MEMORY_STALLED = "node_pressure_memory_stalled_seconds_total"  # PSI memory "full"
NODE_PRESSURE_IO_STALLED = "node_pressure_io_stalled_seconds_total"  # PSI io "full"
NODE_PRESSURE_IRQ_STALLED = "node_pressure_irq_stalled_seconds_total"  # PSI irq "full" (kernel 6.1+)
NODE_OOM_KILLS = "node_vmstat_oom_kill"  # untyped in node_exporter, a counter in fact
NODE_FILESYSTEM_SIZE = "node_filesystem_size_bytes"  # {device, mountpoint, fstype}
NODE_FILESYSTEM_AVAIL = "node_filesystem_avail_bytes"
NODE_NETWORK_RECEIVE = "node_network_receive_bytes_total"  # {device}
NODE_NETWORK_TRANSMIT = "node_network_transmit_bytes_total"
NODE_DISK_READ = "node_disk_read_bytes_total"  # {device}
NODE_DISK_WRITTEN = "node_disk_written_bytes_total"
NODE_HWMON_TEMP = "node_hwmon_temp_celsius"  # {chip, sensor}
NODE_EDAC_UNCORRECTABLE = "node_edac_uncorrectable_errors_total"  # {controller}
NODE_EDAC_CORRECTABLE = "node_edac_correctable_errors_total"
NODE_BOOT_TIME = "node_boot_time_seconds"
NODE_NETWORK_UP = "node_network_up"  # {device}: operstate is up
NODE_NETWORK_SPEED = "node_network_speed_bytes"  # {device}
NODE_NETWORK_CARRIER_CHANGES = "node_network_carrier_changes_total"  # {device}: link flaps
NODE_HWMON_FAN = "node_hwmon_fan_rpm"  # {chip, sensor}
NODE_HWMON_POWER = "node_hwmon_power_average_watt"  # {chip, sensor}: e.g. the BMC's node power (acpi_power_meter)
NODE_RAPL_PACKAGE = "node_rapl_package_joules_total"  # {index, path}
NODE_RAPL_DRAM = "node_rapl_dram_joules_total"
NODE_NUMA_MEM_TOTAL = "node_memory_numa_MemTotal"  # {node}, bytes (node_exporter gives no _bytes suffix)
NODE_NUMA_MEM_FREE = "node_memory_numa_MemFree"
NODE_NUMA_MISS = "node_memory_numa_numa_miss_total"  # {node}: pages allocated here though meant elsewhere
NODE_TEXTFILE_MTIME = "node_textfile_mtime_seconds"  # {file}
NODE_TEXTFILE_ERROR = "node_textfile_scrape_error"

# --- jobs collector (hpc_job_, exporters/jobs) -----------------------------------------------------
JOB_INFO = "hpc_job_info"  # {jobid, user, uid, account, partition}; account/partition "" without the prolog file
JOB_CPU_SECONDS = "hpc_job_cpu_seconds_total"  # {jobid, mode=user|system}
JOB_CPUS = "hpc_job_cpus"  # CPUs in the job's cpuset on this node
JOB_MEMORY_USAGE = "hpc_job_memory_usage_bytes"
JOB_MEMORY_LIMIT = "hpc_job_memory_limit_bytes"
JOB_MEMORY_MAX_USAGE = "hpc_job_memory_max_usage_bytes"
JOB_OOM_EVENTS = "hpc_job_oom_events_total"
JOB_TASKS = "hpc_job_tasks"
JOB_OOM_KILLS = "hpc_job_oom_kills_total"

# --- energy collector (exporters/energy): per-job attribution ---------------------------------------
JOB_ENERGY = "hpc_job_energy_joules_total"  # {jobid, component=cpu|dram|gpu|other}
ENERGY_NODE = "hpc_energy_node_joules_total"  # {component}: the node's energy as the agent measured it
ENERGY_UNATTRIBUTED = "hpc_energy_unattributed_joules_total"  # {component}: the part no job ran

# --- gpu collector (hpc_gpu_, exporters/gpu) ------------------------------------------------------
GPU_INFO = "hpc_gpu_info"  # {gpu, uuid, name, ...}
GPU_UP = "hpc_gpu_up"  # 0 when the GPU fell off the bus (GPU is lost)
GPU_UTILIZATION = "hpc_gpu_utilization_ratio"
GPU_MEMORY_UTILIZATION = "hpc_gpu_memory_utilization_ratio"
GPU_MEMORY_USED = "hpc_gpu_memory_used_bytes"
GPU_MEMORY_TOTAL = "hpc_gpu_memory_total_bytes"
GPU_POWER = "hpc_gpu_power_watts"
GPU_ENERGY = "hpc_gpu_energy_joules_total"
GPU_TEMPERATURE = "hpc_gpu_temperature_celsius"
GPU_CLOCK_EVENT = "hpc_gpu_clock_event_reason_active"  # {gpu, reason}: 1 while the reason holds clocks down
GPU_XID_ERRORS = "hpc_gpu_xid_errors_total"  # {gpu, xid}
GPU_ECC_ERRORS = "hpc_gpu_ecc_errors_total"  # {gpu, type=corrected|uncorrected, counter=volatile|aggregate}
GPU_REMAPPED_ROWS = "hpc_gpu_remapped_rows"  # {gpu, state=corrected|uncorrected|pending|failure}
GPU_JOB_INFO = "hpc_gpu_job_info"  # {gpu, uuid, jobid}; every hpc_gpu_ series has {gpu, uuid}
GPU_JOB_MEMORY_USED = "hpc_gpu_job_memory_used_bytes"  # {gpu, jobid}
GPU_SM_ACTIVE = "hpc_gpu_sm_active_ratio"  # NVML GPM (Hopper and newer)
GPU_TENSOR_ACTIVE = "hpc_gpu_tensor_active_ratio"  # NVML GPM
GPU_PROCESSES = "hpc_gpu_processes"  # {gpu, uuid}: compute processes on the GPU now (0: held but unused)
# Reasons (label values of GPU_CLOCK_EVENT) that mean thermal or power throttling.
GPU_THERMAL_REASONS = "hw_thermal_slowdown|sw_thermal_slowdown"
GPU_POWER_REASONS = "hw_power_brake_slowdown|hw_slowdown"
# XIDs after which NVIDIA says the GPU needs a reset, a drain or an RMA (XID catalogue, r550).
GPU_CRITICAL_XIDS = "48|61|62|63|64|74|79|92|94|95|119|120"

# --- fabric collector (hpc_fabric_, exporters/fabric) ------------------------------------------------
FABRIC_PORT_INFO = "hpc_fabric_port_info"  # {device, port, link_layer, netdev, ...}
FABRIC_PORT_STATE = "hpc_fabric_port_state_id"  # IB logical state: 1 Down, 2 Init, 3 Armed, 4 Active
FABRIC_PORT_PHYS_STATE = "hpc_fabric_port_physical_state_id"  # 2 Polling, 3 Disabled, 5 LinkUp, ...
FABRIC_PORT_RATE = "hpc_fabric_port_rate_bytes_per_second"
FABRIC_TRANSMIT_BYTES = "hpc_fabric_port_transmit_bytes_total"
FABRIC_RECEIVE_BYTES = "hpc_fabric_port_receive_bytes_total"
FABRIC_PORT_UP = "hpc_fabric_port_up"  # 1 when Active and LinkUp
FABRIC_ERRORS = "hpc_fabric_port_errors_total"  # {device, port, counter=<sysfs counter name>}
FABRIC_TRANSMIT_WAIT = "hpc_fabric_port_transmit_wait_total"  # ticks a port had data but no credits
FABRIC_HW_EVENTS = "hpc_fabric_port_hw_events_total"  # {device, port, counter=<hw_counters name>}
FABRIC_COUNTER_SATURATED = "hpc_fabric_port_pma_saturated"  # {device, port, counter}: 1 when pinned at max
# `counter` label values of FABRIC_ERRORS and FABRIC_HW_EVENTS (the sysfs file names).
FABRIC_SYMBOL_ERROR = "symbol_error"
FABRIC_LINK_ERROR_RECOVERY = "link_error_recovery"
FABRIC_LINK_DOWNED = "link_downed"
FABRIC_RCV_ERRORS = "port_rcv_errors"
FABRIC_XMIT_DISCARDS = "port_xmit_discards"
FABRIC_ECN_MARKED = "np_ecn_marked_roce_packets"
FABRIC_CNP_SENT = "np_cnp_sent"
FABRIC_STATE_ACTIVE = 4

# --- filesystems (exporters/lustre, nfs, gpfs, beegfs) -------------------------------------------------
LUSTRE_TARGET_CAPACITY = "hpc_lustre_target_capacity_bytes"  # {target}
LUSTRE_TARGET_AVAILABLE = "hpc_lustre_target_available_bytes"
LUSTRE_TARGET_FILES = "hpc_lustre_target_files"
LUSTRE_TARGET_FILES_FREE = "hpc_lustre_target_files_free"
LUSTRE_CLIENT_BYTES = "hpc_lustre_client_bytes_total"  # {fs, client, operation=read|write}
LUSTRE_CLIENT_OPS = "hpc_lustre_client_operations_total"  # {fs, client, operation}
LUSTRE_JOB_BYTES = "hpc_lustre_job_bytes_total"  # {target, jobid, uid, host, operation=read|write}
LUSTRE_JOB_OPS = "hpc_lustre_job_operations_total"  # {target, jobid, uid, host, operation}
LUSTRE_DATA_OPS = "read|write"  # every other job_stats operation is metadata
LUSTRE_RECOVERY_STATUS = "hpc_lustre_target_recovery_status"  # {target, status}: 1 for the current state
LUSTRE_RECOVERY_STUCK_STATES = "RECOVERING|WAITING|WAITING_FOR_CLIENTS"
LUSTRE_RECOVERY_CONNECTED = "hpc_lustre_target_recovery_connected_clients"  # {target}
LUSTRE_RECOVERY_EXPECTED = "hpc_lustre_target_recovery_expected_clients"  # {target}
LUSTRE_RECOVERY_REMAINING = "hpc_lustre_target_recovery_time_remaining_seconds"  # {target}
LUSTRE_HEALTHY = "hpc_lustre_healthy"  # health_check verdict of a host, 1 healthy
LUSTRE_LBUG = "hpc_lustre_lbug"  # 1 after an LBUG
LUSTRE_BRW_IO_TIME = "hpc_lustre_brw_io_time_seconds"  # histogram {target, operation=read|write}
LUSTRE_BRW_IO_SIZE = "hpc_lustre_brw_io_size_bytes"  # histogram {target, operation}
LNET_MESSAGES = "hpc_lustre_lnet_messages_total"  # {direction=sent|received|routed}
LNET_DROPPED = "hpc_lustre_lnet_dropped_messages_total"
LNET_HEALTH_EVENTS = "hpc_lustre_lnet_health_events_total"  # {event}
NFS_IO_BYTES = "hpc_nfs_io_bytes_total"  # {export, mountpoint, kind=normal_read|direct_read|...}
NFS_REQUESTS = "hpc_nfs_requests_total"  # {export, mountpoint, operation}
NFS_MAJOR_TIMEOUTS = "hpc_nfs_major_timeouts_total"  # {export, mountpoint, operation}
NFS_READ_KINDS = "normal_read|direct_read"  # bytes applications read (kind label of NFS_IO_BYTES)
NFS_WRITE_KINDS = "normal_write|direct_write"
GPFS_READ = "hpc_gpfs_read_bytes_total"  # {gpfs_cluster (the GPFS cluster name, not the HPC `cluster`), fs}
GPFS_WRITE = "hpc_gpfs_write_bytes_total"
GPFS_SIZE = "hpc_gpfs_fs_size_bytes"  # {fs}
GPFS_FREE = "hpc_gpfs_fs_free_bytes"
GPFS_STATE = "hpc_gpfs_state"  # {state}: 1 for the daemon's state (mmgetstate)
GPFS_HEALTH_STATUS = "hpc_gpfs_health_status"  # {component, entity, entity_type, status}
GPFS_HEALTH_EVENT = "hpc_gpfs_health_event"  # {component, entity, entity_type, event, severity}
GPFS_WAITERS = "hpc_gpfs_waiters"  # {thread}
GPFS_WAITER_LONGEST = "hpc_gpfs_waiter_longest_seconds"
BEEGFS_OPERATIONS = "hpc_beegfs_operations_total"  # {nodetype, operation}

# --- scheduler-neutral model (ARCHITECTURE.md, exporters/scheduler) ------------------------------------------------
SCHED_UP = "hpc_scheduler_up"  # {cluster}
SCHED_JOBS = "hpc_scheduler_jobs"  # {cluster, queue, state}
SCHED_JOBS_FINISHED = "hpc_scheduler_jobs_finished_total"  # {cluster, queue, outcome, cause}
SCHED_QUEUE_WAIT = "hpc_scheduler_queue_wait_seconds"  # histogram {cluster, queue}
SCHED_PENDING_WAIT = "hpc_scheduler_pending_wait_seconds"  # histogram {cluster, queue}
SCHED_TURNAROUND = "hpc_scheduler_turnaround_seconds"  # histogram {cluster, queue}: submit -> end of successes
SCHED_MAINTENANCE = "hpc_scheduler_maintenance"  # {cluster, node, source, reservation}: nodes under maintenance now
SCHED_MAINTENANCE_START = "hpc_scheduler_maintenance_window_start_timestamp_seconds"  # {cluster, reservation}
SCHED_MAINTENANCE_END = "hpc_scheduler_maintenance_window_end_timestamp_seconds"
SCHED_NODE_MAINT_STATE = "maint"  # hpc_scheduler_nodes{state}: under maintenance, out of availability
SCHED_NODES = "hpc_scheduler_nodes"  # {cluster, queue, state}
SCHED_CPUS = "hpc_scheduler_cpus"
SCHED_GPUS = "hpc_scheduler_gpus"
# Node states that mean "not usable because broken" and "taken out by an admin".
SCHED_NODE_DOWN_STATES = "down"  # exporters/slurm/parse.py NODE_STATES: one state per node
SCHED_NODE_DRAINED_STATES = "drain"
# hpcwatch source names of the scheduler snapshot sources (hpcwatch_source_* {source}).
SCHED_SOURCE_RE = "slurm|flux"

# --- Slurm extras (hpc_slurm_, exporters/slurm) -------------------------------------------------------
SLURM_PENDING_JOBS = "hpc_slurm_pending_jobs"  # {cluster, partition, reason}
SLURM_SCHED_CYCLE_LAST = "hpc_slurm_main_cycle_last_seconds"  # {cluster}
SLURM_SCHED_CYCLE_MEAN = "hpc_slurm_main_cycle_mean_seconds"
SLURM_BACKFILL_CYCLE_LAST = "hpc_slurm_backfill_cycle_last_seconds"
SLURM_BACKFILL_CYCLE_MEAN = "hpc_slurm_backfill_cycle_mean_seconds"
SLURM_SERVER_THREADS = "hpc_slurm_server_threads"
SLURM_AGENT_QUEUE = "hpc_slurm_agent_queue_size"
SLURM_DBD_AGENT_QUEUE = "hpc_slurm_dbd_agent_queue_size"

# --- live spend and waste (recording rules of the price table, accounting/spend_rules.py) -------------
# Cost per hour in the table's currency, labels {cluster, ..., resource=cpu|memory|gpu|energy, currency}.
JOB_SPEND = "job:hpc_spend_per_hour:sum"  # {jobid, user, account, partition}
JOB_WASTE = "job:hpc_waste_per_hour:sum"
ACCOUNT_SPEND = "account:hpc_spend_per_hour:sum"  # {account, partition}
ACCOUNT_WASTE = "account:hpc_waste_per_hour:sum"
USER_SPEND = "user:hpc_spend_per_hour:sum"  # {account, user}
USER_WASTE = "user:hpc_waste_per_hour:sum"
# Allocation per running job, summed over its nodes, with its identity from hpc_job_info.
JOB_ALLOC_CPUS = "job:hpc_job_cpus:sum"
JOB_ALLOC_MEMORY = "job:hpc_job_memory_limit_bytes:sum"
JOB_POWER = "job:hpc_job_power_watts:sum"
JOB_ALLOC_GPUS = "job:hpc_job_gpus:count"  # {model}
GPU_ALLOCATED = "gpu:hpc_gpu_job_allocated:info"  # one series per GPU a job holds {instance, gpu, uuid, jobid, model}
JOB_IDLE_CPUS = "job:hpc_job_idle_cpus:sum"
JOB_UNUSED_MEMORY = "job:hpc_job_unused_memory_bytes:sum"
JOB_IDLE_GPUS = "job:hpc_job_idle_gpus:count"
SPEND_INTERVAL_S = 60  # the spend group's evaluation interval: a range's spend is sum_over_time(...) * 60 / 3600

# --- SLO recording rules (Sloth-compatible, slo/ — issue 4) ---------------------------------------------
SLO_SLI_ERROR_5M = "slo:sli_error:ratio_rate5m"
SLO_SLI_ERROR_1H = "slo:sli_error:ratio_rate1h"
SLO_SLI_ERROR_6H = "slo:sli_error:ratio_rate6h"
SLO_SLI_ERROR_1D = "slo:sli_error:ratio_rate1d"
SLO_SLI_ERROR_3D = "slo:sli_error:ratio_rate3d"
SLO_OBJECTIVE = "slo:objective:ratio"
SLO_ERROR_BUDGET = "slo:error_budget:ratio"
SLO_TIME_PERIOD_DAYS = "slo:time_period:days"
SLO_CURRENT_BURN = "slo:current_burn_rate:ratio"
SLO_PERIOD_BURN = "slo:period_burn_rate:ratio"
SLO_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sloth_slo_info"
ALERTS = "ALERTS"  # Prometheus' synthetic series of pending/firing alerts

# --- cluster pre-aggregations (alerts/recording.py): what the cluster-wide dashboard panels read, summed
# per cluster once per evaluation instead of over every node's series on every refresh ------------------
REC_CPU_COUNT = "cluster:node_cpus:count"
REC_CPU_IDLE_RATE = "cluster:node_cpu_idle_seconds:rate5m"
REC_GPU_UTILIZATION_SUM = "cluster:hpc_gpu_utilization_ratio:sum"
REC_GPU_COUNT = "cluster:hpc_gpus:count"
REC_LUSTRE_CLIENT_BYTES_RATE = "cluster_fs_operation:hpc_lustre_client_bytes:rate5m"
REC_LUSTRE_CLIENT_OPS_RATE = "cluster_fs_operation:hpc_lustre_client_operations:rate5m"
REC_NFS_IO_BYTES_RATE = "cluster_mountpoint_kind:hpc_nfs_io_bytes:rate5m"
# Prometheus' per-target scrape series (the series-growth alert)
SCRAPE_SERIES_ADDED = "scrape_series_added"
SCRAPE_SAMPLES_SCRAPED = "scrape_samples_scraped"

# Sloth's multiwindow multi-burn-rate alerts, as the share of the period's budget each spends:
# page = 2% in 1h (x14.4 on 30d) or 5% in 6h (x6); ticket = 10% in 1d (x3) or 10% in 3d (x1).
# (label, share of budget, long window in hours). Factor = share * period / long window, so dashboards
# derive the thresholds for any period from slo:time_period:days.
BURN_THRESHOLDS = (
    ("page 1h", 0.02, 1),
    ("page 6h", 0.05, 6),
    ("ticket 1d", 0.10, 24),
    ("ticket 3d", 0.10, 72),
)


PREFIXES = ("hpc_", "hpcwatch_", "node_", "slo:", "sloth_", "cluster:", "cluster_", "scrape_", "job:", "account:",
            "user:", "gpu:")


def all_metric_names() -> list[str]:
    """Every name above (metric families and recording rules), for docs and the report."""
    return sorted({v for k, v in globals().items()
                   if k.isupper() and isinstance(v, str) and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", v)
                   and (v.startswith(PREFIXES) or v in ("up", "ALERTS"))})
