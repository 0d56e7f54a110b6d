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


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value == "" or _NON_STRING.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


GoYAMLDumper.add_representer(str, _str)


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
