"""Exposition: the Prometheus text format (0.0.4) written fast, OpenMetrics on request, and reuse.

Text output is byte-for-byte what prometheus_client's `generate_latest` writes for the names we use
(legacy metric and label names, which every hpcwatch family has); tests pin that equivalence.
Label values from users are escaped here (backslash, quote, newline) like the library does.
OpenMetrics is prometheus_client's own encoder, one family at a time. `FamilyBytes` keeps each
family's bytes while a collector keeps yielding the very same family object, which snapshot
collectors do between refreshes: their scrapes then cost a join, not a render.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

TEXT = "text"
OPENMETRICS = "openmetrics"
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version={version}; charset=utf-8"
OPENMETRICS_EOF = b"# EOF\n"

log = logging.getLogger("hpcwatch.exposition")
_refused: set[str] = set()

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


class _One:
    """The registry shape prometheus_client's encoders take, over one family."""

    __slots__ = ("family",)

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


# Sample suffixes OpenMetrics allows per family type, and which suffix needs which other one.
_OPENMETRICS_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "summary": ("", "_count", "_sum", "_created"),
                "info": ("_info",), "stateset": ("",), "gauge": ("",), "unknown": ("",)}
_OPENMETRICS_PAIRS = {"histogram": ("_count", "_sum"), "gaugehistogram": ("_gcount", "_gsum"),
                      "summary": ("_count", "_sum")}


def openmetrics_shaped(family: Metric) -> list[Metric]:
    """The family as OpenMetrics can state it: itself when its samples fit its type, else one `unknown`
    family per sample name (a textfile counter without `_total`, a histogram with a count but no sum),
    so the series are the ones the text format carries and strict parsers accept the body."""
    allowed = _OPENMETRICS_SUFFIXES.get(family.type)
    names = {s.name for s in family.samples}
    suffixes = {n[len(family.name):] if n.startswith(family.name) else None for n in names}
    fits = allowed is not None and suffixes <= set(allowed)
    pair = _OPENMETRICS_PAIRS.get(family.type)
    if fits and pair is not None and pair[0] in suffixes and pair[1] not in suffixes:
        fits = False
    if fits:
        return [family]
    split = []
    for name in sorted(names):
        m = Metric(name, family.documentation, "unknown")
        m.samples = [s for s in family.samples if s.name == name]
        split.append(m)
    return split


def render_openmetrics_family(family: Metric) -> bytes:
    """One family in OpenMetrics 1.0 text, without the closing `# EOF`; b"" (logged) if the encoder refuses it."""
    try:
        out = b"".join(openmetrics.generate_latest(_One(f))[: -len(OPENMETRICS_EOF)]
                       for f in openmetrics_shaped(family)) + OPENMETRICS_EOF
    except Exception as exc:  # noqa: BLE001 - one odd family must not cost the whole scrape
        if family.name not in _refused:
            _refused.add(family.name)
            log.warning("family %s left out of OpenMetrics scrapes: %s", family.name, exc)
        return b""
    return out[: -len(OPENMETRICS_EOF)] if out.endswith(OPENMETRICS_EOF) else out


def render_family(family: Metric, fmt: str) -> bytes:
    return render_openmetrics_family(family) if fmt == OPENMETRICS else render_text((family,))


def negotiate(accept: str) -> tuple[str, str]:
    """(format, Content-Type) for an Accept header, as promhttp chooses: highest q first, text by default.

    OpenMetrics 1.0.0 and 0.0.1 (the body is the same) are served when asked for; any text/plain gets
    the 0.0.4 text format; protobuf is not offered.
    """
    choices: list[tuple[float, int, str, str]] = []
    for i, item in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in item.split(";"))
        opts = {}
        for p in params:
            k, _, v = p.partition("=")
            opts[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(opts.get("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            choices.append((-q, i, media.lower(), opts.get("version", "")))
    for _, _, media, version in sorted(choices):
        if media == "application/openmetrics-text" and version in ("", "1.0.0", "0.0.1"):
            return OPENMETRICS, CONTENT_TYPE_OPENMETRICS.format(version=version or "1.0.0")
        if media in ("text/plain", "text/*", "*/*"):
            return TEXT, CONTENT_TYPE_TEXT
    return TEXT, CONTENT_TYPE_TEXT


class FamilyBytes:
    """Rendered bytes of the families one collector yielded last time, reused for the same objects.

    Families are immutable once yielded (Collector contract), so the same object renders the same
    bytes; entries for objects no longer yielded are dropped on the next render.
    """

    def __init__(self) -> None:
        self._by_format: dict[str, dict[int, tuple[Metric, bytes]]] = {}

    def render(self, families: Iterable[Metric], fmt: str) -> list[bytes]:
        old = self._by_format.get(fmt, {})
        new: dict[int, tuple[Metric, bytes]] = {}
        parts = []
        for fam in families:
            entry = old.get(id(fam))
            if entry is None or entry[0] is not fam:
                entry = (fam, render_family(fam, fmt))
            new[id(fam)] = entry
            parts.append(entry[1])
        self._by_format[fmt] = new
        return parts
