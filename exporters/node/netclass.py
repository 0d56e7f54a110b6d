"""/sys/class/net/<iface>: link state, carrier changes, speed, MTU and identity of every network
interface, as node_exporter's netclass collector reads them (prometheus/procfs `NetClassIface`).

Each attribute is one small file; a read that fails (EINVAL for `speed` of a link that is down,
EOPNOTSUPP for `phys_port_id`) leaves the attribute out. Link state is read every scrape; identity
(address, index, type, ...) is re-read every STATIC_TTL_SECONDS.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_text

STATIC_TTL_SECONDS = 60.0
# Attributes that change while the interface exists: read every scrape.
DYNAMIC = ("operstate", "carrier", "carrier_changes", "carrier_up_count", "carrier_down_count", "speed", "duplex",
           "dormant", "flags", "mtu")
STATIC = ("address", "broadcast", "ifalias", "addr_assign_type", "dev_id", "ifindex", "iflink", "link_mode",
          "name_assign_type", "netdev_group", "tx_queue_len", "type")
TEXT_ATTRIBUTES = frozenset({"address", "broadcast", "duplex", "ifalias", "operstate"})

# Integer attribute -> (family, type): node_exporter's netclass families, in its order.
NUMERIC: tuple[tuple[str, str, str], ...] = (
    ("addr_assign_type", "node_network_address_assign_type", "gauge"),
    ("carrier", "node_network_carrier", "gauge"),
    ("carrier_changes", "node_network_carrier_changes_total", "counter"),
    ("carrier_up_count", "node_network_carrier_up_changes_total", "counter"),
    ("carrier_down_count", "node_network_carrier_down_changes_total", "counter"),
    ("dev_id", "node_network_device_id", "gauge"),
    ("dormant", "node_network_dormant", "gauge"),
    ("flags", "node_network_flags", "gauge"),
    ("ifindex", "node_network_iface_id", "gauge"),
    ("iflink", "node_network_iface_link", "gauge"),
    ("link_mode", "node_network_iface_link_mode", "gauge"),
    ("mtu", "node_network_mtu_bytes", "gauge"),
    ("name_assign_type", "node_network_name_assign_type", "gauge"),
    ("netdev_group", "node_network_net_dev_group", "gauge"),
    ("tx_queue_len", "node_network_transmit_queue_length", "gauge"),
    ("type", "node_network_protocol_type", "gauge"),
)
IFF_UP = 0x1


class LinkSample(NamedTuple):
    family: str
    labels: tuple[str, ...]
    value: float


def parse_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64): decimal, 0x hex (`flags`), 0o/0 octal, 0b binary."""
    t = text.strip()
    sign = -1 if t.startswith("-") else 1
    body = t.lstrip("+-") if t[:1] in "+-" else t
    if t[:1] in "+-" and t[1:2] in "+-":
        return None
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            value = int(body, 0)
        elif len(body) > 1 and body.startswith("0"):
            value = int(body, 8)
        else:
            value = int(body, 10)
    except ValueError:
        return None
    value *= sign
    return value if -(1 << 63) <= value < (1 << 63) else None


def link_samples(device: str, attrs: dict[str, str], ignore_invalid_speed: bool = False) -> list[LinkSample]:
    """node_exporter's netclass samples for one interface from its attribute texts (whitespace-trimmed).
    Pure: node_network_up, node_network_info and one gauge or counter per integer attribute."""
    lv = (device,)
    operstate = attrs.get("operstate", "")
    out = [LinkSample("node_network_up", lv, 1.0 if operstate == "up" else 0.0)]
    flags = parse_int(attrs["flags"]) if "flags" in attrs else None
    admin = "unknown" if flags is None else ("up" if flags & IFF_UP else "down")
    out.append(LinkSample("node_network_info", (device, attrs.get("address", ""), attrs.get("broadcast", ""),
                                                attrs.get("duplex", ""), operstate, admin, attrs.get("ifalias", "")),
                          1.0))
    for attr, family, _kind in NUMERIC:
        if attr in attrs:
            value = parse_int(attrs[attr])
            if value is not None:
                out.append(LinkSample(family, lv, float(value)))
    speed = parse_int(attrs["speed"]) if "speed" in attrs else None
    if speed is not None and (speed >= 0 or not ignore_invalid_speed):
        out.append(LinkSample("node_network_speed_bytes", lv, float(int(speed * 1000 * 1000 / 8))))
    return out


def read_attributes(iface_dir: str, names: tuple[str, ...]) -> dict[str, str]:
    """The named attribute files that could be read, as procfs reads them (128 bytes, trimmed)."""
    out = {}
    for name in names:
        text = read_text(os.path.join(iface_dir, name), 128)
        if text is not None:
            out[name] = text.strip()
    return out


class NetClassReader:
    """Interfaces under /sys/class/net and their attributes; identity cached for `ttl` seconds."""

    def __init__(self, class_dir: str, ttl: float = STATIC_TTL_SECONDS) -> None:
        self.class_dir = class_dir
        self.ttl = ttl
        self._static: dict[str, tuple[float, dict[str, str]]] = {}

    def present(self) -> bool:
        return os.path.isdir(self.class_dir)

    def interfaces(self) -> list[tuple[str, dict[str, str]]]:
        now = time.monotonic()
        out = []
        names = [n for n in list_dir(self.class_dir) if os.path.isdir(os.path.join(self.class_dir, n))]
        for name in names:  # `bonding_masters` is a file, not an interface
            path = os.path.join(self.class_dir, name)
            cached = self._static.get(name)
            if cached is None or now - cached[0] > self.ttl:
                cached = self._static[name] = (now, read_attributes(path, STATIC))
            attrs = dict(cached[1])
            attrs.update(read_attributes(path, DYNAMIC))
            out.append((name, attrs))
        for gone in set(self._static) - set(names):
            del self._static[gone]
        return out
