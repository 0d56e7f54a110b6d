"""Every hpc_gpu_ family the collector exports: name, type, help and labels in one table, and a small
builder that turns per-scrape samples into prometheus_client families."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

DEVICE = ("gpu", "uuid")

# name -> (type, help, labels). Counter names carry `_total`, stripped for CounterMetricFamily.
SPECS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "hpc_gpu_info": (
        "gauge",
        (
            "Always 1: a GPU or MIG device NVML reports, with its name, driver and CUDA "
            "versions, PCI bus id and MIG mode (enabled, disabled, unsupported, instance for a MIG device, "
            "or unknown while the GPU is lost)."
        ),
        DEVICE + ("name", "driver_version", "cuda_version", "pci_bus_id", "mig_mode"),
    ),
    "hpc_gpu_mig_info": (
        "gauge",
        ("Always 1: a MIG device and the physical GPU, GPU instance and compute instance it belongs to."),
        DEVICE + ("parent_gpu", "parent_uuid", "gpu_instance_id", "compute_instance_id"),
    ),
    "hpc_gpu_up": (
        "gauge",
        (
            "1 when NVML answered for the GPU in this scrape, 0 when the GPU is lost (fell "
            "off the bus) or could not be read."
        ),
        DEVICE,
    ),
    "hpc_gpu_utilization_ratio": (
        "gauge",
        ("Fraction of the last sample period in which a kernel ran on the GPU."),
        DEVICE,
    ),
    "hpc_gpu_memory_utilization_ratio": (
        "gauge",
        ("Fraction of the last sample period in which device memory was being read or written."),
        DEVICE,
    ),
    "hpc_gpu_memory_used_bytes": ("gauge", "Device memory allocated by processes and the driver.", DEVICE),
    "hpc_gpu_memory_total_bytes": ("gauge", "Device memory installed (or given to the MIG device).", DEVICE),
    "hpc_gpu_memory_reserved_bytes": (
        "gauge",
        ("Device memory the driver and firmware reserve for themselves."),
        DEVICE,
    ),
    "hpc_gpu_power_watts": ("gauge", "Power the board draws now.", DEVICE),
    "hpc_gpu_energy_joules_total": (
        "counter",
        "Energy the GPU consumed since the driver was loaded.",
        DEVICE,
    ),
    "hpc_gpu_temperature_celsius": ("gauge", "GPU core temperature.", DEVICE),
    "hpc_gpu_memory_temperature_celsius": ("gauge", "Device memory (HBM) temperature.", DEVICE),
    "hpc_gpu_sm_clock_hertz": ("gauge", "Current streaming-multiprocessor clock.", DEVICE),
    "hpc_gpu_memory_clock_hertz": ("gauge", "Current memory clock.", DEVICE),
    "hpc_gpu_clock_event_reason_active": (
        "gauge",
        (
            "1 while the reason holds the GPU's clocks below "
            "maximum (idle, power cap, thermal or hardware slowdown, ...)."
        ),
        DEVICE + ("reason",),
    ),
    "hpc_gpu_pcie_replays_total": (
        "counter",
        "PCIe packets the GPU had to replay (link-level retries).",
        DEVICE,
    ),
    "hpc_gpu_pcie_transmit_bytes_total": ("counter", "Bytes the GPU sent over PCIe.", DEVICE),
    "hpc_gpu_pcie_receive_bytes_total": ("counter", "Bytes the GPU received over PCIe.", DEVICE),
    "hpc_gpu_ecc_enabled": ("gauge", "1 when ECC is active on the GPU's memory, 0 when it is off.", DEVICE),
    "hpc_gpu_ecc_errors_total": (
        "counter",
        (
            "ECC errors by type; counter=volatile counts since the driver "
            "loaded, counter=aggregate over the GPU's life (select one, never sum "
            "both). Only exported where ECC is enabled."
        ),
        DEVICE + ("type", "counter"),
    ),
    "hpc_gpu_retired_pages": (
        "gauge",
        ("Memory pages retired (blacklisted) for single- or double-bit errors (pre-Ampere page retirement)."),
        DEVICE + ("cause",),
    ),
    "hpc_gpu_retired_pages_pending": (
        "gauge",
        "1 when page retirements wait for the next driver reload.",
        DEVICE,
    ),
    "hpc_gpu_remapped_rows": (
        "gauge",
        (
            "Row remapper state: rows remapped for corrected or uncorrected "
            "errors, and 1/0 flags for a pending remap (needs a GPU reset) and a failed "
            "remap (GPU needs replacing)."
        ),
        DEVICE + ("state",),
    ),
    "hpc_gpu_nvlink_up": (
        "gauge",
        "1 when the NVLink link is active (or in low-power sleep), 0 when inactive.",
        DEVICE + ("link",),
    ),
    "hpc_gpu_nvlink_errors_total": (
        "counter",
        "NVLink data-link errors by type (replay, recovery, crc).",
        DEVICE + ("link", "type"),
    ),
    "hpc_gpu_nvlink_transmit_bytes_total": (
        "counter",
        "Payload bytes sent over the NVLink link.",
        DEVICE + ("link",),
    ),
    "hpc_gpu_nvlink_receive_bytes_total": (
        "counter",
        "Payload bytes received over the NVLink link.",
        DEVICE + ("link",),
    ),
    "hpc_gpu_xid_errors_total": (
        "counter",
        (
            "Critical XID errors the driver reported for the GPU, by XID "
            "number, counted since the exporter started."
        ),
        DEVICE + ("xid",),
    ),
    "hpc_gpu_xid_watch_up": (
        "gauge",
        (
            "1 when XID events of the GPU are being watched (so no XID means "
            "none happened), 0 when NVML cannot deliver them."
        ),
        DEVICE,
    ),
    "hpc_gpu_sm_active_ratio": (
        "gauge",
        ("Fraction of time at least one warp was resident on an SM, averaged over all SMs, since the last "
         "scrape (NVML GPM, Hopper and newer; DCGM's PROF_SM_ACTIVE). Low under high utilisation means few SMs "
         "do the work."),
        DEVICE,
    ),
    "hpc_gpu_sm_occupancy_ratio": (
        "gauge",
        ("Resident warps as a fraction of the SMs' maximum, averaged since the last scrape (NVML GPM, Hopper "
         "and newer)."),
        DEVICE,
    ),
    "hpc_gpu_tensor_active_ratio": (
        "gauge",
        "Fraction of time any tensor core pipe was active since the last scrape (NVML GPM, Hopper and newer).",
        DEVICE,
    ),
    "hpc_gpu_dram_bandwidth_utilization_ratio": (
        "gauge",
        ("Device memory bandwidth used as a fraction of the peak since the last scrape (NVML GPM, Hopper and "
         "newer)."),
        DEVICE,
    ),
    "hpc_gpu_processes": ("gauge", "Compute processes running on the GPU or MIG device.", DEVICE),
    "hpc_gpu_job_info": (
        "gauge",
        "Always 1: the Slurm job runs on (or was given) the GPU or MIG device.",
        DEVICE + ("jobid",),
    ),
    "hpc_gpu_job_memory_used_bytes": (
        "gauge",
        "Device memory the job's processes hold on the GPU.",
        DEVICE + ("jobid",),
    ),
    "hpc_gpu_process_memory_used_bytes": (
        "gauge",
        ("Device memory one process holds (opt-in: --collector.gpu.per-process)."),
        DEVICE + ("pid", "jobid"),
    ),
}

# Label values from NVML and from files are capped; names and versions are far shorter in practice.
_MAX_LABEL = 128


def label_values(name: str, labels: tuple[str, ...]) -> tuple[str, ...]:
    """The label values of a sample of family `name`, checked against its spec and capped in length."""
    if len(labels) != len(SPECS[name][2]):
        raise ValueError(f"{name}: {len(labels)} label values for labels {SPECS[name][2]}")
    return tuple(str(v)[:_MAX_LABEL] for v in labels)


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
        for name, (kind, help_text, labels) in SPECS.items():
            rows = self._samples.get(name)
            if not rows:
                continue
            if kind == "counter":
                fam: Metric = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=list(labels))
            else:
                fam = GaugeMetricFamily(name, help_text, labels=list(labels))
            # What add_metric appends, without its per-sample call overhead (~1,100 samples a scrape).
            sample_name = fam.name + "_total" if kind == "counter" else fam.name
            append = fam.samples.append
            seen = set()
            for values, value in rows:
                if values in seen:  # one sample per label set, first wins
                    continue
                seen.add(values)
                append(Sample(sample_name, dict(zip(labels, values)), value, None, None))
            yield fam
