"""A strict parser of the Prometheus text format (0.0.4) with the rules of prometheus/common's expfmt
TextParser, the one node_exporter's textfile collector uses: what it rejects, this rejects too, with
the line number and the reason.

Rules kept: HELP and TYPE at most once per family and TYPE before the family's samples; samples of
one family may be split over the file; `_sum`/`_count` (and `_bucket`) samples belong to a summary
(histogram) family declared before them; quantile and le must be floats; values are Go floats
without `p` or `_`; a timestamp is an int64; a label name appears once per sample and is never
`__name__`; escapes are `\\\\`, `\\"` and `\\n` in label values, `\\\\` and `\\n` in HELP.
"""

from __future__ import annotations

import dataclasses
import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "untyped", "summary", "histogram", "gauge_histogram", "gaugehistogram")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf(inity)?|nan)", re.IGNORECASE)
_INT64 = re.compile(r"[+-]?\d+")
_BLANK = " \t"


class TextFormatError(ValueError):
    """A parse error at a 1-based line."""

    def __init__(self, line: int, msg: str) -> None:
        super().__init__(f"line {line}: {msg}")
        self.line = line
        self.msg = msg


@dataclasses.dataclass
class ParsedMetric:
    """One metric of a family: labels (le and quantile taken out), and its value(s)."""

    labels: dict[str, str]
    value: float = 0.0
    timestamp_ms: int | None = None
    quantiles: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    buckets: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    sum: float = 0.0
    count: float = 0.0


@dataclasses.dataclass
class ParsedFamily:
    name: str
    type: str | None = None  # None until TYPE or the first sample (then "untyped")
    help: str | None = None
    metrics: list[ParsedMetric] = dataclasses.field(default_factory=list)
    _by_signature: dict[tuple[tuple[str, str], ...], ParsedMetric] = dataclasses.field(
        default_factory=dict, repr=False)

    @property
    def has_timestamps(self) -> bool:
        return any(m.timestamp_ms is not None for m in self.metrics)


def parse_go_float(token: str) -> float | None:
    """strconv.ParseFloat as expfmt calls it (no `p`, `P` or `_`); None when it would fail."""
    if not _FLOAT.fullmatch(token):
        return None
    value = float(token)
    if math.isinf(value) and "inf" not in token.lower():
        return None  # out of range (1e999): Go's ErrRange, a parse error in expfmt
    return value


def _unescape(text: str, line: int, quote: bool) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            elif nxt == '"' and quote:
                out.append('"')
            else:
                raise TextFormatError(line, f"invalid escape sequence '\\{nxt}'")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self) -> None:
        self.families: dict[str, ParsedFamily] = {}

    def family_of(self, name: str, line: int) -> tuple[ParsedFamily, str]:
        """The family a sample or comment name belongs to, and the sample's role ("", sum, count, bucket)."""
        if not METRIC_NAME.fullmatch(name):
            raise TextFormatError(line, f"invalid metric name {name!r}")
        fam = self.families.get(name)
        if fam is not None:
            return fam, ""
        for suffix in ("_sum", "_count", "_bucket"):
            if name.endswith(suffix) and len(name) > len(suffix):
                base = self.families.get(name[:-len(suffix)])
                if base is None:
                    continue
                if base.type == "summary" and suffix != "_bucket":
                    return base, suffix[1:]
                if base.type in ("histogram", "gauge_histogram"):
                    return base, suffix[1:]
        fam = self.families[name] = ParsedFamily(name)
        return fam, ""

    def comment(self, rest: str, line: int) -> None:
        words = rest.lstrip(_BLANK)
        keyword, _, after = _split_blank(words)
        if keyword not in ("HELP", "TYPE") or not after:
            return  # a plain comment, or HELP/TYPE with nothing after it: not an error in expfmt
        name, _, tail = _split_blank(after.lstrip(_BLANK))
        if not tail and after.lstrip(_BLANK) == name:
            if not METRIC_NAME.fullmatch(name):
                raise TextFormatError(line, "invalid metric name in comment")
            return
        fam, _role = self.family_of(name, line)
        tail = tail.lstrip(_BLANK)
        if not tail:
            return
        if keyword == "HELP":
            if fam.help is not None:
                raise TextFormatError(line, f"second HELP line for metric name {fam.name!r}")
            fam.help = _unescape(tail, line, quote=False)
            return
        if fam.type is not None:
            raise TextFormatError(line, f"second TYPE line for metric name {fam.name!r}, or TYPE reported after "
                                        "samples")
        typ = tail.lower()
        if typ not in TYPES:
            raise TextFormatError(line, f"unknown metric type {tail!r}")
        fam.type = "gauge_histogram" if typ == "gaugehistogram" else typ

    def sample(self, text: str, line: int) -> None:
        m = METRIC_NAME.match(text)
        if m is None:
            raise TextFormatError(line, "invalid metric name")
        name = m.group(0)
        fam, role = self.family_of(name, line)
        if fam.type is None:
            fam.type = "untyped"
        rest = text[m.end():].lstrip(_BLANK)
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            labels, rest = _labels(rest, line, fam.name)
            rest = rest.lstrip(_BLANK)
        value_token, _, after = _split_blank(rest)
        value = parse_go_float(value_token)
        if value is None:
            raise TextFormatError(line, f"expected float as value, got {value_token!r}")
        timestamp = None
        if after or (rest != value_token):
            ts_token, _, spurious = _split_blank(after.lstrip(_BLANK))
            if not _INT64.fullmatch(ts_token) or not -(1 << 63) <= int(ts_token) < (1 << 63):
                raise TextFormatError(line, f"expected integer as timestamp, got {ts_token!r}")
            if spurious.strip(_BLANK):
                raise TextFormatError(line, f"spurious string after timestamp: {spurious.strip(_BLANK)!r}")
            timestamp = int(ts_token)
        self.add(fam, role, labels, value, timestamp, line)

    def add(self, fam: ParsedFamily, role: str, labels: dict[str, str], value: float, timestamp: int | None,
            line: int) -> None:
        if fam.type not in ("summary", "histogram", "gauge_histogram"):
            fam.metrics.append(ParsedMetric(labels, value, timestamp))
            return
        special = "quantile" if fam.type == "summary" else "le"
        bound_text = labels.pop(special, None) if role == "" or role == "bucket" else None
        if role in ("sum", "count"):
            labels.pop(special, None)
        signature = tuple(sorted(labels.items()))
        metric = fam._by_signature.get(signature)
        if metric is None:
            metric = fam._by_signature[signature] = ParsedMetric(labels)
            fam.metrics.append(metric)
        if timestamp is not None:
            metric.timestamp_ms = timestamp
        if role == "sum":
            metric.sum = value
        elif role == "count":
            if value < 0 and fam.type != "summary":
                raise TextFormatError(line, f"negative count for histogram {fam.name!r}")
            metric.count = value
        elif bound_text is not None:
            bound = parse_go_float(bound_text)
            if bound is None:
                raise TextFormatError(line, f"expected float as value for {special!r} label, got {bound_text!r}")
            if fam.type == "summary":
                metric.quantiles.append((bound, value))
            elif value < 0:
                raise TextFormatError(line, f"negative bucket population for histogram {fam.name!r}")
            else:
                metric.buckets.append((bound, value))


def _split_blank(text: str) -> tuple[str, str, str]:
    """(first token up to a blank or tab, the blank, the rest)."""
    for i, c in enumerate(text):
        if c in _BLANK:
            return text[:i], c, text[i + 1:]
    return text, "", ""


def _labels(text: str, line: int, family: str) -> tuple[dict[str, str], str]:
    """Parse `{a="b",c="d"}` at the start of text; (labels, text after the `}`)."""
    labels: dict[str, str] = {}
    i = 1
    n = len(text)
    while True:
        while i < n and text[i] in _BLANK:
            i += 1
        if i < n and text[i] == "}":
            return labels, text[i + 1:]
        m = LABEL_NAME.match(text, i)
        if m is None:
            raise TextFormatError(line, f"invalid label name for metric {family!r}")
        name = m.group(0)
        i = m.end()
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n or text[i] != "=":
            raise TextFormatError(line, f"expected '=' after label name, found {text[i:i + 1]!r}")
        if name == "__name__":
            raise TextFormatError(line, "label name \"__name__\" is reserved")
        if name in labels:
            raise TextFormatError(line, f"duplicate label names for metric {family!r}")
        i += 1
        while i < n and text[i] in _BLANK:
            i += 1
        if i >= n or text[i] != '"':
            raise TextFormatError(line, f"expected '\"' at start of label value, found {text[i:i + 1]!r}")
        j = i + 1
        while j < n and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        if j >= n:
            raise TextFormatError(line, f"unexpected end of label value {text[i + 1:]!r}")
        labels[name] = _unescape(text[i + 1:j], line, quote=True)
        i = j + 1
        while i < n and text[i] in _BLANK:
            i += 1
        if i < n and text[i] == ",":
            i += 1
        elif i < n and text[i] == "}":
            continue
        else:
            raise TextFormatError(line, f"unexpected end of label value {text[i:i + 1]!r}")


def parse_text_format(text: str) -> dict[str, ParsedFamily]:
    """Families by name, in order of first appearance; raises TextFormatError on the first bad line.
    Families that end up without samples (a lone HELP or TYPE) are left out, as expfmt does."""
    p = _Parser()
    if text and not text.endswith("\n"):
        raise TextFormatError(text.count("\n") + 1, "unexpected end of input stream")
    for number, raw in enumerate(text.split("\n")[:-1] if text else [], start=1):
        line = raw.lstrip(_BLANK)
        if not line:
            continue
        if line.startswith("#"):
            p.comment(line[1:], number)
        elif line.startswith("{"):
            raise TextFormatError(number, "invalid metric name")
        else:
            p.sample(line, number)
    return {name: fam for name, fam in p.families.items() if fam.metrics}
