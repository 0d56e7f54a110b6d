"""NVML GPU Performance Monitoring (GPM, Hopper and newer): SM active, SM occupancy, tensor active and
DRAM bandwidth utilisation, the profiling-level readings DCGM calls DCGM_FI_PROF_*.

GPM metrics are rates between two samples. Each device (a GPU, or a MIG GPU instance) keeps two
sample buffers; a scrape takes a new sample and computes the metrics against the previous one. A
scrape that comes sooner than MIN_INTERVAL after the last sample (a second Prometheus, a manual
curl) gets the last values again instead of a noisy short interval (--collector.gpu.gpm-interval).
On GPUs without GPM (before Hopper, older drivers) the families are simply absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# (family, pynvml metric constant); NVML reports each as a percentage.
GPM_METRICS: tuple[tuple[str, str], ...] = (
    ("hpc_gpu_sm_active_ratio", "NVML_GPM_METRIC_SM_UTIL"),
    ("hpc_gpu_sm_occupancy_ratio", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    ("hpc_gpu_tensor_active_ratio", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("hpc_gpu_dram_bandwidth_utilization_ratio", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
)
MIN_INTERVAL = 1.0   # default seconds between samples; shorter intervals are noise


def metrics_get(lib: Any, sample1: Any, sample2: Any, metric_ids: list[int]) -> list[tuple[int, int, float]]:
    """nvmlGpmMetricsGet over two samples -> [(metric id, nvmlReturn, value)]."""
    request = lib.c_nvmlGpmMetricsGet_t()
    request.version = lib.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(metric_ids)
    request.sample1, request.sample2 = sample1, sample2
    for i, mid in enumerate(metric_ids):
        request.metrics[i].metricId = mid
    lib.nvmlGpmMetricsGet(request)
    return [(request.metrics[i].metricId, request.metrics[i].nvmlReturn, request.metrics[i].value)
            for i in range(len(metric_ids))]


class GpmDevice:
    """The two sample buffers of one device and its last values; `read()` is safe across scrape threads."""

    def __init__(self, take: Callable[[Any], Any], min_interval: float = MIN_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.take = take              # take(sample) fills a sample buffer (nvmlGpmSampleGet / MigSampleGet)
        self.min_interval = min_interval
        self.clock = clock
        self.samples: list[Any] = []  # [previous, spare]
        self.taken_at: float | None = None
        self.values: dict[str, float] = {}
        self.lock = threading.Lock()

    def read(self, lib: Any) -> dict[str, float]:
        """{family: ratio} over the interval since the last sample (empty on the very first call)."""
        with self.lock:
            now = self.clock()
            if self.taken_at is not None and now - self.taken_at < self.min_interval:
                return dict(self.values)
            if not self.samples:
                samples = [lib.nvmlGpmSampleAlloc(), lib.nvmlGpmSampleAlloc()]
                try:
                    self.take(samples[0])
                except lib.NVMLError:
                    for sample in samples:
                        lib.nvmlGpmSampleFree(sample)
                    raise
                self.samples, self.taken_at = samples, now
                return {}
            previous, current = self.samples
            self.take(current)
            ids = [getattr(lib, const) for _, const in GPM_METRICS]
            got = {mid: (ret, value) for mid, ret, value in metrics_get(lib, previous, current, ids)}
            self.samples = [current, previous]
            self.taken_at = now
            values = {}
            for (family, _), mid in zip(GPM_METRICS, ids):
                ret, value = got.get(mid, (None, None))
                if ret == lib.NVML_SUCCESS and value is not None and 0 <= value <= 100:
                    values[family] = value / 100.0
            self.values = values
            return dict(values)

    def close(self, lib: Any) -> None:
        with self.lock:
            for sample in self.samples:
                try:
                    lib.nvmlGpmSampleFree(sample)
                except lib.NVMLError:
                    pass
            self.samples = []
