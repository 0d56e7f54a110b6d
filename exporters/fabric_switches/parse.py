"""Pure parsers for infiniband-diags output (rdma-core 44, Debian 12): text in, typed records out.

* `ibnetdiscover --ports` (dump_ports_report in ibnetdiscover.c), one line per port of every node:
      SW     3 36 0x7cfe900300a5a2c0 4x HDR - SW     5  1 0x7cfe900300b3c1e0 ( 'leaf01' - 'spine01' )
      SW     3 40 0x7cfe900300a5a2c0 4x SDR                                    'leaf01'
  type, LID (a switch's port-0 LID), port, port GUID, active width and speed, then the remote end
  (type, LID, port, port GUID) and both node descriptions (or node-name-map names); an unconnected
  port has only its own name.
* `perfquery [-x] -l <lid> 255` (dump_perfcounters in perfquery.c), one block per port:
      # Port extended counters: Lid 3 port 1 (CapMask: 0x5A00 CapMask2: 0x0000002)
      PortSelect:......................1
      PortXmitData:....................123456
  libibmad pads each field name with dots to column 33.

Parsers never raise: lines they cannot read are counted in `skipped` and left out.
"""

from __future__ import annotations

import dataclasses
import re

from hpcwatch.exporters import labels
from hpcwatch.exporters.fabric.pma import LANE_GBPS, PERFQUERY_FIELDS

_PORT_LINE = re.compile(
    r"(?P<type>SW|CA|RT|\?\?)\s+(?P<lid>\d+)\s+(?P<port>\d+)\s+0x(?P<guid>[0-9a-fA-F]{1,16})"
    r"\s+(?P<width>\S+)\s+(?P<speed>\S+)"
    r"(?:\s+-\s+(?P<rtype>SW|CA|RT|\?\?)\s+(?P<rlid>\d+)\s+(?P<rport>\d+)\s+0x(?P<rguid>[0-9a-fA-F]{1,16})"
    r"\s+\( '(?P<name>.*)' - '(?P<rname>.*)' \)"
    r"|\s+'(?P<lname>.*)')\s*$"
)
_HEADER = re.compile(r"# Port (?P<ext>extended )?counters: .*? port (?P<port>\d+)\b")


@dataclasses.dataclass(frozen=True)
class PortLink:
    """One port line of `ibnetdiscover --ports`; `remote_*` are empty for an unconnected port."""

    node_type: str
    lid: int
    port: int
    guid: str  # 0x-prefixed, 16 hex digits, lower case
    width: str
    speed: str
    name: str
    remote_type: str = ""
    remote_lid: int = 0
    remote_port: int = 0
    remote_guid: str = ""
    remote_name: str = ""

    @property
    def connected(self) -> bool:
        return bool(self.remote_guid)


@dataclasses.dataclass
class Switch:
    """A switch as the ports report describes it: its GUID, port-0 LID, name and ports."""

    guid: str
    lid: int
    name: str
    ports: dict[int, PortLink] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Topology:
    switches: dict[str, Switch]
    links: list[PortLink]
    skipped: int = 0


@dataclasses.dataclass
class PortCounters:
    """One port block of perfquery output. `extended` blocks hold 64-bit PortCountersExtended fields."""

    port: int
    extended: bool
    values: dict[str, int] = dataclasses.field(default_factory=dict)  # canonical (sysfs) counter names


def _guid(text: str) -> str:
    return "0x" + text.lower().rjust(16, "0")


def _name(quoted: str | None) -> str:
    """A node description as a label: switches pad their 64-byte NodeDescription with spaces
    (`'5FB0405-leaf-IB01 '`), which would split one switch into two names."""
    return labels.value((quoted or "").strip())


def parse_port_line(line: str) -> PortLink | None:
    m = _PORT_LINE.match(line.strip())
    if m is None:
        return None
    g = m.groupdict()
    try:
        lid, port = int(g["lid"]), int(g["port"])
    except ValueError:  # pragma: no cover - the regex only admits digits
        return None
    if g["rguid"] is None:
        return PortLink(g["type"], lid, port, _guid(g["guid"]), g["width"], g["speed"], _name(g["lname"]))
    return PortLink(g["type"], lid, port, _guid(g["guid"]), g["width"], g["speed"], _name(g["name"]),
                    g["rtype"], int(g["rlid"]), int(g["rport"]), _guid(g["rguid"]), _name(g["rname"]))


def parse_ports_report(text: str) -> Topology:
    """`ibnetdiscover --ports` output -> switches (keyed by GUID) with their port links."""
    switches: dict[str, Switch] = {}
    links: list[PortLink] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        link = parse_port_line(line)
        if link is None:
            skipped += 1
            continue
        links.append(link)
        if link.node_type == "SW":
            sw = switches.get(link.guid)
            if sw is None:
                sw = switches[link.guid] = Switch(link.guid, link.lid, link.name)
            sw.ports[link.port] = link
    return Topology(switches=switches, links=links, skipped=skipped)


_FIELD = re.compile(r"^([A-Za-z0-9_]+):\.*(.*?)\s*$", re.MULTILINE)


def parse_perfquery(text: str) -> tuple[dict[int, PortCounters], int]:
    """`perfquery [-x] -l <lid> 255` output -> ({port: counters}, skipped lines)."""
    ports: dict[int, PortCounters] = {}
    skipped = 0
    fields = PERFQUERY_FIELDS
    # Split at the block headers, then read each block's fields with one regex pass (C speed: a
    # 100-switch fabric is ~100k lines per refresh).
    blocks = text.split("\n#")
    if blocks and not blocks[0].lstrip().startswith("#"):
        skipped += sum(1 for line in blocks[0].splitlines() if line.strip())
        blocks = blocks[1:]
    elif blocks:
        blocks[0] = blocks[0].lstrip()[1:]
    for block in blocks:
        header, _, body = block.partition("\n")
        m = _HEADER.match("#" + header.rstrip())
        if m is None:
            skipped += 1 + sum(1 for line in body.splitlines() if line.strip())
            continue
        port = int(m.group("port"))
        current = ports.setdefault(port, PortCounters(port=port, extended=bool(m.group("ext"))))
        values = current.values
        found = _FIELD.findall(body)
        skipped += sum(1 for line in body.splitlines() if line.strip()) - len(found)
        for name, value in found:
            canonical = fields.get(name)
            if canonical is None:  # PortSelect, CounterSelect, QP1Dropped, ... are not exported
                continue
            if not value.isdigit() or not value.isascii() or len(value) > 20:
                skipped += 1
                continue
            values[canonical] = int(value)
    return ports, skipped


def lanes(width: str) -> int | None:
    """`4x` -> 4; None for `??` or anything else."""
    w = width.lower()
    if w.endswith("x") and w[:-1].isdigit() and w[:-1].isascii():
        return int(w[:-1])
    return None


def rate_bytes(width: str, speed: str) -> float | None:
    """Nominal data rate of a link from its active width and speed (`4x`, `HDR` -> 25e9 bytes/s)."""
    n = lanes(width)
    per_lane = LANE_GBPS.get(speed)
    if n is None or per_lane is None:
        return None
    return n * per_lane * 1e9 / 8
