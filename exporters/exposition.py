"""The Prometheus text format (0.0.4), written fast: the scrape path's biggest cost was formatting.

Output is byte-for-byte what prometheus_client's `generate_latest` writes for the names we use
(legacy metric and label names, which every hpcwatch family has); tests pin that equivalence.
Label values from users are escaped here (backslash, quote, newline) like the library does.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

_TYPE = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary",
         "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_INF = float("inf")


def _escape_value(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


def _value(v: float) -> str:
    # floatToGoString only departs from repr() for infinities, NaN and positive values >= 1e6
    # (Go switches to exponents sooner); take the cheap path for everything else.
    f = float(v)
    if -_INF < f < 1e6:
        return repr(f)
    return floatToGoString(f)


def render_text(families: Iterable[Metric]) -> bytes:
    """Families -> exposition bytes."""
    out: list[str] = []
    append = out.append
    for fam in families:
        name, typ = fam.name, fam.type
        if typ == "counter":
            # A counter read from a textfile may be named without `_total`: keep its own name then.
            samples = fam.samples
            mname = name if samples and samples[0].name == name else name + "_total"
        elif typ == "info":
            mname = name + "_info"
        else:
            mname = name
        doc = _help(fam.documentation)
        append(f"# HELP {mname} {doc}\n# TYPE {mname} {_TYPE.get(typ, typ)}\n")
        om: dict[str, list[str]] = {}
        for s in fam.samples:
            labels = s.labels
            if labels:
                body = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(labels.items()))
                line = f"{s.name}{{{body}}} {_value(s.value)}"
            else:
                line = f"{s.name} {_value(s.value)}"
            if s.timestamp is not None:
                line += f" {int(float(s.timestamp) * 1000):d}"
            line += "\n"
            sname = s.name
            if sname.startswith(name) and sname[len(name):] in _OM_SUFFIXES:
                om.setdefault(sname[len(name):], []).append(line)
            else:
                append(line)
        for suffix, lines in sorted(om.items()):
            append(f"# HELP {name}{suffix} {doc}\n# TYPE {name}{suffix} gauge\n")
            out.extend(lines)
    return "".join(out).encode("utf-8")
