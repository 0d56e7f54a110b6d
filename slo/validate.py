"""Field checks shared by the spec loaders; each failure is a SpecError naming file, SLO and field."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from hpcwatch.slo.conventions import RESERVED_LABELS
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.goformat import parse_duration

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SLO_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]*$")
K8S_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_WINDOW_TPL = re.compile(r"\{\{-?\s*\.window\s*-?\}\}")


class Fields:
    """Reads typed fields of one spec object, raising SpecError with the full path on any mistake."""

    def __init__(self, file: str, slo: str | None = None) -> None:
        self.file = file
        self.slo = slo

    def fail(self, field: str | None, expected: str, got: object = None) -> SpecError:
        return SpecError(self.file, self.slo, field, expected, got)

    def mapping(self, obj: object, field: str | None, required: bool = True) -> dict:
        if obj is None and not required:
            return {}
        if not isinstance(obj, dict):
            raise self.fail(field, "a mapping", obj)
        for k in obj:
            if not isinstance(k, str):
                raise self.fail(field, "string keys", k)
        return obj

    def only(self, obj: dict, field: str | None, allowed: set[str] | frozenset[str]) -> None:
        extra = sorted(set(obj) - set(allowed))
        if extra:
            prefix = f"{field}." if field else ""
            raise self.fail(prefix + extra[0], "one of: " + ", ".join(sorted(allowed)), "unknown field")

    def items(self, obj: object, field: str, what: str) -> list:
        """A non-empty YAML list (of SLOs, objectives, conditions...)."""
        if not isinstance(obj, list) or not obj:
            raise self.fail(field, f"a list of at least one {what}", obj)
        return obj

    def string(self, obj: dict, key: str, field: str, required: bool = True, default: str = "") -> str:
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(field, "a non-empty string", "nothing")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(field, "a non-empty string", value)
        return value

    def name(self, obj: dict, key: str, field: str) -> str:
        value = self.string(obj, key, field)
        if not SLO_NAME.match(value) or len(value) > 128:
            raise self.fail(field, "a name of letters, digits, '-', '_', '.', ':' (at most 128)", value)
        return value

    def number(self, obj: dict, key: str, field: str, lo: float, hi: float, lo_open: bool = True,
               required: bool = True, default: float | None = None) -> float | None:
        value = obj.get(key)
        if value is None and not required:
            return default
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise self.fail(field, f"a number in {rng}", value)
        return float(value)

    def integer(self, obj: dict, key: str, field: str, lo: int = 0, default: int | None = None) -> int | None:
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise self.fail(field, f"a whole number >= {lo}", value)
        return value

    def boolean(self, obj: dict, key: str, field: str, default: bool | None = False) -> bool | None:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(field, "true or false", value)
        return value

    def duration(self, value: object, field: str, required: bool = True) -> int | None:
        if value is None and not required:
            return None
        try:
            seconds = parse_duration(value) if isinstance(value, str) else 0
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise self.fail(field, "a duration such as 5m, 1h or 30d", value)
        return seconds

    def labels(self, obj: object, field: str, annotations: bool = False) -> dict[str, str]:
        """A label (or annotation) map; scalar values become strings as Sloth's YAML decoder does."""
        m = self.mapping(obj, field, required=False)
        out = {}
        for k, v in m.items():
            if not LABEL_NAME.match(k):
                raise self.fail(f"{field}.{k}", "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)", k)
            if not annotations and k in RESERVED_LABELS:
                raise self.fail(f"{field}.{k}", "a label name not reserved for the SLO engine", k)
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (int, float)):
                v = str(v)
            if not isinstance(v, str) or (not annotations and v == ""):
                raise self.fail(f"{field}.{k}", "a non-empty string value", v)
            out[k] = v
        return out

    def query(self, obj: dict, key: str, field: str, windowed: bool = True, promql: bool = True) -> str:
        """A PromQL query template: `{{.window}}` is the only template it may use (and must).
        `promql=False` is for MetricsQL (VictoriaMetrics), which only vmalert can check."""
        q = self.string(obj, key, field)
        check_query(q, self, field, windowed, promql)
        return q

    def percent(self, obj: dict, key: str, field: str) -> float:
        """An objective in percent, (0, 100]; a ratio such as 0.99 is refused with the percent meant."""
        value = self.number(obj, key, field, 0, 100)
        if value <= 1:
            raise self.fail(field, f"a percentage in (0, 100] such as 99.9; {value:g} reads as "
                            f"{value:g}%: did you mean {value * 100:g}?", value)
        return value

    def k8s_labels(self, obj: object, field: str) -> dict[str, str]:
        """Kubernetes metadata labels or annotations: `[prefix/]name` keys, string values."""
        m = self.mapping(obj, field, required=False)
        for k, v in m.items():
            if not K8S_KEY.match(k):
                raise self.fail(f"{field}.{k}", "a Kubernetes label key ([prefix/]name)", k)
            if not isinstance(v, str):
                raise self.fail(f"{field}.{k}", "a string value", v)
        return dict(m)


def render_window(query: str, window: str) -> str:
    """Substitute Sloth's `{{.window}}` (the only template variable queries have)."""
    return _WINDOW_TPL.sub(window, query)


def check_query(query: str, fields: Fields, field: str, windowed: bool = True, promql: bool = True) -> None:
    """`{{.window}}` is the only template and, in a windowed query, present (else every window would
    be the same hard-coded range); the rendered text must parse as PromQL (Prometheus' grammar and
    type checks, via promql-parser), so a typo fails here, naming the field, not later in promtool."""
    rest = _WINDOW_TPL.sub("5m", query)
    if "{{" in rest or "}}" in rest:
        raise fields.fail(field, "a PromQL query whose only template is {{.window}}", query)
    if windowed and rest == query:
        raise fields.fail(field, "a query with {{.window}} where the SLI window goes (e.g. "
                          "rate(x[{{.window}}])); a fixed range would make every window the same", query)
    problem = promql_error(rest) if promql else None
    if problem:
        raise fields.fail(field, f"valid PromQL ({problem})", query)


def promql_error(text: str) -> str | None:
    """Why `text` is not PromQL, or None. promql-parser is a binding of GreptimeDB's Rust port of
    Prometheus' own parser: same grammar, function table and type checks."""
    import promql_parser

    try:
        promql_parser.parse(text)
    except ValueError as exc:
        return str(exc).splitlines()[0] if str(exc) else "cannot parse"
    except BaseException as exc:  # the Rust binding raises pyo3 PanicException on some inputs
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return f"cannot parse: {exc}"[:200]
    return None


def as_mapping(obj: object) -> Mapping:
    return obj if isinstance(obj, Mapping) else {}
