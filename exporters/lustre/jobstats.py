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
from collections.abc import Callable, Iterable, Iterator, Sequence
from sys import intern
from typing import NamedTuple

ErrorCallback = Callable[[str], None]

BLOCK_CHARS = 256 * 1024          # process the buffer in blocks of about this size
MAX_RECORD_CHARS = 1 << 20        # a "record" larger than this is garbage, not a job

# A whole counter line; matched in full only for counters with samples > 0 (most are zero).
_COUNTER = re.compile(
    r"[ \t]+([A-Za-z_]\w*):[ \t]*\{[ \t]*samples:[ \t]*(\d+)(?:,[ \t]*unit:[ \t]*(\w+))?"
    r"(?:,[ \t]*min:[ \t]*\d+,[ \t]*max:[ \t]*\d+,[ \t]*sum:[ \t]*(\d+))?"
    r"(?:,[ \t]*sumsq:[ \t]*\d+)?(?:,[ \t]*hist:[ \t]*\{[^{}\n]*\})?[ \t]*\}[ \t]*\r?"
)
# Starts with a literal, so the engine jumps from counter to counter and stops only at non-zero ones.
_NONZERO = re.compile(r"\{ samples:[ \t]*0*[1-9]")
# Non-zero counter lines in one pass, all in C, in the layout every version's kernel prints (two-space
# indent, `, ` separators, ASCII): possessive quantifiers make a zero counter fail at its sample count
# (no backtracking), so only non-zero lines produce (name, samples, unit, sum) tuples. A line in any other
# spelling is not matched here; the record then takes the slow path, which accepts what _COUNTER accepts
# (a superset of this pattern, with the same groups).
_FAST = re.compile(
    r"(?a)\n  ([A-Za-z_]\w*+): *+\{ samples: *+([1-9]\d*+)(?:, unit: *+(\w++))?"
    r"(?:, min: *+\d++, max: *+\d++, sum: *+(\d++))?(?:, sumsq: *+\d++)?(?:, hist: \{[^{}\n]*+\})? \}(?=\n|\Z)"
)
# Every version prints counters as `{ samples: %11llu`; a zero counter is validated no further than
# its sample count (the fast path counts the kernel's exact zero spelling, the slow path any spelling).
_COUNTER_MARK = "{ samples:"
_ZERO_MARK = "{ samples:           0,"
_SAMPLES = re.compile(r"\{ samples:[ \t]*\d+(?:,|[ \t]*\})")
_HEADER_MARK = "_time:"  # snapshot_time:, start_time:, elapsed_time:
# The first line of a record's piece that starts at column 0 ends the record (a header or garbage).
_TOP = re.compile(r"\n(?=[^ \t\r\n])")
_PARAM_HEADER = re.compile(r"(?:[\w\-]+\.)?([\w\-]+)\.job_stats=[ \t]*\r?")
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")
_RECORD_SEP = "\n- job_id:"

# The block fast path: a block whose every line is in the kernel's exact layout is split by one regex
# into its job_id lines and non-zero counter lines, with no per-record counting or splitting. Every
# line is either plain (a time header or a zero counter, consumed) or interesting (a job_id or a
# non-zero counter, captured), so a split whose between-texts are all empty proves the block clean.
# Names may not end in `_time` and histograms hold only `<size>: <count>` items, so no line carries a
# second mark: a clean block passes the per-record checks below record by record, and gives the same
# records. Anything else (lctl headers, CRLF, other spacing, garbage) takes the per-record path.
_TILE_NAME = r"[A-Za-z_]\w*+(?<!_time)"
_TILE_HIST = r"(?:, hist: \{(?: \d++[KMG]?: \d++,?)*+ \})?"
_TILE_PLAIN = (
    r"\n  (?:(?:snapshot|start|elapsed)_time: *+\d++(?:\.\d++)?(?: secs\.nsecs)?(?=\n|\Z)"
    r"|" + _TILE_NAME + r": *+\{ samples:           0, unit: *+\w++(?:, min: *+\d++, max: *+\d++, sum: *+\d++)?"
    r"(?:, sumsq: *+\d++)?" + _TILE_HIST + r" \}(?=\n|\Z))"
)
# Groups: job_id line | name, samples, unit, sum (None when absent) of a non-zero counter.
_TILE = re.compile(
    r"(?a)(?:" + _TILE_PLAIN + r")*+\n(?:- job_id:([^\n]*+)|  (" + _TILE_NAME + r"): *+\{ samples: *+([1-9]\d*+)"
    r"(?:, unit: *+(\w++))?(?:, min: *+\d++, max: *+\d++, sum: *+(\d++))?(?:, sumsq: *+\d++)?" + _TILE_HIST
    + r" \}(?=\n|\Z))"
)
_TILE_GROUPS = 5
_TILE_TAIL = re.compile(r"(?a)(?:" + _TILE_PLAIN + r")*+")


class JobCounter(NamedTuple):
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


# (name, samples, unit, total): a JobCounter's fields as a plain tuple (no NamedTuple __new__ per counter).
RawCounter = tuple[str, int, str, int]
# (target, job_id, counters): a JobStatsRecord's fields, as iter_job_stats yields them.
RawJobStats = tuple[str, str, Sequence[RawCounter]]


class JobIdError(ValueError):
    """A job_id that cannot be decoded (bad quoting or escapes)."""


def decode_job_id(raw: str) -> str:
    """The job id as the kernel holds it: unquote "..." and decode \\xHH escapes (Lustre 2.15+)."""
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise JobIdError(f"unterminated quoted job_id {raw[:40]!r}")
        raw = raw[1:-1]
        if "\\" in raw:
            if "\\" in _ESCAPE.sub("", raw):
                raise JobIdError(f"bad escape in job_id {raw[:40]!r}")
            raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    if not raw:
        raise JobIdError("empty job_id")
    return raw


def parse_job_stats(pieces: Iterable[str], target: str = "",
                    on_error: ErrorCallback | None = None) -> Iterator[JobStatsRecord]:
    """Yield records from job_stats text given as pieces (a file's lines, or blocks of any size).

    `target` names the target when the text is one file; `lctl get_param` headers override it.
    A record that does not parse is skipped and reported through `on_error`; parsing goes on.
    """
    make = JobCounter._make
    for tgt, job_id, counters in iter_job_stats(pieces, target, on_error):
        yield JobStatsRecord(tgt, job_id, tuple(map(make, counters)))


def iter_job_stats(pieces: Iterable[str], target: str = "",
                   on_error: ErrorCallback | None = None) -> Iterator[RawJobStats]:
    """parse_job_stats without the record objects: (target, job_id, [RawCounter, ...]) per job.

    The refresh path uses this to skip building a dataclass and a NamedTuple per counter.
    """
    state = _StreamState(target, on_error)
    buf: list[str] = ["\n"]  # a leading newline lets the first record split like every other
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size < BLOCK_CHARS:
            continue
        text = "".join(buf)
        cut = text.rfind(_RECORD_SEP)
        if cut <= 0:
            if len(text) <= MAX_RECORD_CHARS:
                buf, size = [text], len(text)
                continue
            cut = len(text)
        yield from state.parse_block(text[:cut])
        rest = text[cut:]
        buf, size = [rest], len(rest)
    text = "".join(buf)
    if text.strip():
        yield from state.parse_block(text)


def parse_job_stats_text(text: str, target: str = "",
                         on_error: ErrorCallback | None = None) -> Iterator[JobStatsRecord]:
    """parse_job_stats over one string (tests, `lctl get_param -n` output)."""
    return parse_job_stats((text,), target, on_error)


class _StreamState:
    """Parser state carried across blocks: the current target and the error sink."""

    def __init__(self, target: str, on_error: ErrorCallback | None) -> None:
        self.target = target
        self.on_error = on_error

    def error(self, reason: str) -> None:
        if self.on_error is not None:
            self.on_error(reason)

    def parse_block(self, text: str) -> Iterator[RawJobStats]:
        """Records of a block that starts with a newline and holds only complete records."""
        records = self._parse_clean_block(text)
        if records is not None:
            yield from records
            return
        pieces = text.split(_RECORD_SEP)
        self._top_lines(pieces[0])
        last = len(pieces) - 1
        record = self._record
        for i in range(1, last + 1):
            piece = pieces[i]
            if i == last:
                piece = piece.rstrip()
            # Top-level lines (the next target's header, garbage) can only follow a record's counters.
            m = _TOP.search(piece) if ("=" in piece or ":\n" in piece or i == last) else None
            if m is None:
                counters = record(piece)
            else:
                counters = record(piece[:m.start()])
                self._top_lines(piece[m.start():])
            if counters is not None:
                yield counters

    def _parse_clean_block(self, text: str) -> list[RawJobStats] | None:
        """The records of a block in the kernel's exact layout, or None to parse it record by record."""
        start = text.find(_RECORD_SEP)
        if start < 0:
            return None
        parts = _TILE.split(text.rstrip()[start:])  # rstrip: what parse_block does to the last record
        n = _TILE_GROUPS + 1
        if any(parts[0:-1:n]) or _TILE_TAIL.fullmatch(parts[-1]) is None:
            return None
        self._top_lines(text[:start])
        target = self.target
        out: list[RawJobStats] = []
        counters: list[RawCounter] | None = None
        for raw, name, samples, unit, total in zip(parts[1::n], parts[2::n], parts[3::n], parts[4::n],
                                                   parts[5::n]):
            if raw is None:
                if counters is not None:
                    counters.append((intern(name), int(samples), intern(unit) if unit else "",
                                     int(total) if total else 0))
                continue
            job_id = self._job_id(raw)
            counters = None if job_id is None else []
            if counters is not None:
                out.append((target, job_id, counters))
        return out

    def _top_lines(self, text: str) -> None:
        """Lines outside records: `job_stats:`, `<type>.<target>.job_stats=` headers, blanks."""
        in_garbage = False
        for line in text.split("\n"):
            if not line.strip():
                continue
            if line[0] in " \t":
                if not in_garbage:
                    self.error("counter lines outside any job record")
                in_garbage = True
                continue
            in_garbage = False
            h = _PARAM_HEADER.fullmatch(line)
            if h is not None:
                self.target = h.group(1)
            elif line.rstrip() != "job_stats:":
                self.error(f"unexpected line {line[:60]!r}")
                in_garbage = True

    def _job_id(self, line: str) -> str | None:
        """The decoded job_id from the rest of its `- job_id:` line; None (reported) when it is bad."""
        # Without padding and \r: what `[ \t]*(.*?)[ \t]*\r?` captures.
        raw = line[:-1] if line[-1:] == "\r" else line
        raw = raw.strip(" \t")
        if len(raw) > 2 and raw[0] == '"' and raw[-1] == '"' and "\\" not in raw:
            return raw[1:-1]  # the common 2.15 spelling, without decode_job_id's call
        if raw and raw[0] != '"':
            return raw
        try:
            return decode_job_id(raw)
        except JobIdError as exc:
            self.error(str(exc))
            return None

    def _record(self, piece: str) -> RawJobStats | None:
        nl = piece.find("\n")
        if nl < 0:
            nl = len(piece)
        job_id = self._job_id(piece[:nl])
        if job_id is None:
            return None
        # Every line must be a counter or a time header: count both against the newlines (all in C).
        n_counters = piece.count(_COUNTER_MARK, nl)
        if n_counters + piece.count(_HEADER_MARK, nl) != piece.count("\n", nl):
            self.error(f"unreadable lines in job {job_id[:40]!r}")
            return None
        fast = _FAST.findall(piece, nl)
        if len(fast) + piece.count(_ZERO_MARK, nl) == n_counters:
            return self.target, job_id, [(intern(name), int(n), intern(unit), int(total) if total else 0)
                                         for name, n, unit, total in fast]
        # Slow path: zeros spelled another way, or a counter line that does not parse.
        if len(_SAMPLES.findall(piece, nl)) != n_counters:
            self.error(f"unreadable sample count in job {job_id[:40]!r}")
            return None
        nonzero = list(_NONZERO.finditer(piece, nl))
        counters = []
        for z in nonzero:
            end = piece.find("\n", z.end())
            c = _COUNTER.fullmatch(piece, piece.rfind("\n", nl, z.start()) + 1, len(piece) if end < 0 else end)
            if c is None:
                self.error(f"unreadable counter in job {job_id[:40]!r}")
                return None
            name, n, unit, total = c.groups()
            counters.append((name, int(n), unit or "", int(total) if total else 0))
        return self.target, job_id, counters
