"""Flux capacity by queue and state from the scheduler's own resource sets (pure: text in, counts out).

`flux resource list` cannot be summed: its free, allocated and down rows overlap (a partly busy
node is both allocated and free; a draining node with a job is allocated and down), and its QUEUE
column follows the reader's `hidden-queues` client config. So the adapter reads the sets themselves
(`flux resource R -s all|allocated|down`, RFC 20 R version 1), which node is drained or offline
(`flux resource status`), and the queue table (`flux config get queues`), and partitions every
node, core and GPU into exactly one state:

- node: down (offline, torpid, excluded), drain (drained or draining), allocated (every core
  allocated), mixed (something allocated), idle;
- cpus and gpus: allocated (allocated to a job, wherever it runs), idle (on a usable node),
  other (neither: on a down or drained node).

A node counts in every queue whose `requires` properties it has (as Slurm counts a node in each of
its partitions); virtual queues (RFC 33, with `parent`) share their parent's resources and get no
rows of their own. An instance without queues has one queue, `default`.
"""

from __future__ import annotations

import dataclasses
import json

DEFAULT_QUEUE = "default"   # the one queue of an instance with no [queues] table
NODE_STATES = ("idle", "mixed", "allocated", "drain", "down")
UNIT_STATES = ("allocated", "idle", "other")


class FluxResourceError(ValueError):
    """Resource output that cannot be read at all (the message names the command and what was expected)."""


def parse_idset(text: str) -> frozenset[int]:
    """RFC 22 idset: '0-3,5', '[0-3,5]', '' -> the ids; FluxResourceError for anything else."""
    text = text.strip().strip("[]")
    out: set[int] = set()
    if not text:
        return frozenset()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not (lo.isascii() and lo.isdigit()) or (sep and not (hi.isascii() and hi.isdigit())):
            raise FluxResourceError(f"not an idset: {text[:80]!r}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a or b - a > 1_000_000:
            raise FluxResourceError(f"not an idset: {text[:80]!r}")
        out.update(range(a, b + 1))
    return frozenset(out)


@dataclasses.dataclass(frozen=True)
class ResourceSet:
    """An R version 1 set: cores and GPUs by rank, and the ranks of each property."""

    cores: dict[int, frozenset[int]]
    gpus: dict[int, frozenset[int]]
    properties: dict[str, frozenset[int]]

    @property
    def ranks(self) -> frozenset[int]:
        return frozenset(self.cores) | frozenset(self.gpus)


def parse_R(text: str, what: str = "flux resource R") -> ResourceSet:
    """`flux resource R` JSON (RFC 20 R version 1) -> ResourceSet; FluxResourceError when unreadable."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise FluxResourceError(f"{what}: not JSON ({exc})") from None
    ex = doc.get("execution") if isinstance(doc, dict) else None
    if not isinstance(ex, dict) or doc.get("version") != 1 or not isinstance(ex.get("R_lite", []), list):
        raise FluxResourceError(f"{what}: not R version 1 (no execution.R_lite)")
    cores: dict[int, frozenset[int]] = {}
    gpus: dict[int, frozenset[int]] = {}
    for entry in ex.get("R_lite", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("children", {}), dict):
            raise FluxResourceError(f"{what}: R_lite entry is not an object with children")
        children = entry.get("children", {})
        c = parse_idset(str(children.get("core", "")))
        g = parse_idset(str(children.get("gpu", "")))
        for rank in parse_idset(str(entry.get("rank", ""))):
            cores[rank] = cores.get(rank, frozenset()) | c
            gpus[rank] = gpus.get(rank, frozenset()) | g
    props = ex.get("properties") or {}
    if not isinstance(props, dict):
        raise FluxResourceError(f"{what}: execution.properties is not an object")
    properties = {str(k): parse_idset(str(v)) for k, v in props.items()}
    return ResourceSet(cores=cores, gpus=gpus, properties=properties)


@dataclasses.dataclass(frozen=True)
class NodeStatus:
    """Which ranks `flux resource status` says are offline and which are drained or draining."""

    offline: frozenset[int]
    drained: frozenset[int]


def parse_status(text: str) -> tuple[NodeStatus, int]:
    """Lines of `flux resource status -n -s all -o '{statex}|{status}|{ranks}'` -> (status, lines skipped)."""
    offline: set[int] = set()
    drained: set[int] = set()
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        try:
            if len(parts) != 3:
                raise FluxResourceError(line)
            ranks = parse_idset(parts[2])
        except FluxResourceError:
            skipped += 1
            continue
        if parts[1].strip() == "offline":
            offline |= ranks
        if parts[0].strip() in ("drained", "draining"):
            drained |= ranks
    return NodeStatus(frozenset(offline), frozenset(drained)), skipped


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    """One configured queue: the properties a node needs to belong to it."""

    name: str
    requires: tuple[str, ...]


def parse_queues(text: str) -> list[QueueSpec]:
    """`flux config get --default={} queues` JSON -> queues with resources (virtual queues left out).

    An empty table means an instance without queues: one queue, DEFAULT_QUEUE, holding every node.
    """
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise FluxResourceError(f"flux config get queues: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise FluxResourceError("flux config get queues: not a table of queues")
    if not doc:
        return [QueueSpec(DEFAULT_QUEUE, ())]
    out = []
    for name, entry in doc.items():
        if not isinstance(entry, dict):
            raise FluxResourceError(f"flux config get queues: queue {name[:64]!r} is not a table")
        if "parent" in entry:
            continue
        requires = entry.get("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise FluxResourceError(f"flux config get queues: queue {name[:64]!r}: requires is not a list of "
                                    "property names")
        out.append(QueueSpec(str(name), tuple(requires)))
    return out


@dataclasses.dataclass
class Capacity:
    """Nodes, CPUs and GPUs by (queue, state); every state of every queue present, 0 when empty."""

    nodes: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    cpus: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    gpus: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


def node_state(rank: int, allocated_cores: int, allocated_gpus: int, total_cores: int, down: frozenset[int],
               status: NodeStatus) -> str:
    """One state per node: down > drain > allocated > mixed > idle (the order Slurm's node states use)."""
    if rank in status.offline:
        return "down"
    if rank in status.drained:
        return "drain"
    if rank in down:
        return "down"
    if total_cores and allocated_cores >= total_cores:
        return "allocated"
    if allocated_cores or allocated_gpus:
        return "mixed"
    return "idle"


def queue_members(all_: ResourceSet, queues: list[QueueSpec]) -> dict[str, frozenset[int]]:
    """The ranks of each queue: those holding every property the queue requires."""
    ranks = all_.ranks
    out = {}
    for q in queues:
        members = ranks
        for prop in q.requires:
            members = members & all_.properties.get(prop, frozenset())
        out[q.name] = members
    return out


def capacity(all_: ResourceSet, allocated: ResourceSet, down: ResourceSet, status: NodeStatus,
             queues: list[QueueSpec]) -> Capacity:
    """Partition every node, core and GPU of `all_` into one state, counted in each queue it belongs to."""
    cap = Capacity()
    for q in queues:
        for state in NODE_STATES:
            cap.nodes[(q.name, state)] = 0
        for state in UNIT_STATES:
            cap.cpus[(q.name, state)] = 0
            cap.gpus[(q.name, state)] = 0
    down_ranks = down.ranks
    per_rank = {}
    for rank in all_.ranks:
        cores, gpus = all_.cores.get(rank, frozenset()), all_.gpus.get(rank, frozenset())
        a_cores = len(allocated.cores.get(rank, frozenset()) & cores)
        a_gpus = len(allocated.gpus.get(rank, frozenset()) & gpus)
        state = node_state(rank, a_cores, a_gpus, len(cores), down_ranks, status)
        rest = "idle" if state in ("idle", "mixed", "allocated") else "other"
        per_rank[rank] = (state, ((a_cores, "allocated"), (len(cores) - a_cores, rest)),
                          ((a_gpus, "allocated"), (len(gpus) - a_gpus, rest)))
    for qname, members in queue_members(all_, queues).items():
        for rank in members:
            state, cpu_split, gpu_split = per_rank[rank]
            cap.nodes[(qname, state)] += 1
            for n, st in cpu_split:
                cap.cpus[(qname, st)] += n
            for n, st in gpu_split:
                cap.gpus[(qname, st)] += n
    return cap
