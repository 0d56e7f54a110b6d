"""Spec files in, validated SLO models out: finds YAML files, reads every document, dispatches by kind."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import yaml
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.goformat import parse_duration
from hpcwatch.slo.model import SLO, EventsSLI
from hpcwatch.slo.windows import WindowsCatalogue

DEFAULT_PERIOD = "30d"


def spec_files(paths: Iterable[str], include: str | None = None, exclude: str | None = None) -> list[str]:
    """Files named directly, plus every *.yaml / *.yml under the directories given (sorted); in
    directories, Sloth's --fs-include / --fs-exclude regexes filter the paths (exclude wins)."""
    inc, exc = _regex(include, "--fs-include"), _regex(exclude, "--fs-exclude")
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    path = os.path.join(root, f)
                    if not f.lower().endswith((".yaml", ".yml")) or (exc and exc.search(path)):
                        continue
                    if inc is None or inc.search(path):
                        out.append(path)
        elif os.path.exists(p):
            out.append(p)
        else:
            raise SpecError(p, None, None, "an existing spec file or directory", "not found")
    return out


def _regex(text: str | None, flag: str) -> re.Pattern | None:
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise SpecError(flag, None, flag.lstrip("-"), "a regular expression", f"{text} ({exc})") from None


def read_documents(path: str, text: str | None = None) -> list[object]:
    """Every object of a file: each YAML document, and each item of a document that is a YAML list
    (OpenSLO's examples are lists of objects); YAML errors become SpecError."""
    try:
        if text is None:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        out: list[object] = []
        for d in yaml.safe_load_all(text):
            out.extend(x for x in (d if isinstance(d, list) else [d]) if x is not None)
        return out
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(path, None, None, "valid YAML", f"{getattr(exc, 'problem', None) or exc}{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, None, "a readable UTF-8 file", str(exc)) from None
    except RecursionError:
        raise SpecError(path, None, None, "YAML nested less deeply", "too deep") from None


def kind_of(doc: object) -> str:
    if not isinstance(doc, dict):
        return "unknown"
    if doc.get("version") == "prometheus/v1":
        return "prometheus/v1"
    api = doc.get("apiVersion")
    if api == "sloth.slok.dev/v1":
        return "sloth.slok.dev/v1"
    if api in ("openslo/v1alpha", "openslo/v1", "hpcwatch/v1"):
        return api
    return "unknown"


def load_documents(docs: list[tuple[str, object]], period: str | int = DEFAULT_PERIOD,
                   windows: WindowsCatalogue | None = None,
                   extra_labels: dict[str, str] | None = None) -> list[SLO]:
    """SLO models from (file, parsed YAML document) pairs; OpenSLO v1 SLIs resolve across all of them."""
    from hpcwatch.slo.catalogue import load_catalogue
    from hpcwatch.slo.openslo_v1 import OpenSLOv1Index
    from hpcwatch.slo.spec_openslo import load_openslo_v1alpha
    from hpcwatch.slo.spec_sloth import load_sloth

    period_s = period if isinstance(period, int) else _period(period)
    catalogue = windows or WindowsCatalogue()
    extra = dict(extra_labels or {})
    slos: list[SLO] = []
    v1 = OpenSLOv1Index()
    index: dict[str, int] = {}
    for path, doc in docs:
        kind = kind_of(doc)
        i = index[path] = index.get(path, -1) + 1
        if kind in ("prometheus/v1", "sloth.slok.dev/v1"):
            slos.extend(load_sloth(doc, path, period_s, catalogue, extra, i))
        elif kind == "openslo/v1alpha":
            slos.extend(load_openslo_v1alpha(doc, path, catalogue, extra, i))
        elif kind == "openslo/v1":
            v1.add(doc, path)
        elif kind == "hpcwatch/v1":
            slos.extend(load_catalogue(doc, path, period_s, catalogue, extra, i))
        else:
            got = doc.get("apiVersion") or doc.get("version") if isinstance(doc, dict) else type(doc).__name__
            raise SpecError(path, None, "apiVersion", "version: prometheus/v1, or apiVersion sloth.slok.dev/v1, "
                            "openslo/v1alpha, openslo/v1 or hpcwatch/v1", got)
    slos.extend(v1.slos(catalogue, extra))
    _check(slos)
    return slos


def load_specs(paths: Iterable[str] | str, period: str | int = DEFAULT_PERIOD,
               windows: WindowsCatalogue | list[str] | None = None,
               extra_labels: dict[str, str] | None = None, include: str | None = None,
               exclude: str | None = None) -> list[SLO]:
    """Validated SLO models from spec files and directories; raises SpecError on the first problem.

    `period` is the SLO period for specs that do not carry their own (Sloth's default-slo-period);
    `windows` a WindowsCatalogue or Sloth AlertWindows files; `extra_labels` go on every SLO.
    """
    if isinstance(paths, str):
        paths = [paths]
    if windows is not None and not isinstance(windows, WindowsCatalogue):
        windows = WindowsCatalogue.load(windows)
    docs = [(f, d) for f in spec_files(paths, include, exclude) for d in read_documents(f)]
    return load_documents(docs, period, windows, extra_labels)


def _period(text: str) -> int:
    try:
        s = parse_duration(text)
    except ValueError:
        s = 0
    if s <= 0 or s % 86400:
        raise SpecError("--period", None, "period", "whole days such as 30d or 28d", text)
    return s


def _check(slos: list[SLO]) -> None:
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.id in seen:
            raise SpecError(slo.source, slo.name, "name", f"an SLO id not already used in {seen[slo.id]}", slo.id)
        seen[slo.id] = slo.source
        if slo.min_events and not isinstance(slo.sli, EventsSLI):
            raise SpecError(slo.source, slo.name, "min_events", "an events SLI (a raw ratio has no event count)",
                            slo.min_events)
        if slo.period_s <= slo.windows.page_quick.short_s:
            raise SpecError(slo.source, slo.name, "period", "a period longer than the shortest alert window",
                            slo.period_s)
