"""hpcwatch.exporters.gpu: the `gpu` collector (NVIDIA GPUs through NVML). Importing registers it."""

from hpcwatch.exporters.gpu.collector import GpuCollector

__all__ = ["GpuCollector"]
