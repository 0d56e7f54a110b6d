"""Collector flags, derived from the registry: `--[no-]collector.<name>`, `--collector.<name>.<option>`,
and the help that lists them (short by default; `--help-collector NAME` and `--help-all` for options).

Option values are parsed by the option's type inside argparse, so a bad value ends start-up with
`error: argument --collector.<name>.<option>: <what was expected>` and exit status 2.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.registry import Collector, Option

USAGE = "%(prog)s [FLAGS] [--[no-]collector.NAME ...] [--collector.NAME.OPTION=VALUE ...]"
_WIDTH = 100
_METAVARS: dict[Callable[[str], Any], str] = {
    opt.duration: "DURATION", opt.count: "N", opt.positive_count: "N", int: "N", float: "NUMBER",
    opt.regexp: "REGEXP", opt.buckets: "EDGES", opt.names: "NAMES",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The serve help at 100 columns with the flag column wide enough for `--web.listen-address ADDRESS`."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=_WIDTH)


def argtype(parse: Callable[[str], Any], name: str = "") -> Callable[[str], Any]:
    """`parse` as an argparse type: its ValueError message becomes the error argparse prints."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = name or getattr(parse, "__name__", "value")
    return convert


def option_dest(collector: str, option: str) -> str:
    return f"opt__{collector}__{option.replace('-', '_')}"


def metavar(o: Option) -> str:
    return _METAVARS.get(o.type) or o.name.replace("-", "_").upper()


def add_help_arguments(p: argparse.ArgumentParser, registry: Mapping[str, type[Collector]]) -> None:
    """`--help-collector NAME` and `--help-all`: the collector options the short --help leaves out."""
    p.add_argument("--help-collector", metavar="NAME", action=_HelpCollector, registry=registry,
                   choices=list(registry), help="show one collector's options and exit")
    p.add_argument("--help-all", action=_HelpAll, nargs=0, registry=registry,
                   help="show every flag, with every collector's options, and exit")


def add_collector_arguments(p: argparse.ArgumentParser, registry: Mapping[str, type[Collector]]) -> None:
    """`--[no-]collector.<name>` and every `--collector.<name>.<option>`, hidden from the short help."""
    p.add_argument("--collector.disable-defaults", dest="disable_defaults", action="store_true",
                   help="enable only the collectors named with --collector.<name>")
    for name, cls in registry.items():
        p.add_argument(f"--collector.{name}", f"--no-collector.{name}", dest=f"collector__{name}",
                       action=_Toggle, help=argparse.SUPPRESS)
        for o in cls.options:
            dest = option_dest(name, o.name)
            flag = f"--collector.{name}.{o.name}"
            if o.type is bool:
                action = p.add_argument(flag, dest=dest, default=o.default, action=argparse.BooleanOptionalAction)
                action.help = argparse.SUPPRESS
            else:
                p.add_argument(flag, dest=dest, default=o.default, type=argtype(o.parse, o.name),
                               metavar=metavar(o), help=argparse.SUPPRESS)


class _Toggle(argparse.Action):
    """`--collector.x` sets True, `--no-collector.x` False; unset stays None (the agent's default)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        setattr(namespace, self.dest, not (option_string or "").startswith("--no-"))


class _HelpCollector(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, registry: Mapping[str, type[Collector]],
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)
        self.registry = registry

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(collector_help(self.registry[values]))
        parser.exit()


class _HelpAll(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, registry: Mapping[str, type[Collector]],
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)
        self.registry = registry

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        print(parser.format_help())
        print("collector options:\n")
        print("\n\n".join(collector_help(cls) for cls in self.registry.values()))
        parser.exit()


def _agents(cls: type[Collector]) -> str:
    return ",".join(sorted(cls.default_agents)) or "opt-in"


def collectors_epilog(registry: Mapping[str, type[Collector]]) -> str:
    """One line per collector: name, the agents it is on by default in, what it reads."""
    width = max(len(n) for n in registry) if registry else 0
    lines = [f"  {name:<{width}}  {_agents(cls):<12}  {cls.help}" for name, cls in registry.items()]
    return ("collectors (enable: --collector.NAME, disable: --no-collector.NAME; "
            "options: --help-collector NAME or --help-all):\n"
            f"  {'NAME':<{width}}  {'DEFAULT ON':<12}  READS\n" + "\n".join(lines))


def option_help(name: str, o: Option) -> str:
    """One option as --help-collector shows it: the flag, then its help and default, wrapped."""
    if o.type is bool:
        flag = f"--[no-]collector.{name}.{o.name}"
    else:
        flag = f"--collector.{name}.{o.name}={metavar(o)}"
    default = o.shown_default()
    text = f"{o.help} (default: {default if default else chr(34) * 2})"
    if o.choices:
        text += f"; one of: {', '.join(o.choices)}"
    body = textwrap.fill(text, _WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return f"  {flag}\n{body}"


def collector_help(cls: type[Collector]) -> str:
    """Everything about one collector's flags: what it reads, where it is on, and each option."""
    head = (f"--[no-]collector.{cls.name}\n"
            + textwrap.fill(f"{cls.help}. Kind: {cls.kind}; on by default in: {_agents(cls)} agent.", _WIDTH,
                            initial_indent="  ", subsequent_indent="  "))
    if not cls.options:
        return head + "\n  (no options)"
    return head + "\n" + "\n".join(option_help(cls.name, o) for o in cls.options)


def enabled_collectors(args: argparse.Namespace, registry: Mapping[str, type[Collector]]) -> list[str]:
    """Names of the collectors to run: named ones, plus the agent's defaults unless disabled."""
    names = []
    for name, cls in registry.items():
        flag = getattr(args, f"collector__{name}")
        default = (args.agent in cls.default_agents) and not args.disable_defaults
        if flag is True or (flag is None and default):
            names.append(name)
    return names


def explicitly_enabled(args: argparse.Namespace, name: str) -> bool:
    """True when --collector.<name> was given (not just on by the agent's default)."""
    return getattr(args, f"collector__{name}", None) is True


def collector_options(args: argparse.Namespace, cls: type[Collector]) -> dict[str, Any]:
    """Every option of `cls`, typed, as argparse resolved it (defaults included)."""
    return {o.name: getattr(args, option_dest(cls.name, o.name)) for o in cls.options}
