"""/sys/class/hwmon: temperature sensors per chip (current, max and critical, in °C).

Chip labels follow node_exporter (`platform_coretemp_0`: the device's bus folder and name), so
dashboards written for node_exporter's `chip` label work. Sensor labels and thresholds rarely
change; they are re-read once a minute, while `tempN_input` is read every scrape.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_int, read_text

STATIC_TTL_SECONDS = 60.0


class TempSensor(NamedTuple):
    """A temperature sensor's static part: where to read it, its label and thresholds (°C or None)."""

    sensor: str
    input_path: str
    label: str | None
    max_celsius: float | None
    crit_celsius: float | None


class Chip(NamedTuple):
    chip: str
    chip_name: str | None
    sensors: tuple[TempSensor, ...]


def clean_label(text: str) -> str:
    """node_exporter's cleanMetricName: every character other than [a-zA-Z0-9_] becomes `_`, ends trimmed."""
    return "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in text.strip()).strip("_")


def temp_sensor_names(entries: list[str]) -> list[str]:
    """`temp1`, `temp2`... for every `tempN_input` in a directory listing, in numeric order."""
    nums = [e[4:-6] for e in entries if e.startswith("temp") and e.endswith("_input")]
    return [f"temp{n}" for n in sorted((n for n in nums if n.isdigit() and n.isascii()), key=int)]


def millidegrees(text: str | None) -> float | None:
    """`45000\\n` -> 45.0; None for missing or non-integer text."""
    if text is None:
        return None
    try:
        return int(text.strip()) / 1000.0
    except ValueError:
        return None


def chip_label(hwmon_dir: str) -> str:
    """A stable chip label: from the device path, else the `name` file, else the hwmonN folder name."""
    device = os.path.join(hwmon_dir, "device")
    if os.path.islink(device) or os.path.isdir(device):
        real = os.path.realpath(device)
        parent, name = os.path.split(real)
        bus, name = clean_label(os.path.basename(parent)), clean_label(name)
        if bus and name:
            return f"{bus}_{name}"
        if name:
            return name
    name = clean_label(read_text(os.path.join(hwmon_dir, "name"), 4096) or "")
    return name or os.path.basename(hwmon_dir.rstrip("/"))


def read_chip(hwmon_dir: str) -> Chip | None:
    """A chip's sensors and static attributes; older drivers keep the files under `device/`."""
    entries = list_dir(hwmon_dir)
    if not entries:
        return None
    base = hwmon_dir
    names = temp_sensor_names(entries)
    if not names and "device" in entries:
        base = os.path.join(hwmon_dir, "device")
        names = temp_sensor_names(list_dir(base))
    raw_name = read_text(os.path.join(hwmon_dir, "name"), 4096)
    sensors = []
    for s in names:
        label = read_text(os.path.join(base, f"{s}_label"), 4096)
        sensors.append(TempSensor(s, os.path.join(base, f"{s}_input"),
                                  label.strip() if label and label.strip() else None,
                                  millidegrees(read_text(os.path.join(base, f"{s}_max"), 64)),
                                  millidegrees(read_text(os.path.join(base, f"{s}_crit"), 64))))
    chip_name = raw_name.strip() if raw_name and raw_name.strip() else None
    return Chip(chip_label(hwmon_dir), chip_name, tuple(sensors))


class HwmonReader:
    """Reads current temperatures every call; chip layout and thresholds are cached for STATIC_TTL_SECONDS."""

    def __init__(self, class_dir: str, ttl: float = STATIC_TTL_SECONDS) -> None:
        self.class_dir = class_dir
        self.ttl = ttl
        self._chips: dict[str, tuple[float, Chip | None]] = {}

    def present(self) -> bool:
        return os.path.isdir(self.class_dir)

    def chips(self) -> list[Chip]:
        now = time.monotonic()
        out = []
        seen = {}
        for entry in list_dir(self.class_dir):
            cached = self._chips.get(entry)
            if cached is None or now - cached[0] > self.ttl:
                cached = (now, read_chip(os.path.join(self.class_dir, entry)))
            seen[entry] = cached
            if cached[1] is not None:
                out.append(cached[1])
        self._chips = seen  # drops chips that went away
        return out

    @staticmethod
    def temperature(sensor: TempSensor) -> float | None:
        value = read_int(sensor.input_path)
        return None if value is None else value / 1000.0
