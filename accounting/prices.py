"""The operator's price table: CPU-hour, memory GB-hour, GPU-hour by GPU model and kWh, per partition.

    currency: EUR
    default:                  # every partition not listed below
      cpu_hour: 0.01          # per allocated CPU per hour
      mem_gb_hour: 0.002      # per allocated GB (1024^3 bytes, as Slurm counts memory) per hour
      gpu_hour: 1.00          # per allocated GPU per hour, models not listed in gpu_hour_by_model
      gpu_hour_by_model: {a100: 2.50, h100: 4.00}
      kwh: 0.25               # per kWh attributed to the job
    partitions:
      gpu: {cpu_hour: 0.02}   # keys not given fall back to `default`

Errors name the file, the line and the key, and say what was expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml

RATE_KEYS = ("cpu_hour", "mem_gb_hour", "gpu_hour", "kwh")
TOP_KEYS = ("currency", "default", "partitions")


class PriceTableError(ValueError):
    """A price table that cannot be used (the message says where and why)."""


@dataclasses.dataclass(frozen=True)
class Rates:
    """The prices of one partition; None where the table gives none (that part of the cost is 0)."""

    cpu_hour: float | None = None
    mem_gb_hour: float | None = None
    gpu_hour: float | None = None
    gpu_hour_by_model: Mapping[str, float] = dataclasses.field(default_factory=dict)
    kwh: float | None = None

    def over(self, base: Rates) -> Rates:
        """These rates with every price not given taken from `base` (models merge)."""
        return Rates(
            cpu_hour=self.cpu_hour if self.cpu_hour is not None else base.cpu_hour,
            mem_gb_hour=self.mem_gb_hour if self.mem_gb_hour is not None else base.mem_gb_hour,
            gpu_hour=self.gpu_hour if self.gpu_hour is not None else base.gpu_hour,
            gpu_hour_by_model={**base.gpu_hour_by_model, **self.gpu_hour_by_model},
            kwh=self.kwh if self.kwh is not None else base.kwh)

    def gpu_rate(self, model: str) -> float | None:
        """Price of a GPU-hour of `model` ('a100', or an NVML name such as 'NVIDIA A100-SXM4-80GB'): the
        longest listed model name contained in it (case-insensitive), else gpu_hour."""
        m = model.lower()
        for name, price in self.gpu_models():
            if m and name.lower() in m:
                return price
        return self.gpu_hour

    def gpu_models(self) -> list[tuple[str, float]]:
        """(model, price) in the order gpu_rate tries them: longest name first, so the longest match wins;
        the SQL and PromQL forms of the table (usage report, spend rules) walk the same order."""
        return sorted(self.gpu_hour_by_model.items(), key=lambda kv: (-len(kv[0]), kv[0].lower()))


@dataclasses.dataclass(frozen=True)
class PriceTable:
    currency: str
    default: Rates
    partitions: Mapping[str, Rates]
    source: str = ""

    def listed(self) -> list[tuple[str, Rates]]:
        """Each partition the table names with its full rates (the default filled in), in table order."""
        return [(name, own.over(self.default)) for name, own in self.partitions.items()]

    def rates(self, partition: str) -> Rates:
        """The rates of a partition (a job submitted to several: the first listed)."""
        first = partition.split(",", 1)[0]
        own = self.partitions.get(first)
        return own.over(self.default) if own is not None else self.default


def _where(path: str, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _rate(path: str, key: str, node: yaml.Node, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PriceTableError(f"{_where(path, node)}: {key}: expected a non-negative number, got {value!r}")
    return float(value)


def _rates(path: str, where: str, node: yaml.Node) -> Rates:
    if not isinstance(node, yaml.MappingNode):
        raise PriceTableError(f"{_where(path, node)}: {where}: expected a mapping of prices")
    kwargs: dict[str, Any] = {}
    for k_node, v_node in node.value:
        key = k_node.value
        value = yaml.safe_load(yaml.serialize(v_node))
        if key in RATE_KEYS:
            kwargs[key] = _rate(path, f"{where}.{key}", v_node, value)
        elif key == "gpu_hour_by_model":
            if not isinstance(value, dict) or not value:
                raise PriceTableError(f"{_where(path, v_node)}: {where}.{key}: expected a mapping of GPU model "
                                      f"to price per GPU-hour, got {value!r}")
            models = {}
            for m_node, p_node in v_node.value:
                models[str(m_node.value)] = _rate(path, f"{where}.{key}.{m_node.value}", p_node,
                                                  yaml.safe_load(yaml.serialize(p_node)))
            kwargs[key] = models
        else:
            raise PriceTableError(f"{_where(path, k_node)}: {where}: unknown key {key!r} (expected one of "
                                  f"{', '.join((*RATE_KEYS, 'gpu_hour_by_model'))})")
    return Rates(**kwargs)


def parse_price_table(text: str, path: str = "<prices>") -> PriceTable:
    """A price table from its YAML text; PriceTableError names the line of anything wrong."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise PriceTableError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise PriceTableError(f"{path}: expected a mapping with {', '.join(TOP_KEYS)}")
    currency, default, partitions = "", Rates(), {}
    for k_node, v_node in root.value:
        key = k_node.value
        if key == "currency":
            currency = str(v_node.value).strip() if isinstance(v_node, yaml.ScalarNode) else ""
            if not currency:
                raise PriceTableError(f"{_where(path, v_node)}: currency: expected a currency code such as EUR")
        elif key == "default":
            default = _rates(path, "default", v_node)
        elif key == "partitions":
            if not isinstance(v_node, yaml.MappingNode):
                raise PriceTableError(f"{_where(path, v_node)}: partitions: expected a mapping of partition "
                                      "name to prices")
            for p_node, r_node in v_node.value:
                partitions[str(p_node.value)] = _rates(path, f"partitions.{p_node.value}", r_node)
        else:
            raise PriceTableError(f"{_where(path, k_node)}: unknown key {key!r} (expected {', '.join(TOP_KEYS)})")
    if not currency:
        raise PriceTableError(f"{path}: currency: missing (e.g. `currency: EUR`)")
    return PriceTable(currency=currency, default=default, partitions=partitions, source=path)


def load_price_table(path: str) -> PriceTable:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_price_table(text, path)
