"""hpcwatch.slo: SLO specs (Sloth, OpenSLO, the HPC catalogue) to Prometheus rules, alerts and their tests.

    slos = load_specs(["slos/"])                 # validated, immutable models (SpecError on mistakes)
    rules = generate_rules(slos)                 # {"groups": [...]}, Sloth-compatible
    for cond in alert_conditions(slos[0]): ...   # the exact windows, factors, thresholds and guard
"""

from hpcwatch.slo.advice import check_slos
from hpcwatch.slo.errors import SLOWarning, SpecError
from hpcwatch.slo.generate import AlertCondition, alert_conditions, generate_rules
from hpcwatch.slo.loader import load_specs
from hpcwatch.slo.model import SLO, AlertMeta, EventsSLI, RawSLI
from hpcwatch.slo.windows import AlertWindows, BurnWindow, WindowsCatalogue, default_windows

__all__ = ["SLO", "AlertCondition", "AlertMeta", "AlertWindows", "BurnWindow", "EventsSLI", "RawSLI",
           "SLOWarning", "SpecError", "WindowsCatalogue", "alert_conditions", "check_slos", "default_windows",
           "generate_rules", "load_specs"]
