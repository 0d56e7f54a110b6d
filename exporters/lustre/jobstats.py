"""Streaming parser for Lustre server `job_stats` (obdfilter.*.job_stats, mdt.*.job_stats), 2.10 to 2.15.

The text is YAML-like; one record per job:

    job_stats:
    - job_id:          dd.0                       (2.15: quoted with \\xHH escapes when unusual)
      snapshot_time:   1537070542                 (2.14+: 1664373093.545677640 [secs.nsecs])
      start_time:      1664373001.000000000       (2.14+, optional)
      elapsed_time:    92.545677640               (2.14+, optional)
      read_bytes:      { samples: 1, unit: bytes, min: 4096, max: 4096, sum: 4096, sumsq: 16777216, hist: { 4K: 1 } }
      getattr:         { samples: 0, unit: reqs }  (2.12+: unit usecs with min/max/sum/sumsq)

`lctl get_param` output puts `obdfilter.<target>.job_stats=` before each target's records.

The parser takes the text as pieces (lines, or larger blocks) and yields one `JobStatsRecord` per
job without holding the whole text: memory is bounded by one block plus one record. Validation and
field extraction run inside compiled regular expressions over a block, so the per-line cost stays
in C; only counters with non-zero samples become Python objects.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator

ErrorCallback = Callable[[str], None]

BLOCK_CHARS = 256 * 1024          # process the buffer in blocks of about this size
MAX_RECORD_CHARS = 1 << 20        # a "record" larger than this is garbage, not a job

# Every line a record body may contain, validated in one fullmatch over the body.
_BODY_LINE = (
    r"[ \t]+(?:"
    r"(?:snapshot_time|start_time|elapsed_time):[ \t]*\d+(?:\.\d+)?(?:[ \t]+secs\.[nu]secs)?"
    r"|[A-Za-z_]\w*:[ \t]*\{[ \t]*samples:[ \t]*\d+(?:,[ \t]*unit:[ \t]*\w+)?"
    r"(?:,[ \t]*min:[ \t]*\d+,[ \t]*max:[ \t]*\d+,[ \t]*sum:[ \t]*\d+)?"
    r"(?:,[ \t]*sumsq:[ \t]*\d+)?"
    r"(?:,[ \t]*hist:[ \t]*\{[^{}\n]*\})?[ \t]*\}"
    r")[ \t]*\r?(?:\n|\Z)"
)
_BODY = re.compile(rf"(?:{_BODY_LINE}|[ \t]*\r?\n)*")
# Counters with at least one sample: (name, samples, unit, sum).
_NONZERO = re.compile(
    r"^[ \t]+([A-Za-z_]\w*):[ \t]*\{[ \t]*samples:[ \t]*0*([1-9]\d*)(?:,[ \t]*unit:[ \t]*(\w+))?"
    r"(?:,[ \t]*min:[ \t]*\d+,[ \t]*max:[ \t]*\d+,[ \t]*sum:[ \t]*(\d+))?",
    re.M,
)
# Lines that start at column 0: job_id lines, headers, or garbage.
_TOP = re.compile(r"^[^ \t\r\n][^\n]*", re.M)
_JOB_ID = re.compile(r"- job_id:[ \t]*(.*?)[ \t]*\r?$")
_PARAM_HEADER = re.compile(r"(?:[\w\-]+\.)?([\w\-]+)\.job_stats=[ \t]*\r?$")
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


@dataclasses.dataclass(frozen=True, slots=True)
class JobCounter:
    """One counter with samples > 0; `total` is the sum column (bytes or usecs), 0 when absent."""

    name: str
    samples: int
    unit: str
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class JobStatsRecord:
    """One job on one target: its raw job_id and its non-zero counters."""

    target: str
    job_id: str
    counters: tuple[JobCounter, ...]


class JobIdError(ValueError):
    """A job_id that cannot be decoded (bad quoting or escapes)."""


def decode_job_id(raw: str) -> str:
    """The job id as the kernel holds it: unquote "..." and decode \\xHH escapes (Lustre 2.15+)."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise JobIdError(f"unterminated quoted job_id {raw[:40]!r}")
        inner = raw[1:-1]
        if "\\" in _ESCAPE.sub("", inner):
            raise JobIdError(f"bad escape in job_id {raw[:40]!r}")
        raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), inner)
    if not raw:
        raise JobIdError("empty job_id")
    return raw


def parse_job_stats(pieces: Iterable[str], target: str = "",
                    on_error: ErrorCallback | None = None) -> Iterator[JobStatsRecord]:
    """Yield records from job_stats text given as pieces (a file's lines, or blocks of any size).

    `target` names the target when the text is one file; `lctl get_param` headers override it.
    A record that does not parse is skipped and reported through `on_error`; parsing goes on.
    """
    state = _StreamState(target, on_error)
    buf: list[str] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size < BLOCK_CHARS:
            continue
        text = "".join(buf)
        cut = _last_record_start(text)
        if cut <= 0:
            if len(text) <= MAX_RECORD_CHARS:
                buf, size = [text], len(text)
                continue
            cut = len(text)
        yield from state.parse_block(text, 0, cut)
        rest = text[cut:]
        buf, size = [rest], len(rest)
    text = "".join(buf)
    if text:
        yield from state.parse_block(text, 0, len(text))


def parse_job_stats_text(text: str, target: str = "",
                         on_error: ErrorCallback | None = None) -> Iterator[JobStatsRecord]:
    """parse_job_stats over one string (tests, `lctl get_param -n` output)."""
    return parse_job_stats((text,), target, on_error)


def _last_record_start(text: str) -> int:
    """Index of the start of the last top-level line, so text[:i] holds only complete records."""
    i = len(text) - 1
    while True:
        j = text.rfind("\n", 0, i)
        if j < 0:
            return 0
        nxt = text[j + 1:j + 2]
        if nxt and nxt not in " \t\r\n":
            return j + 1
        i = j


class _StreamState:
    """Parser state carried across blocks: the current target and the error sink."""

    def __init__(self, target: str, on_error: ErrorCallback | None) -> None:
        self.target = target
        self.on_error = on_error

    def error(self, reason: str) -> None:
        if self.on_error is not None:
            self.on_error(reason)

    def parse_block(self, text: str, start: int, end: int) -> Iterator[JobStatsRecord]:
        tops = list(_TOP.finditer(text, start, end))
        # Body lines before the first top-level line belong to no record.
        first = tops[0].start() if tops else end
        if text[start:first].strip():
            self.error("counter lines outside any job record")
        for i, m in enumerate(tops):
            body_start = min(m.end() + 1, end)
            body_end = tops[i + 1].start() if i + 1 < len(tops) else end
            line = m.group(0)
            if line.startswith("- job_id:"):
                rec = self._record(line, text, body_start, body_end)
                if rec is not None:
                    yield rec
                continue
            h = _PARAM_HEADER.match(line)
            if h is not None:
                self.target = h.group(1)
            elif line.rstrip() != "job_stats:":
                self.error(f"unexpected line {line[:60]!r}")
            if text[body_start:body_end].strip():
                self.error("counter lines outside any job record")

    def _record(self, line: str, text: str, start: int, end: int) -> JobStatsRecord | None:
        m = _JOB_ID.fullmatch(line)
        try:
            job_id = decode_job_id(m.group(1) if m else "")
        except JobIdError as exc:
            self.error(str(exc))
            return None
        if _BODY.fullmatch(text, start, end) is None:
            self.error(f"unreadable counters in job {job_id[:40]!r}")
            return None
        counters = tuple(JobCounter(name, int(n), unit or "", int(total) if total else 0)
                         for name, n, unit, total in _NONZERO.findall(text, start, end))
        return JobStatsRecord(self.target, job_id, counters)
