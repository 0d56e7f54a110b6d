"""Where generated rules go: one output document per input object, as Sloth writes them.

Sloth generates each input object (a YAML document, or an item of a YAML list) on its own and
writes it as its own document: a `prometheus/v1` spec as a rule file, a PrometheusServiceLevel CRD as
a PrometheusRule carrying the CRD's name, namespace, labels and annotations. `-o FILE` and stdout
get the documents one after the other (Sloth's text); `-o DIR/` gets one `.yml` file per object,
because Prometheus reads only the first document of a rule file.
"""

from __future__ import annotations

import dataclasses
import os

from hpcwatch.slo import writer
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.generate import DEFAULT_OPTIONS, Options, generate_rules
from hpcwatch.slo.model import SLO, SpecObject

FORMATS = ("auto", "prometheus", "prometheus-operator")
# OpenSLO v1 SLOs and SLIs reference each other across documents: one object per file.
_PER_FILE_KINDS = frozenset({"openslo/v1"})


@dataclasses.dataclass(frozen=True)
class Target:
    """The output side of `slo generate`: path (FILE, DIR/ or -), format, and PrometheusRule defaults."""

    out: str
    format: str = "auto"
    inputs: tuple[str, ...] = ()
    name: str | None = None
    namespace: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.out != "-" and (os.path.isdir(self.out) or self.out.endswith(os.sep))


def objects(slos: list[SLO]) -> list[tuple[SpecObject, list[SLO]]]:
    """SLOs grouped by the input object they came from, in input order."""
    out: dict[tuple, tuple[SpecObject, list[SLO]]] = {}
    for slo in slos:
        o = slo.origin or SpecObject(slo.source)
        key = (o.file, 0 if o.kind in _PER_FILE_KINDS else o.index)
        out.setdefault(key, (o, []))[1].append(slo)
    return list(out.values())


def _render(obj: SpecObject, slos: list[SLO], target: Target, opts: Options, name: str) -> str:
    rules = generate_rules(slos, opts)
    if not rules["groups"]:
        raise SpecError(obj.file, slos[0].name, None, "some rules to write (--disable-alerts and "
                        "--disable-recordings together leave none)", "no rules")
    crd = obj.kind == "sloth.slok.dev/v1"
    if target.format == "prometheus" or (target.format == "auto" and not crd):
        return writer.prometheus_text(rules)
    return writer.operator_text(rules, obj.name or name, obj.namespace or target.namespace, dict(obj.labels),
                                dict(obj.annotations))


def _names(objs: list[tuple[SpecObject, list[SLO]]], target: Target) -> list[str]:
    """PrometheusRule names for objects that are not CRDs: --name, else the spec file's stem; with
    several such objects each gets its file's stem (and service) appended, so none replaces another."""
    plain = [(o, g) for o, g in objs if not o.name]
    out = []
    for o, group in objs:
        stem = os.path.splitext(os.path.basename(o.file))[0]
        if len(plain) <= 1:
            out.append(target.name or stem)
            continue
        per_file = sum(1 for p, _ in plain if p.file == o.file)
        part = stem + (f"-{group[0].service}" if per_file > 1 else "")
        out.append(f"{target.name}-{part}" if target.name else part)
    return out


def _relative(path: str, inputs: tuple[str, ...]) -> str:
    """The spec file's path under the input directory it was found in (Sloth's output layout)."""
    rel = os.path.basename(path)
    for root in (os.path.abspath(p) for p in inputs if os.path.isdir(p)):
        if os.path.abspath(path).startswith(root + os.sep):
            rel = os.path.relpath(os.path.abspath(path), root)
    return os.path.splitext(rel)[0]


def render_outputs(slos: list[SLO], target: Target, opts: Options = DEFAULT_OPTIONS) -> dict[str, str]:
    """{path: text}. A directory gets `<spec path>.yml` per object (`<spec path>-<name>.yml` when a
    file holds several); a file or stdout gets every object's document in input order."""
    objs = objects(slos)
    names = _names(objs, target)
    if not target.is_dir:
        return {target.out: "".join(_render(o, group, target, opts, n) for (o, group), n in zip(objs, names))}
    per_file: dict[str, int] = {}
    for o, _ in objs:
        per_file[o.file] = per_file.get(o.file, 0) + 1
    files: dict[str, str] = {}
    for (o, group), name in zip(objs, names):
        stem = _relative(o.file, target.inputs)
        if per_file[o.file] > 1:
            stem += f"-{o.name or group[0].service}"
        path = os.path.join(target.out, stem + ".yml")
        n = 2
        while path in files:
            path = os.path.join(target.out, f"{stem}-{n}.yml")
            n += 1
        files[path] = _render(o, group, target, opts, name)
    return files
