"""YAML text as Go's gopkg.in/yaml.v2 writes it (Sloth's writer), so our files diff clean against Sloth's.

Both emitters descend from libyaml: same 80-column folding and sequence indentation. What differs is
the scalar style choice, which `_str` makes the way yaml.v2 does: literal blocks for multi-line text,
double quotes for strings that would read back as another type ("2", "true", ""), else plain.
"""

from __future__ import annotations

import re

import yaml

# YAML 1.1 scalars yaml.v2 would resolve to something other than a string.
_NON_STRING = re.compile(r"""^(?:
    [-+]?(?:0|[1-9][0-9_]*)|0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
   |[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*(?:[eE][-+]?[0-9]+)
   |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
   |y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
   |~|null|Null|NULL|<<|=
)$""", re.VERBOSE)


# libyaml's C emitter when PyYAML has it: it is the emitter yaml.v2 was ported from, and 20x faster.
_BASE = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class GoYAMLDumper(_BASE):
    """SafeDumper with yaml.v2's scalar styles; keys keep the order the generators built.

    No anchors or aliases: the generators share one label dict between rules, which PyYAML would
    write as `&id001` / `*id001`; yaml.v2 never does, and readers of rule files should not need to."""

    def ignore_aliases(self, data: object) -> bool:
        return True

    # The emitter asks the resolver twice per scalar whether its tag may stay implicit; rule files
    # repeat the same few thousand strings (names, labels, windows), so remember the answers.
    _resolved: dict = {}

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, tuple(implicit))
        tag = self._resolved.get(key)
        if tag is None:
            if len(self._resolved) > 100_000:
                self._resolved.clear()
            tag = self._resolved[key] = super().resolve(kind, value, implicit)
        return tag


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


def _style(value: str) -> str | None:
    if "\n" in value:
        return "|"
    if value == "" or _NON_STRING.match(value):
        return '"'
    return None


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return yaml.ScalarNode(_STR, value, style=_style(value))


# Rule files are dicts, lists and strings: build their nodes directly (the generic representer's
# type dispatch and alias bookkeeping cost more than the emitter itself).
def _node(dumper: yaml.SafeDumper, data: object) -> yaml.Node:
    if type(data) is str:
        return yaml.ScalarNode(_STR, data, style=_style(data))
    if type(data) is dict:
        return yaml.MappingNode(_MAP, [(_node(dumper, k), _node(dumper, v)) for k, v in data.items()],
                                flow_style=False)
    if type(data) is list:
        return yaml.SequenceNode(_SEQ, [_node(dumper, v) for v in data], flow_style=False)
    return dumper.represent_data(data)


GoYAMLDumper.add_representer(str, _str)
GoYAMLDumper.add_representer(dict, _node)
GoYAMLDumper.add_representer(list, _node)


def dump(doc: object) -> str:
    return yaml.dump(doc, Dumper=GoYAMLDumper, sort_keys=False, default_flow_style=False, width=80,
                     allow_unicode=True, indent=2)


def sort_keys(obj: object) -> object:
    """Keys sorted at every level: how Sloth's Kubernetes output (JSON-tagged objects) comes out."""
    if isinstance(obj, dict):
        return {k: sort_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sort_keys(v) for v in obj]
    return obj
