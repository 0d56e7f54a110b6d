"""GPU energy for job attribution: each GPU's energy counter, its SMs, the jobs on it or on each of its
MIG instances (with their SMs). The thin NVML reader behind the `energy` collector's GPU part; it
reads the same field and the same GPU-to-job mapping as the `gpu` collector (processes' cgroups and
the prolog's map directory)."""

from __future__ import annotations

import logging
from typing import Any

from hpcwatch.exporters.energy.sampler import GpuReading, MigReading
from hpcwatch.exporters.gpu import fields, nvml
from hpcwatch.exporters.gpu.jobs import read_job_map, read_pid_jobid

log = logging.getLogger("hpcwatch.collector.energy")

ENERGY_FIELD = (fields.DEVICE_FIELDS["NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION"], 0)   # mJ since driver load


class GpuEnergyReader:
    """NVML kept initialised; `read()` gives one GpuReading per GPU (None energy where NVML has none)."""

    def __init__(self, procfs: str, job_map_dir: str) -> None:
        self.lib: Any = nvml.lib
        self.procfs = procfs
        self.job_map_dir = job_map_dir
        self.handles: list[tuple[int, Any, str]] = []   # NVML index, handle, UUID
        self.request = nvml.FieldRequest([ENERGY_FIELD])
        self._initialised = False

    def start(self) -> int:
        """Initialise NVML and find the GPUs; returns how many (raises NVMLError/OSError when NVML is unusable)."""
        if not self._initialised:
            self.lib.nvmlInit()
            self._initialised = True
        self.handles = []
        for i in range(self.lib.nvmlDeviceGetCount()):
            try:
                h = self.lib.nvmlDeviceGetHandleByIndex(i)
                self.handles.append((i, h, nvml.text(self.lib.nvmlDeviceGetUUID(h))))
            except self.lib.NVMLError as exc:   # a lost GPU: the others still count
                log.warning("energy: GPU %d left out (%s); its energy is not measured", i, exc)
        return len(self.handles)

    def close(self) -> None:
        if self._initialised:
            nvml.shutdown(self.lib)
            self._initialised = False

    def _quiet(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.lib, fn)(*args)
        except self.lib.NVMLError:
            return None

    def _sms(self, handle: Any) -> int:
        attrs = self._quiet("nvmlDeviceGetAttributes_v2", handle)
        return int(attrs.multiprocessorCount) if attrs is not None else 0

    def _jobs(self, handle: Any, keys: tuple[str, ...], job_map: dict[str, set[str]]) -> tuple[str, ...]:
        jobs = set()
        for p in self._quiet("nvmlDeviceGetComputeRunningProcesses", handle) or ():
            jobid = read_pid_jobid(self.procfs, p.pid)
            if jobid is not None:
                jobs.add(jobid)
        for key in keys:
            jobs |= job_map.get(key, set())
        return tuple(sorted(jobs))

    def read(self) -> list[GpuReading]:
        job_map = read_job_map(self.job_map_dir) if self.job_map_dir else {}
        out = []
        for index, h, uuid in self.handles:
            records = self._quiet("nvmlDeviceGetFieldValues", h, self.request.ids)
            values, _missing = fields.decode_values(records if records is not None else ())
            mj = values.get(ENERGY_FIELD)
            joules = None if mj is None else mj / 1000.0
            mig = self._quiet("nvmlDeviceGetMigMode", h)
            if mig and mig[0] == self.lib.NVML_DEVICE_MIG_ENABLE:
                out.append(GpuReading(uuid, joules, self._sms(h), instances=self._instances(h, job_map)))
            else:
                out.append(GpuReading(uuid, joules, self._sms(h), self._jobs(h, (str(index), uuid), job_map)))
        return out

    def _instances(self, parent: Any, job_map: dict[str, set[str]]) -> tuple[MigReading, ...]:
        out = []
        for i in range(self._quiet("nvmlDeviceGetMaxMigDeviceCount", parent) or 0):
            mh = self._quiet("nvmlDeviceGetMigDeviceHandleByIndex", parent, i)
            if mh is None:
                continue
            uuid = nvml.text(self._quiet("nvmlDeviceGetUUID", mh) or "")
            out.append(MigReading(uuid, self._sms(mh), self._jobs(mh, (uuid,), job_map)))
        return tuple(out)
