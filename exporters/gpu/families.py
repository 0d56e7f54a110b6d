"""Every hpc_gpu_ family the collector exports: name, type, help and labels in one table, and a small
builder that turns per-scrape samples into prometheus_client families."""

from __future__ import annotations

from collections.abc import Iterator

from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.labels import value as label_value
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

DEVICE = ("gpu", "uuid")

# Every hpc_gpu_ family, in the order they are exposed.
FAMILIES = FamilyTable([
    gauge("hpc_gpu_info",
          "Always 1: a GPU or MIG device NVML reports, with its name, driver and CUDA versions, PCI bus id and MIG "
          "mode (enabled, disabled, unsupported, instance for a MIG device, or unknown while the GPU is lost).",
          *DEVICE, "name", "driver_version", "cuda_version", "pci_bus_id", "mig_mode"),
    gauge("hpc_gpu_mig_info",
          "Always 1: a MIG device and the physical GPU, GPU instance and compute instance it belongs to.",
          *DEVICE, "parent_gpu", "parent_uuid", "gpu_instance_id", "compute_instance_id"),
    gauge("hpc_gpu_up",
          "1 when NVML answered for the GPU in this scrape, 0 when the GPU is lost (fell off the bus) or could not "
          "be read.", *DEVICE),
    gauge("hpc_gpu_utilization_ratio",
          "Fraction of the last sample period in which a kernel ran on the GPU.", *DEVICE),
    gauge("hpc_gpu_memory_utilization_ratio",
          "Fraction of the last sample period in which device memory was being read or written.", *DEVICE),
    gauge("hpc_gpu_memory_used_bytes", "Device memory allocated by processes and the driver.", *DEVICE),
    gauge("hpc_gpu_memory_total_bytes", "Device memory installed (or given to the MIG device).", *DEVICE),
    gauge("hpc_gpu_memory_reserved_bytes",
          "Device memory the driver and firmware reserve for themselves.", *DEVICE),
    gauge("hpc_gpu_power_watts", "Power the board draws now.", *DEVICE),
    counter("hpc_gpu_energy_joules_total", "Energy the GPU consumed since the driver was loaded.", *DEVICE),
    gauge("hpc_gpu_temperature_celsius", "GPU core temperature.", *DEVICE),
    gauge("hpc_gpu_memory_temperature_celsius", "Device memory (HBM) temperature.", *DEVICE),
    gauge("hpc_gpu_sm_clock_hertz", "Current streaming-multiprocessor clock.", *DEVICE),
    gauge("hpc_gpu_memory_clock_hertz", "Current memory clock.", *DEVICE),
    gauge("hpc_gpu_clock_event_reason_active",
          "1 while the reason holds the GPU's clocks below maximum (idle, power cap, thermal or hardware slowdown, "
          "...).", *DEVICE, "reason"),
    counter("hpc_gpu_pcie_replays_total", "PCIe packets the GPU had to replay (link-level retries).", *DEVICE),
    counter("hpc_gpu_pcie_transmit_bytes_total", "Bytes the GPU sent over PCIe.", *DEVICE),
    counter("hpc_gpu_pcie_receive_bytes_total", "Bytes the GPU received over PCIe.", *DEVICE),
    gauge("hpc_gpu_ecc_enabled", "1 when ECC is active on the GPU's memory, 0 when it is off.", *DEVICE),
    counter("hpc_gpu_ecc_errors_total",
            "ECC errors by type; counter=volatile counts since the driver loaded, counter=aggregate over the GPU's "
            "life (select one, never sum both). Only exported where ECC is enabled.",
            *DEVICE, "type", "counter"),
    gauge("hpc_gpu_retired_pages",
          "Memory pages retired (blacklisted) for single- or double-bit errors (pre-Ampere page retirement).",
          *DEVICE, "cause"),
    gauge("hpc_gpu_retired_pages_pending", "1 when page retirements wait for the next driver reload.", *DEVICE),
    gauge("hpc_gpu_remapped_rows",
          "Row remapper state: rows remapped for corrected or uncorrected errors, and 1/0 flags for a pending remap"
          " (needs a GPU reset) and a failed remap (GPU needs replacing).", *DEVICE, "state"),
    gauge("hpc_gpu_nvlink_up",
          "1 when the NVLink link is active (or in low-power sleep), 0 when inactive.", *DEVICE, "link"),
    counter("hpc_gpu_nvlink_errors_total",
            "NVLink data-link errors by type (replay, recovery, crc).", *DEVICE, "link", "type"),
    counter("hpc_gpu_nvlink_transmit_bytes_total", "Payload bytes sent over the NVLink link.", *DEVICE, "link"),
    counter("hpc_gpu_nvlink_receive_bytes_total",
            "Payload bytes received over the NVLink link.", *DEVICE, "link"),
    counter("hpc_gpu_xid_errors_total",
            "Critical XID errors the driver reported for the GPU, by XID number, counted since the exporter "
            "started.", *DEVICE, "xid"),
    gauge("hpc_gpu_xid_watch_up",
          "1 when XID events of the GPU are being watched (so no XID means none happened), 0 when NVML cannot "
          "deliver them.", *DEVICE),
    gauge("hpc_gpu_sm_active_ratio",
          "Fraction of time at least one warp was resident on an SM, averaged over all SMs, since the last scrape "
          "(NVML GPM, Hopper and newer; DCGM's PROF_SM_ACTIVE). Low under high utilisation means few SMs do the "
          "work.", *DEVICE),
    gauge("hpc_gpu_sm_occupancy_ratio",
          "Resident warps as a fraction of the SMs' maximum, averaged since the last scrape (NVML GPM, Hopper and "
          "newer).", *DEVICE),
    gauge("hpc_gpu_tensor_active_ratio",
          "Fraction of time any tensor core pipe was active since the last scrape (NVML GPM, Hopper and newer).",
          *DEVICE),
    gauge("hpc_gpu_dram_bandwidth_utilization_ratio",
          "Device memory bandwidth used as a fraction of the peak since the last scrape (NVML GPM, Hopper and "
          "newer).", *DEVICE),
    gauge("hpc_gpu_processes", "Compute processes running on the GPU or MIG device.", *DEVICE),
    gauge("hpc_gpu_job_info",
          "Always 1: the Slurm job runs on (or was given) the GPU or MIG device.", *DEVICE, "jobid"),
    gauge("hpc_gpu_job_memory_used_bytes",
          "Device memory the job's processes hold on the GPU.", *DEVICE, "jobid"),
    gauge("hpc_gpu_process_memory_used_bytes",
          "Device memory one process holds (opt-in: --collector.gpu.per-process).", *DEVICE, "pid", "jobid"),
])

def label_values(name: str, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The label values of a sample of family `name`, checked against its spec and capped in length."""
    if len(labels) != len(FAMILIES[name].labels):
        raise ValueError(f"{name}: {len(labels)} label values for labels {FAMILIES[name].labels}")
    return tuple(label_value(v) for v in labels)


class FamilyBuilder:
    """Collects (family, label values, value) samples during one scrape and builds the families."""

    def __init__(self) -> None:
        self._samples: dict[str, list[tuple[tuple[str, ...], float]]] = {}

    def add(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self._samples.setdefault(name, []).append((label_values(name, labels), float(value)))

    def add_checked(self, name: str, labels: tuple[str, ...], value: float) -> None:
        """`add` for label values that already went through `label_values(name, ...)` (built once and
        kept across scrapes), so the hot per-link loop skips checking and capping them again."""
        self._samples.setdefault(name, []).append((labels, float(value)))

    def extend(self, other: FamilyBuilder) -> None:
        for name, rows in other._samples.items():
            self._samples.setdefault(name, []).extend(rows)

    def families(self) -> Iterator[Metric]:
        for name, spec in FAMILIES.items():
            rows = self._samples.get(name)
            if not rows:
                continue
            fam = spec.new()
            labels = spec.labels
            # What add_metric appends, without its per-sample call overhead (~1,100 samples a scrape).
            sample_name = name
            append = fam.samples.append
            seen = set()
            for values, value in rows:
                if values in seen:  # one sample per label set, first wins
                    continue
                seen.add(values)
                append(Sample(sample_name, dict(zip(labels, values)), value, None, None))
            yield fam
