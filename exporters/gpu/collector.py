"""The `gpu` collector: NVIDIA GPUs through NVML (nvidia-ml-py), MIG devices as devices of their own,
XID errors as a counter, and GPUs tied to Slurm jobs through process cgroups and the prolog's map.

NVML stays initialised for the collector's life. Per GPU and scrape, one nvmlDeviceGetFieldValues
call carries every field NVML offers as a field (ECC, retired pages, remapped rows, energy, power,
memory temperature, PCIe counters, per-link NVLink state, errors and traffic); each field's own
return code is checked. What NVML does not support on a GPU is left out and logged once at debug.
A GPU that is lost shows `hpc_gpu_up 0`; the rest of the scrape is served.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.gpu import fields, nvml
from hpcwatch.exporters.gpu.families import FAMILIES, FamilyBuilder, label_values
from hpcwatch.exporters.gpu.gpm import GpmDevice
from hpcwatch.exporters.gpu.jobs import read_job_map, read_pid_jobid
from hpcwatch.exporters.gpu.xid import WatchedGpu, XidWatcher
from hpcwatch.exporters.jobcap import MAX_JOBS_OPTION, JobCap
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.gpu")


# (label value, pynvml constant name) of each clock event reason, in bit order.
CLOCK_REASONS = (
    ("gpu_idle", "nvmlClocksEventReasonGpuIdle"),
    ("applications_clocks_setting", "nvmlClocksEventReasonApplicationsClocksSetting"),
    ("sw_power_cap", "nvmlClocksEventReasonSwPowerCap"),
    ("hw_slowdown", "nvmlClocksEventReasonHwSlowdown"),
    ("sync_boost", "nvmlClocksEventReasonSyncBoost"),
    ("sw_thermal_slowdown", "nvmlClocksEventReasonSwThermalSlowdown"),
    ("hw_thermal_slowdown", "nvmlClocksEventReasonHwThermalSlowdown"),
    ("hw_power_brake_slowdown", "nvmlClocksEventReasonHwPowerBrakeSlowdown"),
    ("display_clock_setting", "nvmlClocksEventReasonDisplayClockSetting"),
)

_F = fields.DEVICE_FIELDS
_L = fields.LINK_FIELDS


# One sample a field value becomes: (family, (fieldId, scopeId), checked label values, scale).
Row = tuple[str, tuple[int, int], tuple[str, ...], float]


def _row(family: str, field: str, scope: int, labels: tuple[str, ...], scale: float = 1) -> Row:
    return (family, ((_F.get(field) or _L[field]), scope), label_values(family, labels), scale)


@dataclasses.dataclass(frozen=True)
class FieldPlan:
    """What one GPU's field values become, the same every scrape: the (fieldId, scopeId) request and,
    per reading, its family, label values and scale. Built once per GPU (index, UUID and link count),
    so a scrape only looks values up and appends samples."""

    request: nvml.FieldRequest
    dev: tuple[str, ...]
    power: tuple[int, int]
    ecc: tuple[int, int]
    rows: tuple[Row, ...]  # exported whenever NVML gives a value
    ecc_rows: tuple[Row, ...]  # only while ECC is enabled
    link_state: tuple[tuple[tuple[int, int], tuple[str, ...]], ...]  # per link: state field, labels

    @classmethod
    def build(cls, label: str, uuid: str, link_count: int) -> FieldPlan:
        dev = (label, uuid)
        rows: list[Row] = [
            _row("hpc_gpu_energy_joules_total", "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 0, dev, 1e-3),
            _row("hpc_gpu_memory_temperature_celsius", "NVML_FI_DEV_MEMORY_TEMP", 0, dev),
            _row("hpc_gpu_pcie_replays_total", "NVML_FI_DEV_PCIE_REPLAY_COUNTER", 0, dev),
            _row("hpc_gpu_pcie_transmit_bytes_total", "NVML_FI_DEV_PCIE_COUNT_TX_BYTES", 0, dev),
            _row("hpc_gpu_pcie_receive_bytes_total", "NVML_FI_DEV_PCIE_COUNT_RX_BYTES", 0, dev),
            _row("hpc_gpu_retired_pages_pending", "NVML_FI_DEV_RETIRED_PENDING", 0, dev),
            _row("hpc_gpu_retired_pages", "NVML_FI_DEV_RETIRED_SBE", 0, dev + ("single_bit",)),
            _row("hpc_gpu_retired_pages", "NVML_FI_DEV_RETIRED_DBE", 0, dev + ("double_bit",)),
        ]
        for field, state in (
            ("NVML_FI_DEV_REMAPPED_COR", "corrected"),
            ("NVML_FI_DEV_REMAPPED_UNC", "uncorrected"),
            ("NVML_FI_DEV_REMAPPED_PENDING", "pending"),
            ("NVML_FI_DEV_REMAPPED_FAILURE", "failure"),
        ):
            rows.append(_row("hpc_gpu_remapped_rows", field, 0, dev + (state,)))
        ecc_rows = [
            _row("hpc_gpu_ecc_errors_total", field, 0, dev + (kind, counter))
            for field, kind, counter in (
                ("NVML_FI_DEV_ECC_SBE_VOL_TOTAL", "corrected", "volatile"),
                ("NVML_FI_DEV_ECC_DBE_VOL_TOTAL", "uncorrected", "volatile"),
                ("NVML_FI_DEV_ECC_SBE_AGG_TOTAL", "corrected", "aggregate"),
                ("NVML_FI_DEV_ECC_DBE_AGG_TOTAL", "uncorrected", "aggregate"),
            )
        ]
        link_state = []
        for link in range(link_count):
            ln = dev + (str(link),)
            link_state.append(
                ((_L["NVML_FI_DEV_NVLINK_GET_STATE"], link), label_values("hpc_gpu_nvlink_up", ln))
            )
            for field, kind in (
                ("NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY", "replay"),
                ("NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY", "recovery"),
                ("NVML_FI_DEV_NVLINK_ERROR_DL_CRC", "crc"),
            ):
                rows.append(_row("hpc_gpu_nvlink_errors_total", field, link, ln + (kind,)))
            # Throughput fields count KiB.
            for family, field in (
                ("hpc_gpu_nvlink_transmit_bytes_total", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX"),
                ("hpc_gpu_nvlink_receive_bytes_total", "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX"),
            ):
                rows.append(_row(family, field, link, ln, 1024))
        return cls(
            request=nvml.FieldRequest(fields.request(link_count)),
            dev=label_values("hpc_gpu_power_watts", dev),
            power=(_F["NVML_FI_DEV_POWER_INSTANT"], 0),
            ecc=(_F["NVML_FI_DEV_ECC_CURRENT"], 0),
            rows=tuple(rows),
            ecc_rows=tuple(ecc_rows),
            link_state=tuple(link_state),
        )


class GpuLost(Exception):
    """NVML said NVML_ERROR_GPU_IS_LOST for this GPU: drop its partial samples, report it down."""


@dataclasses.dataclass
class Gpu:
    """A physical GPU as discovered at start-up; `handle` is None while it cannot be reached."""

    index: int
    handle: Any = None
    uuid: str = ""
    name: str = ""
    pci_bus_id: str = ""
    link_count: int = 0
    gpm: bool | None = None  # GPM supported (Hopper and newer); None until asked

    @property
    def label(self) -> str:
        return str(self.index)


@register
class GpuCollector(Collector):
    name = "gpu"
    help = (
        "NVIDIA GPUs through NVML: utilisation, memory, power, health, NVLink, XID errors, GPU-to-job mapping"
    )
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option(
            "job-map-dir",
            "/run/hpcwatch/gpu-jobs",
            "directory where the Slurm prolog lists each job's GPUs (under --path.rootfs; '' disables)",
        ),
        Option("per-process", False, "also export GPU memory per process (one series per PID)", type=bool),
        Option("xid-events", True, "count XID errors from NVML events in a background thread", type=bool),
        Option("gpm", True, "SM active, SM occupancy, tensor active and DRAM bandwidth through NVML GPM where the "
               "GPU supports it (Hopper and newer)", type=bool),
        Option("gpm-interval", 1.0, "least time between two GPM samples of a GPU; a scrape sooner than that "
               "gets the last values again", type=opt.duration),
        MAX_JOBS_OPTION,
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.lib = nvml.lib
        self.per_process = ctx.option("per-process")
        self.xid_events = ctx.option("xid-events")
        self.gpm = ctx.option("gpm")
        self.gpm_interval = ctx.option("gpm-interval")
        self.job_cap = JobCap(ctx.option("max-jobs"))
        self._gpm: dict[tuple[str, str], GpmDevice] = {}
        map_dir = ctx.option("job-map-dir")
        self.job_map_dir = ctx.paths.root(map_dir) if map_dir else ""
        self.gpus: list[Gpu] = []
        self.driver_version = ""
        self.cuda_version = ""
        self.watcher: XidWatcher | None = None
        self._initialised = False
        self._started = False
        self._noted: set[str] = set()
        self._noted_fields: set[tuple[str, str, int, int, int]] = set()
        self._plans: dict[tuple[str, str, int], FieldPlan] = {}

    # --- life cycle -------------------------------------------------------------------------------
    def available(self) -> str | None:
        try:
            self._start()
        except Exception as exc:
            if nvml.error_code(exc) is None and not isinstance(exc, OSError):
                raise
            self.close()
            return f"NVML not usable: {exc}"
        if not self.gpus:
            self.close()
            return "NVML reports no GPUs"
        return None

    def _start(self) -> None:
        if self._started:
            return
        if not self._initialised:
            self.lib.nvmlInit()
            self._initialised = True
        self.driver_version = self._quiet(self.lib.nvmlSystemGetDriverVersion) or ""
        self.cuda_version = self._cuda_version()
        count = self.lib.nvmlDeviceGetCount()
        self.gpus = [self._describe(Gpu(index=i)) for i in range(count)]
        if self.xid_events:
            watched = [WatchedGpu(g.label, g.uuid, g.handle) for g in self.gpus if g.handle is not None]
            self.watcher = XidWatcher(self.lib, watched)
            self.watcher.start()
        self._started = True

    def close(self) -> None:
        for device in self._gpm.values():
            device.close(self.lib)
        self._gpm = {}
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self._initialised:
            nvml.shutdown(self.lib)
            self._initialised = False
        self._started = False

    # --- NVML calls with the error policy -----------------------------------------------------------
    def _quiet(self, fn: Any, *args: Any) -> Any:
        try:
            return nvml.text(fn(*args))
        except self.lib.NVMLError:
            return None

    def _cuda_version(self) -> str:
        for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
            try:
                v = int(getattr(self.lib, name)())
            except (self.lib.NVMLError, AttributeError, TypeError, ValueError):
                continue
            return f"{v // 1000}.{v % 1000 // 10}"
        return ""

    def _call(
        self,
        gpu_label: str,
        fn_name: str,
        *args: Any,
        quiet: Iterable[int] = (),
        via: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Call NVML; GPU lost raises GpuLost, any other NVML error is logged once and gives None.
        `via(lib, *args)` is a helper in `nvml` that makes the call `fn_name` names in its own way."""
        lib = self.lib
        try:
            if via is not None:
                return via(lib, *args, **kwargs)
            return getattr(lib, fn_name)(*args, **kwargs)
        except lib.NVMLError as exc:
            code = nvml.error_code(exc)
            if code == lib.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(gpu_label) from exc
            if code in quiet:
                return None
            who = self._who(gpu_label)
            if code in (lib.NVML_ERROR_NOT_SUPPORTED, lib.NVML_ERROR_FUNCTION_NOT_FOUND):
                self._debug_once(f"{who}:{fn_name}:{code}", "gpu %s: %s: %s", who, fn_name, exc)
            else:
                log_once(log, f"{who}:{fn_name}:{code}", "gpu %s: %s: %s", who, fn_name, exc)
            return None

    def _debug_once(self, key: str, msg: str, *args: Any) -> None:
        """'Not supported here' is a fact about the GPU, not news: one debug line per GPU and reading."""
        if key not in self._noted:
            self._noted.add(key)
            log.debug(msg, *args)

    def _who(self, gpu_label: str) -> str:
        """How log lines name a GPU: index and UUID, so keys stay distinct across GPUs and hosts."""
        gpu = next((g for g in self.gpus if g.label == gpu_label), None)
        return f"{gpu_label} ({gpu.uuid})" if gpu is not None and gpu.uuid else gpu_label

    def _describe(self, gpu: Gpu) -> Gpu:
        """Fill a GPU's handle and static facts; a GPU lost here keeps handle None and is retried."""
        try:
            handle = self._call(gpu.label, "nvmlDeviceGetHandleByIndex", gpu.index)
            if handle is None:
                return gpu
            gpu.uuid = nvml.text(self._call(gpu.label, "nvmlDeviceGetUUID", handle) or "")
            gpu.name = nvml.text(self._call(gpu.label, "nvmlDeviceGetName", handle) or "")
            pci = self._call(gpu.label, "nvmlDeviceGetPciInfo", handle)
            gpu.pci_bus_id = nvml.text(pci.busId) if pci is not None else ""
            gpu.link_count = self._link_count(gpu.label, handle)
            gpu.handle = handle
        except GpuLost:
            gpu.handle = None
        return gpu

    def _link_count(self, label: str, handle: Any) -> int:
        records = self._call(label, "nvmlDeviceGetFieldValues", handle, [(fields.NVLINK_LINK_COUNT[1], 0)])
        values = fields.by_key(fields.decode(records or ()))
        return max(0, min(int(values.get((fields.NVLINK_LINK_COUNT[1], 0), 0)), 64))

    # --- one scrape --------------------------------------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        self._start()
        out = FamilyBuilder()
        job_map = read_job_map(self.job_map_dir) if self.job_map_dir else {}
        for gpu in self.gpus:
            if gpu.handle is None:
                self._describe(gpu)
            one = FamilyBuilder()
            try:
                if gpu.handle is None:
                    raise GpuLost(gpu.label)
                self._collect_gpu(gpu, one, job_map)
            except GpuLost:
                log_once(log, f"lost:{self._who(gpu.label)}", "gpu %s: GPU is lost", self._who(gpu.label))
                one = FamilyBuilder()
                self._info(one, gpu.label, gpu.uuid, gpu.name, gpu.pci_bus_id, "unknown")
                one.add("hpc_gpu_up", (gpu.label, gpu.uuid), 0)
            out.extend(one)
        self._xid(out)
        return list(self.job_cap.apply(out.families()))

    def _info(self, out: FamilyBuilder, label: str, uuid: str, name: str, pci: str, mig_mode: str) -> None:
        out.add("hpc_gpu_info", (label, uuid, name, self.driver_version, self.cuda_version, pci, mig_mode), 1)

    def _collect_gpu(self, gpu: Gpu, out: FamilyBuilder, job_map: dict[str, set[str]]) -> None:
        lib, h, dev = self.lib, gpu.handle, (gpu.label, gpu.uuid)
        mig = self._call(gpu.label, "nvmlDeviceGetMigMode", h)
        mig_enabled = bool(mig) and mig[0] == lib.NVML_DEVICE_MIG_ENABLE
        mig_mode = "unsupported" if mig is None else ("enabled" if mig_enabled else "disabled")
        self._fields(gpu, out)
        util = self._call(gpu.label, "nvmlDeviceGetUtilizationRates", h)
        if util is not None:
            out.add("hpc_gpu_utilization_ratio", dev, util.gpu / 100)
            out.add("hpc_gpu_memory_utilization_ratio", dev, util.memory / 100)
        self._memory(gpu.label, h, dev, out)
        temp = self._call(gpu.label, "nvmlDeviceGetTemperature", h, lib.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out.add("hpc_gpu_temperature_celsius", dev, temp)
        for family, clock in (
            ("hpc_gpu_sm_clock_hertz", lib.NVML_CLOCK_SM),
            ("hpc_gpu_memory_clock_hertz", lib.NVML_CLOCK_MEM),
        ):
            mhz = self._call(gpu.label, "nvmlDeviceGetClockInfo", h, clock)
            if mhz is not None:
                out.add(family, dev, mhz * 1e6)
        self._clock_reasons(gpu.label, h, dev, out)
        self._info(out, gpu.label, gpu.uuid, gpu.name, gpu.pci_bus_id, mig_mode)
        if self.gpm and gpu.gpm is None:
            support = self._call(gpu.label, "nvmlGpmQueryDeviceSupport", h)
            gpu.gpm = bool(support is not None and support.isSupportedDevice)
        if mig_enabled:
            self._mig_devices(gpu, out, job_map)
        else:
            self._processes(gpu.label, h, dev, out)
            if self.gpm and gpu.gpm:
                self._gpm_read(gpu.label, dev, lambda sample, g=gpu: lib.nvmlGpmSampleGet(g.handle, sample), out)
        self._mapped_jobs(job_map, (gpu.label, gpu.uuid), dev, out)
        out.add("hpc_gpu_up", dev, 1)

    def _plan(self, gpu: Gpu) -> FieldPlan:
        key = (gpu.label, gpu.uuid, gpu.link_count)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = FieldPlan.build(gpu.label, gpu.uuid, gpu.link_count)
        return plan

    def _fields(self, gpu: Gpu, out: FamilyBuilder) -> None:
        lib = self.lib
        plan = self._plan(gpu)
        records = self._call(
            gpu.label, "nvmlDeviceGetFieldValues", gpu.handle, plan.request, via=nvml.field_values
        )
        v, missing = fields.decode_values(records if records is not None else ())
        for r in missing:
            if r.status == lib.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(gpu.label)
            noted = (gpu.label, gpu.uuid, r.field_id, r.scope_id, r.status)
            if noted in self._noted_fields:  # the usual case: the same fields are missing every scrape
                continue
            self._noted_fields.add(noted)
            name = fields.FIELD_NAMES.get(r.field_id, str(r.field_id))
            why = "sentinel value" if r.sentinel else f"nvmlReturn {r.status}"
            who = self._who(gpu.label)
            self._debug_once(
                f"{who}:field:{r.field_id}:{r.scope_id}:{r.status}",
                "gpu %s: field %s (scope %d) left out: %s",
                who,
                name,
                r.scope_id,
                why,
            )
        add = out.add_checked
        power = v.get(plan.power)
        if power is None:
            power = self._call(gpu.label, "nvmlDeviceGetPowerUsage", gpu.handle)
        if power is not None:
            add("hpc_gpu_power_watts", plan.dev, power / 1000)
        for family, key, labels, scale in plan.rows:
            if (x := v.get(key)) is not None:
                add(family, labels, x * scale)
        ecc = v.get(plan.ecc)
        if ecc is not None:
            add("hpc_gpu_ecc_enabled", plan.dev, 1 if ecc == 1 else 0)
        if ecc == 1:  # error counters of a GPU without ECC mean nothing
            for family, key, labels, scale in plan.ecc_rows:
                if (x := v.get(key)) is not None:
                    add(family, labels, x * scale)
        # A link in low-power sleep is up; only an inactive link is down.
        up_states = (lib.NVML_NVLINK_STATE_ACTIVE, lib.NVML_NVLINK_STATE_SLEEP)
        for key, labels in plan.link_state:
            if (x := v.get(key)) is not None:
                add("hpc_gpu_nvlink_up", labels, 1 if x in up_states else 0)

    def _memory(self, label: str, h: Any, dev: tuple[str, str], out: FamilyBuilder) -> None:
        mem = self._call(
            label,
            "nvmlDeviceGetMemoryInfo",
            h,
            version=self.lib.nvmlMemory_v2,
            quiet=(
                self.lib.NVML_ERROR_FUNCTION_NOT_FOUND,
                self.lib.NVML_ERROR_NOT_SUPPORTED,
                self.lib.NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
            ),
        )
        if mem is None:  # drivers before R510 have no v2 (and no reserved figure)
            mem = self._call(label, "nvmlDeviceGetMemoryInfo", h)
        if mem is None:
            return
        out.add("hpc_gpu_memory_used_bytes", dev, mem.used)
        out.add("hpc_gpu_memory_total_bytes", dev, mem.total)
        if hasattr(mem, "reserved"):
            out.add("hpc_gpu_memory_reserved_bytes", dev, mem.reserved)

    def _clock_reasons(self, label: str, h: Any, dev: tuple[str, str], out: FamilyBuilder) -> None:
        lib = self.lib
        mask = self._call(
            label, "nvmlDeviceGetCurrentClocksEventReasons", h, quiet=(lib.NVML_ERROR_FUNCTION_NOT_FOUND,)
        )
        if mask is None:  # drivers before R535 only know the older name
            mask = self._call(label, "nvmlDeviceGetCurrentClocksThrottleReasons", h)
        if mask is None:
            return
        for reason, const in CLOCK_REASONS:
            out.add(
                "hpc_gpu_clock_event_reason_active",
                dev + (reason,),
                1 if int(mask) & getattr(lib, const) else 0,
            )

    def _mig_devices(self, gpu: Gpu, out: FamilyBuilder, job_map: dict[str, set[str]]) -> None:
        lib = self.lib
        count = self._call(gpu.label, "nvmlDeviceGetMaxMigDeviceCount", gpu.handle) or 0
        for i in range(count):
            mh = self._call(
                gpu.label,
                "nvmlDeviceGetMigDeviceHandleByIndex",
                gpu.handle,
                i,
                quiet=(lib.NVML_ERROR_NOT_FOUND, lib.NVML_ERROR_INVALID_ARGUMENT),
            )
            if mh is None:
                continue
            uuid = nvml.text(self._call(gpu.label, "nvmlDeviceGetUUID", mh) or "")
            gi = self._call(gpu.label, "nvmlDeviceGetGpuInstanceId", mh)
            ci = self._call(gpu.label, "nvmlDeviceGetComputeInstanceId", mh)
            name = nvml.text(self._call(gpu.label, "nvmlDeviceGetName", mh) or "")
            label = f"{gpu.label}/{gi}/{ci}"
            dev = (label, uuid)
            self._info(out, label, uuid, name, gpu.pci_bus_id, "instance")
            out.add("hpc_gpu_mig_info", dev + (gpu.label, gpu.uuid, str(gi), str(ci)), 1)
            self._memory(label, mh, dev, out)
            self._processes(label, mh, dev, out)
            if self.gpm and gpu.gpm and gi is not None:
                self._gpm_read(label, dev, lambda sample, p=gpu, i=gi: lib.nvmlGpmMigSampleGet(p.handle, i, sample),
                               out)
            self._mapped_jobs(job_map, (uuid,), dev, out)
            out.add("hpc_gpu_up", dev, 1)

    def _gpm_read(self, label: str, dev: tuple[str, str], take: Any, out: FamilyBuilder) -> None:
        """GPM metrics of a GPU or MIG instance since its last sample (nothing on the first scrape)."""
        device = self._gpm.get(dev)
        if device is None:
            device = self._gpm[dev] = GpmDevice(take, self.gpm_interval)
        try:
            values = device.read(self.lib)
        except self.lib.NVMLError as exc:
            code = nvml.error_code(exc)
            if code == self.lib.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(label) from exc
            self._debug_once(f"{self._who(label)}:gpm:{code}", "gpu %s: GPM: %s", self._who(label), exc)
            return
        for family, value in values.items():
            out.add(family, dev, value)

    def _processes(self, label: str, h: Any, dev: tuple[str, str], out: FamilyBuilder) -> None:
        procs = self._call(label, "nvmlDeviceGetComputeRunningProcesses", h)
        if procs is None:
            return
        out.add("hpc_gpu_processes", dev, len(procs))
        per_job: dict[str, float] = {}
        for p in procs:
            jobid = read_pid_jobid(self.ctx.paths.procfs, p.pid)
            used = p.usedGpuMemory  # None where the driver cannot tell (e.g. some vGPU setups)
            if self.per_process and used is not None:
                out.add("hpc_gpu_process_memory_used_bytes", dev + (str(p.pid), jobid or ""), used)
            if jobid is None:
                continue
            per_job[jobid] = per_job.get(jobid, 0.0) + (used or 0)
            out.add("hpc_gpu_job_info", dev + (jobid,), 1)
        for jobid, used in sorted(per_job.items()):
            out.add("hpc_gpu_job_memory_used_bytes", dev + (jobid,), used)

    def _mapped_jobs(
        self, job_map: dict[str, set[str]], keys: tuple[str, ...], dev: tuple[str, str], out: FamilyBuilder
    ) -> None:
        for key in keys:
            for jobid in sorted(job_map.get(key, ())) if key else ():
                out.add("hpc_gpu_job_info", dev + (jobid,), 1)

    def _xid(self, out: FamilyBuilder) -> None:
        if self.watcher is None:
            return
        watched = {(g.gpu, g.uuid) for g in self.watcher.registered}
        alive = self.watcher.alive
        for gpu in self.gpus:
            key = (gpu.label, gpu.uuid)
            out.add("hpc_gpu_xid_watch_up", key, 1 if alive and key in watched else 0)
        for (gpu_label, uuid, xid), n in sorted(self.watcher.counts().items()):
            out.add("hpc_gpu_xid_errors_total", (gpu_label, uuid, xid), n)
