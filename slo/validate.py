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

    def query(self, obj: dict, key: str, field: str) -> str:
        """A PromQL query template: `{{.window}}` is the only template it may use."""
        q = self.string(obj, key, field)
        check_query(q, self, field)
        return q


def render_window(query: str, window: str) -> str:
    """Substitute Sloth's `{{.window}}` (the only template variable queries have)."""
    return _WINDOW_TPL.sub(window, query)


def check_query(query: str, fields: Fields, field: str) -> None:
    """Cheap structural checks: only `{{.window}}` templating, balanced brackets outside strings."""
    rest = _WINDOW_TPL.sub("5m", query)
    if "{{" in rest or "}}" in rest:
        raise fields.fail(field, "a PromQL query whose only template is {{.window}}", query)
    stack, quote, i = [], None, 0
    pairs = {")": "(", "]": "[", "}": "{"}
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "#":
            nl = rest.find("\n", i)
            i = len(rest) if nl < 0 else nl
        elif ch in "([{":
            stack.append(ch)
        elif ch in ")]}" and (not stack or stack.pop() != pairs[ch]):
            raise fields.fail(field, "a PromQL query with balanced brackets", query)
        i += 1
    if stack or quote:
        raise fields.fail(field, "a PromQL query with balanced brackets and quotes", query)


def as_mapping(obj: object) -> Mapping:
    return obj if isinstance(obj, Mapping) else {}
