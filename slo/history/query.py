"""The part of PromQL the SLI queries of the HPC catalogue use, read as a sum of counted terms.

`parse_sli_query('(sum(increase(hpc_scheduler_jobs_finished_total{cause="system"}[{{.window}}])) or
vector(0))')` is `Linear({Term("increase", "hpc_scheduler_jobs_finished_total", ...): 1.0})`: the
error or total side of an SLI as `sum over terms of coef x term`, where a term counts job events in
the SLO window (`increase`, `rate`) or is an instant gauge (no range). An absent series is zero, so
`X or vector(0)` is X. Anything else (`sum by`, `histogram_quantile`, `/` between series, ...) raises
UnsupportedQuery: such an SLI is replayed from Prometheus (`--prometheus`), not from job records.
"""

from __future__ import annotations

import dataclasses
import re

from hpcwatch.slo.goformat import parse_duration

WINDOW_TEMPLATE = "{{.window}}"


class UnsupportedQuery(ValueError):
    """An SLI query outside the subset that job records can answer (the message says what)."""


@dataclasses.dataclass(frozen=True)
class Matcher:
    """One label matcher; regexes are fully anchored, as in PromQL; an absent label is ''."""

    label: str
    op: str       # =, !=, =~, !~
    value: str

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = re.fullmatch(self.value, value) is not None
        return hit if self.op == "=~" else not hit


@dataclasses.dataclass(frozen=True)
class Term:
    """`sum(func(metric{matchers}[window]))`; func is increase, rate or gauge; window None = the SLO window."""

    func: str
    metric: str
    matchers: tuple[Matcher, ...]
    window_s: int | None = None


@dataclasses.dataclass(frozen=True)
class Linear:
    """sum(coef x term) + const."""

    terms: tuple[tuple[Term, float], ...] = ()
    const: float = 0.0

    def scale(self, k: float) -> Linear:
        return Linear(tuple((t, c * k) for t, c in self.terms), self.const * k)

    def plus(self, other: Linear) -> Linear:
        acc: dict[Term, float] = {}
        for t, c in self.terms + other.terms:
            acc[t] = acc.get(t, 0.0) + c
        return Linear(tuple(acc.items()), self.const + other.const)


_TOKEN = re.compile(r"""\s*(?:
    (?P<window>\[\{\{\s*\.window\s*\}\}\]) |
    (?P<range>\[[0-9a-z]+\]) |
    (?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?) |
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
    (?P<op>=~|!~|!=|==|>=|<=|[-+*/(){},=<>]) |
    (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UnsupportedQuery(f"cannot read the query at {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind):
            raise UnsupportedQuery(f"expected {value or kind}, got {v or 'end of query'!r}")
        self.i += 1
        return v

    def expr(self) -> Linear:
        left = self.additive()
        while self.peek() == ("ident", "or"):
            self.take("or")
            right = self.additive()
            if right.terms or right.const != 0:
                raise UnsupportedQuery("`or` with anything but vector(0)")
        return left

    def additive(self) -> Linear:
        left = self.product()
        while self.peek()[1] in ("+", "-"):
            sign = 1.0 if self.take() == "+" else -1.0
            left = left.plus(self.product().scale(sign))
        return left

    def product(self) -> Linear:
        left = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()
            right = self.unary()
            if right.terms and not left.terms and op == "*":
                left, right = right, left
            if right.terms:
                raise UnsupportedQuery(f"`{op}` between two series")
            if op == "/" and right.const == 0:
                raise UnsupportedQuery("division by zero")
            left = left.scale(right.const if op == "*" else 1.0 / right.const)
        return left

    def unary(self) -> Linear:
        kind, value = self.peek()
        if value == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        if value == "-":
            self.take("-")
            return self.unary().scale(-1.0)
        if kind == "num":
            return Linear((), float(self.take()))
        if value == "vector":
            self.take("vector")
            self.take("(")
            n = float(self.take(kind="num"))
            self.take(")")
            return Linear((), n)
        if value == "sum":
            self.take("sum")
            if self.peek()[1] != "(":
                raise UnsupportedQuery("sum by/without (the SLI must be one series)")
            self.take("(")
            term = self.counted()
            self.take(")")
            return Linear(((term, 1.0),))
        raise UnsupportedQuery(f"{value or 'end of query'!r} (only sum(increase|rate(...)), sum(gauge), "
                               "vector(N), numbers, + - * /)")

    def counted(self) -> Term:
        _, value = self.peek()
        if value in ("increase", "rate"):
            func = self.take()
            self.take("(")
            metric, matchers = self.selector()
            window = self.range_()
            self.take(")")
            return Term(func, metric, matchers, window)
        if self.i + 1 < len(self.toks) and self.toks[self.i + 1][1] == "(":
            raise UnsupportedQuery(f"{value}() (job records answer sum(increase|rate(...)) and sum(gauge))")
        metric, matchers = self.selector()
        if self.peek()[0] in ("window", "range"):
            raise UnsupportedQuery("a range vector outside increase()/rate()")
        return Term("gauge", metric, matchers, None)

    def selector(self) -> tuple[str, tuple[Matcher, ...]]:
        metric = self.take(kind="ident")
        matchers = []
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take(kind="ident")
                op = self.take()
                if op not in ("=", "!=", "=~", "!~"):
                    raise UnsupportedQuery(f"label matcher {op!r}")
                raw = self.take(kind="str")
                matchers.append(Matcher(label, op, _unquote(raw)))
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        return metric, tuple(matchers)

    def range_(self) -> int | None:
        kind, value = self.peek()
        if kind == "window":
            self.take()
            return None
        if kind == "range":
            self.take()
            try:
                return parse_duration(value[1:-1])
            except ValueError:
                raise UnsupportedQuery(f"range {value}") from None
        raise UnsupportedQuery("increase()/rate() without a range")


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def parse_sli_query(text: str) -> Linear:
    """An error or total query (with `{{.window}}` or a fixed range) -> Linear; raises UnsupportedQuery."""
    p = _Parser(text)
    out = p.expr()
    if p.peek()[0] != "eof":
        raise UnsupportedQuery(f"unexpected {p.peek()[1]!r}")
    return out
