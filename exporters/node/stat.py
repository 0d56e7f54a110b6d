"""/proc/stat: CPU time by cpu and mode, context switches, interrupts, forks, boot time, task states."""

from __future__ import annotations

import dataclasses

# The columns of a `cpuN` line: eight modes, then guest and guest_nice (already inside user and nice,
# so node_exporter exports them as a family of their own).
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("user", "nice")

_SCALARS = {"ctxt": "context_switches", "btime": "boot_time", "processes": "forks",
            "procs_running": "procs_running", "procs_blocked": "procs_blocked"}


@dataclasses.dataclass(slots=True)
class KernelStats:
    """One read of /proc/stat. `cpus` maps a CPU number to its ticks in CPU_MODES order then the two
    guest columns (older kernels give fewer columns); scalars are None when their line is absent;
    `errors` counts bad lines."""

    cpus: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    context_switches: int | None = None
    interrupts: int | None = None
    forks: int | None = None
    boot_time: int | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None
    errors: int = 0


def parse_stat(text: str) -> KernelStats:
    """Parse /proc/stat text. Never raises: a line that cannot be read is counted in `errors` and skipped."""
    out = KernelStats()
    cpus = out.cpus
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key.startswith("cpu"):
            num = key[3:]
            if not num:
                continue  # the all-CPU sum: derivable, not exported
            fields = rest.split(None, 10)[:10]
            if not num.isdigit() or not num.isascii() or len(fields) < 4:
                out.errors += 1
                continue
            try:
                ticks = tuple(map(int, fields))
            except ValueError:
                out.errors += 1
                continue
            if min(ticks) < 0:
                out.errors += 1
                continue
            cpus[num] = ticks
        elif key == "intr":
            first = rest.split(None, 1)[:1]
            try:
                out.interrupts = int(first[0])
            except (IndexError, ValueError):
                out.errors += 1
        elif key in _SCALARS:
            try:
                setattr(out, _SCALARS[key], int(rest))
            except ValueError:
                out.errors += 1
    return out
