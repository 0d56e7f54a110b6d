"""The `textfile` collector: metrics that prolog, epilog and cron scripts write to `*.prom` files, with
node_exporter's semantics (`--collector.textfile.directory`, node_textfile_mtime_seconds,
node_textfile_scrape_error), so the scripts sites already run for node_exporter work unchanged.

Rules, as node_exporter's collector/textfile.go: only `*.prom` files; a file that does not parse,
or carries client-side timestamps, is skipped whole; a family whose HELP differs from the one an
earlier file gave is skipped; label sets of one family are padded with empty labels; files without
HELP get "Metric read from <files>". Stricter than node_exporter (which leaves these to its registry
or panics): a file that defines a family hpcwatch itself exports (`hpc_*`, `hpcwatch_*`, the node
collector's node_* families) is rejected whole, a family whose TYPE differs from an earlier file's
is skipped, and a repeated series is dropped; each of these sets node_textfile_scrape_error to 1.
"""

from __future__ import annotations

import dataclasses
import decimal
import glob
import logging
import math
import os
import stat
from collections.abc import Callable, Iterator, Sequence

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.families import FamilyTable, gauge
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.node.families import is_own_family
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.textfile.textformat import ParsedFamily, TextFormatError, parse_text_format
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

log = logging.getLogger("hpcwatch.collector.textfile")

# Its own two families (node_exporter's); what the files hold is served as the files say (passthrough).
FAMILIES = FamilyTable([
    gauge("node_textfile_mtime_seconds", "Unix mtime of the textfiles successfully read.", "file"),
    gauge("node_textfile_scrape_error", "1 if there was an error opening, reading or merging a file, 0 otherwise."),
], passthrough=True)

MAX_FILE_BYTES = 64 << 20  # a runaway script's file is an error, not an out-of-memory agent
_METRIC_TYPE = {"counter": "counter", "gauge": "gauge", "untyped": "unknown", "summary": "summary",
                "histogram": "histogram"}


@dataclasses.dataclass
class TextFile:
    """One `*.prom` file as read: its path (the `file` label), mtime, and parsed families or the error."""

    path: str
    mtime: float | None
    families: dict[str, ParsedFamily] | None
    error: str | None = None


@dataclasses.dataclass
class Merged:
    """What one scrape serves: families in first-seen order, mtimes of the files read, and problems."""

    families: dict[str, ParsedFamily]
    help_files: dict[str, list[str]]
    mtimes: dict[str, float]
    errors: list[str]


def file_problem(tf: TextFile, reserved: Callable[[str], bool]) -> str | None:
    """Why a parsed file is skipped whole, or None."""
    for name, fam in (tf.families or {}).items():
        if fam.has_timestamps:
            return f"{tf.path}: contains unsupported client-side timestamps (family {name}); file skipped"
        if reserved(name):
            return f"{tf.path}: family {name} is one hpcwatch exports itself; file skipped"
        if fam.type == "gauge_histogram":
            return f"{tf.path}: family {name} is a gauge histogram, which the textfile collector cannot serve"
    return None


def merge(files: Sequence[TextFile], reserved: Callable[[str], bool] = is_own_family) -> Merged:
    """node_exporter's merge of several files' families (pure). Files in the order they were found."""
    out = Merged({}, {}, {}, [])
    for tf in files:
        if tf.families is None:
            out.errors.append(tf.error or f"{tf.path}: unreadable")
            continue
        problem = file_problem(tf, reserved)
        if problem is not None:
            out.errors.append(problem)
            continue
        for name, fam in tf.families.items():
            have = out.families.get(name)
            if have is None:
                out.families[name] = ParsedFamily(name, fam.type, fam.help or None, list(fam.metrics))
                out.help_files[name] = [tf.path]
                continue
            if fam.help and have.help != fam.help:
                out.errors.append(f"{tf.path}: family {name} has help {fam.help!r}, but {out.help_files[name][0]} "
                                  f"gave {have.help!r}; skipped")
                continue
            if fam.type != have.type:
                out.errors.append(f"{tf.path}: family {name} is a {fam.type}, but {out.help_files[name][0]} "
                                  f"made it a {have.type}; skipped")
                continue
            have.metrics.extend(fam.metrics)
            out.help_files[name].append(tf.path)
        if tf.mtime is not None:
            out.mtimes[tf.path] = tf.mtime
    return out


def render(merged: Merged) -> tuple[list[Metric], list[str]]:
    """prometheus_client families of the merged files, label sets padded; (families, repeated series)."""
    metrics: list[Metric] = []
    repeated: list[str] = []
    for name, fam in merged.families.items():
        help_text = fam.help or f"Metric read from {', '.join(merged.help_files[name])}"
        label_names = sorted({k for m in fam.metrics for k in m.labels})
        typ = fam.type or "untyped"
        base = name[:-6] if typ == "counter" and name.endswith("_total") else name
        out = Metric(base, help_text, _METRIC_TYPE[typ])
        seen: set[tuple[str, ...]] = set()
        for m in fam.metrics:
            labels = {k: m.labels.get(k, "") for k in label_names}
            key = tuple(labels[k] for k in label_names)
            if key in seen:
                repeated.append(f"{name}{labels}")
                continue
            seen.add(key)
            out.samples.extend(_samples(name, typ, labels, m))
        metrics.append(out)
    return metrics, repeated


def go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it (client_golang's `le` and
    `quantile` labels): shortest digits, exponent form below 1e-4 and from 1e6 (`100`, `1.6384e+06`)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(digits) + int(exponent) - 1
    head = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{head}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{head}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return head + text + "0" * (exp + 1 - len(text))
    return f"{head}{text[:exp + 1]}.{text[exp + 1:]}"


def _samples(name: str, typ: str, labels: dict[str, str], m) -> list[Sample]:
    if typ == "summary":
        out = [Sample(name, {**labels, "quantile": go_float(q)}, v, None, None)
               for q, v in sorted(m.quantiles)]
        return out + [Sample(name + "_sum", labels, m.sum, None, None),
                      Sample(name + "_count", labels, float(int(m.count)), None, None)]
    if typ == "histogram":
        buckets = sorted(m.buckets)
        if not buckets or buckets[-1][0] != float("inf"):
            buckets.append((float("inf"), m.count))
        out = [Sample(name + "_bucket", {**labels, "le": go_float(le)}, v, None, None) for le, v in buckets]
        return out + [Sample(name + "_sum", labels, m.sum, None, None),
                      Sample(name + "_count", labels, m.count, None, None)]
    return [Sample(name, labels, m.value, None, None)]


def read_file(path: str, cache: dict[str, tuple[tuple[int, int, int], TextFile]]) -> TextFile:
    """Parse one file, reusing the last parse while its inode, size and mtime are unchanged."""
    try:
        # O_NONBLOCK: a FIFO someone named x.prom must not hang the scrape (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return TextFile(path, None, None, f"failed to open textfile data file {path}: {exc.strerror or exc}")
    try:
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return TextFile(path, None, None, f"{path}: not a regular file; skipped")
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            if st.st_size > MAX_FILE_BYTES:
                return TextFile(path, None, None, f"{path}: larger than {MAX_FILE_BYTES} bytes; skipped")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return TextFile(path, None, None, f"failed to read textfile data file {path}: {exc.strerror or exc}")
    try:
        families = parse_text_format(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        tf = TextFile(path, None, None, f"{path}: not UTF-8 (byte {exc.start}); skipped")
    except TextFormatError as exc:
        tf = TextFile(path, None, None, f"failed to parse textfile data from {path}: {exc}")
    else:
        tf = TextFile(path, float(st.st_mtime_ns // 1_000_000_000), families)
    cache[path] = (key, tf)
    return tf


def expand(patterns: Sequence[str]) -> list[str]:
    """Directories named by the option: each glob's matches, or the pattern itself when nothing matches."""
    out: list[str] = []
    for pattern in patterns:
        out.extend(sorted(glob.glob(pattern)) or [pattern])
    return out


@register
class TextfileCollector(Collector):
    name = "textfile"
    help = ("metrics from *.prom files that scripts write (node_exporter's textfile collector: prolog, epilog "
            "and cron metrics)")
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (Option("directory", (), "directory of *.prom files to read; a glob, or several separated by commas",
                      type=opt.names),)

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.patterns = list(ctx.option("directory"))
        self._cache: dict[str, tuple[tuple[int, int, int], TextFile]] = {}

    def available(self) -> str | None:
        return None if self.patterns else "no --collector.textfile.directory given"

    def collect(self) -> Iterator[Metric]:
        files: list[TextFile] = []
        errors: list[str] = []
        seen_paths: set[str] = set()
        for directory in expand(self.patterns):
            try:
                names = sorted(os.listdir(directory))
            except OSError as exc:
                errors.append(f"failed to read textfile collector directory {directory}: {exc.strerror or exc}")
                continue
            for name in names:
                if name.endswith(".prom"):
                    path = os.path.normpath(os.path.join(directory, name))
                    seen_paths.add(path)
                    files.append(read_file(path, self._cache))
        for gone in set(self._cache) - seen_paths:
            del self._cache[gone]
        merged = merge(files)
        metrics, repeated = render(merged)
        errors += merged.errors + [f"series {s} appears more than once; the repeat is dropped" for s in repeated]
        for e in errors:
            log_once(log, e, "%s", e)
        yield from metrics
        mtime = FAMILIES.new("node_textfile_mtime_seconds")
        for path in sorted(merged.mtimes):
            mtime.add_metric([path], merged.mtimes[path])
        if merged.mtimes:
            yield mtime
        yield FAMILIES["node_textfile_scrape_error"].value(1 if errors else 0)
