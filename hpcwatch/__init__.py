"""hpcwatch: job-aware exporters, an SLO engine, dashboards and alerts for HPC clusters."""

from hpcwatch.version import __version__

__all__ = ["__version__"]
