"""/sys/class/hwmon: every sensor of every chip (temperatures, fans, voltages, current, power, energy,
humidity, PWM, alarms), named, labelled and scaled exactly as node_exporter's hwmon collector does.

Chip labels come from the device the hwmon folder belongs to (`platform_coretemp_0`); chips that share
one device (three radios of one card, `asus` and `asus_wmi_sensors`) get the `name` file appended, or
the hwmonN folder when the names are the same too (node_exporter 1.12's rule). Current readings
(`*_input`, `*_average`, alarms, faults) are read every scrape; thresholds, labels and the folder
layout rarely change and are re-read every STATIC_TTL_SECONDS.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_text
from hpcwatch.exporters.labels import identifier as clean_metric_name

STATIC_TTL_SECONDS = 60.0
# The sensor types node_exporter reads (Documentation/hwmon/sysfs-interface.rst), in its order.
SENSOR_TYPES = frozenset({"vrm", "beep_enable", "update_interval", "in", "cpu", "fan", "pwm", "temp", "curr",
                          "power", "energy", "humidity", "intrusion", "freq"})
_FILENAME = re.compile(r"^([^0-9]+)([0-9]*)(?:_(.+))?$")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf(inity)?|nan)", re.IGNORECASE)


class HwmonDir(NamedTuple):
    """One /sys/class/hwmon entry: its folder name, the label derived from its device, its `name` file."""

    folder: str
    base: str
    name_file: str


class SensorSample(NamedTuple):
    """One sample of a sensor property: family, HELP, label values, value (the type is the family's row in
    node/families.py: `node_hwmon_{field}_total` counters, every other one a gauge)."""

    family: str
    help: str
    labels: tuple[str, ...]
    value: float


def explode_sensor_filename(filename: str) -> tuple[str, int, str] | None:
    """`temp1_crit_alarm` -> ("temp", 1, "crit_alarm"); `pwm1` -> ("pwm", 1, ""); None if no type."""
    m = _FILENAME.match(filename)
    if m is None:
        return None
    return m.group(1), int(m.group(2) or 0), m.group(3) or ""


def chip_labels(dirs: list[HwmonDir]) -> list[str]:
    """The chip label of each entry: its base label, disambiguated when several entries share it."""
    counts: dict[str, int] = {}
    name_counts: dict[tuple[str, str], int] = {}
    for d in dirs:
        counts[d.base] = counts.get(d.base, 0) + 1
        name_counts[(d.base, d.name_file)] = name_counts.get((d.base, d.name_file), 0) + 1
    out = []
    for d in dirs:
        if counts[d.base] == 1:
            out.append(d.base)
            continue
        suffix = clean_metric_name(d.name_file)
        if not suffix or name_counts[(d.base, d.name_file)] > 1:
            suffix = clean_metric_name(d.folder)
        out.append(f"{d.base}_{suffix}")
    return out


def parse_float(text: str) -> float | None:
    """Go's strconv.ParseFloat on the (newline-trimmed) file text, for the forms sysfs writes; else None."""
    return float(text) if _FLOAT.fullmatch(text) else None


def sensor_samples(chip: str, sensor: str, data: dict[str, str]) -> list[SensorSample]:
    """node_exporter's samples for one sensor (`temp1`) from its properties ({"input": "55000", ...});
    unparsable values are left out. Pure: the mapping table of hwmon units lives here."""
    parts = explode_sensor_filename(sensor)
    if parts is None:
        return []
    stype = parts[0]
    labels = (chip, sensor)
    out: list[SensorSample] = []
    if stype in ("beep_enable", "vrm", "update_interval"):
        raw = data.get("", "")
        if stype == "beep_enable":
            out.append(SensorSample("node_hwmon_beep_enabled", "Hardware beep enabled.", labels,
                                    1.0 if raw == "1" else 0.0))
            return out
        value = parse_float(raw)
        if value is None:
            return out
        if stype == "vrm":
            out.append(SensorSample("node_hwmon_voltage_regulator_version", "Hardware voltage regulator.",
                                    labels, value))
        else:
            out.append(SensorSample("node_hwmon_update_interval_seconds",
                                    "Hardware monitor update interval.", labels, value * 0.001))
        return out
    prefix = "node_hwmon_" + stype
    for element, text in data.items():
        if element == "label":
            continue
        value = parse_float(text)
        if value is None:
            continue
        name = prefix
        if element == "input":
            if "" in data:
                name += "_input"
        elif element:
            name += "_" + clean_metric_name(element)
        sample = _unit_sample(stype, element, name, labels, value, data)
        if sample is not None:
            out.append(sample)
    return out


def _unit_sample(stype: str, element: str, name: str, labels: tuple[str, ...], value: float,
                 data: dict[str, str]) -> SensorSample | None:
    """One property's sample with node_exporter's unit suffix and scale, in its order of rules."""
    if element in ("fault", "alarm"):
        return SensorSample(name, f"Hardware sensor {element} status ({stype}).", labels, value)
    if element == "beep":
        return SensorSample(name + "_enabled", "Hardware monitor sensor has beeping enabled.", labels, value)
    what = element or "input"
    if stype in ("in", "cpu"):
        return SensorSample(name + "_volts", f"Hardware monitor for voltage ({what}).", labels,
                            value * 0.001)
    if stype == "temp" and element != "type":
        return SensorSample(name + "_celsius", f"Hardware monitor for temperature ({what}).", labels,
                            value * 0.001)
    if stype == "curr":
        return SensorSample(name + "_amps", f"Hardware monitor for current ({what}).", labels,
                            value * 0.001)
    if stype == "energy":
        return SensorSample(name + "_joule_total", f"Hardware monitor for joules used so far ({what}).",
                            labels, value / 1e6)
    if stype == "power" and element == "accuracy":
        return SensorSample(name, "Hardware monitor power meter accuracy, as a ratio.", labels, value / 1e6)
    if stype == "power" and element in ("average_interval", "average_interval_min", "average_interval_max"):
        return SensorSample(name + "_seconds", f"Hardware monitor power usage update interval ({what}).",
                            labels, value * 0.001)
    if stype == "power":
        return SensorSample(name + "_watt", f"Hardware monitor for power usage in watts ({what}).",
                            labels, value / 1e6)
    if stype == "humidity":
        return SensorSample(name, f"Hardware monitor for humidity, as a ratio ({what}).", labels,
                            value / 1e6)
    if stype == "fan" and element in ("input", "min", "max", "target"):
        return SensorSample(name + "_rpm", f"Hardware monitor for fan revolutions per minute ({what}).",
                            labels, value)
    if stype == "freq":
        label = data.get("label")
        if element != "input" or label is None:
            return None
        return SensorSample(name + "_freq_mhz", "Hardware monitor for GPU frequency in MHz.",
                            (labels[0], clean_metric_name(label)), value / 1e6)
    return SensorSample(name, f"Hardware monitor {stype} element {element}.", labels, value)


def is_dynamic(prop: str) -> bool:
    """A property that is a reading (read every scrape), not a threshold, label or setting."""
    return (prop in ("", "input", "average", "highest", "lowest") or prop.startswith(("input_", "average_"))
            or prop.endswith(("alarm", "fault")))


# --- reading sysfs ---------------------------------------------------------------------------------

def read_value(path: str) -> str | None:
    """A sysfs attribute as node_exporter reads it: at most 128 bytes, newlines trimmed."""
    text = read_text(path, 128, quiet=True)  # drivers answer EIO/EAGAIN for sensors not wired up
    return None if text is None else text.strip("\n")


def base_label(hwmon_dir: str) -> str | None:
    """The chip label before disambiguation: `<bus>_<device>` of the device the folder belongs to,
    else the cleaned `name` file, else the cleaned real folder name."""
    try:
        device = os.path.realpath(os.path.join(hwmon_dir, "device"), strict=True)
    except (OSError, RuntimeError):
        device = None
    if device is not None:
        prefix, dev_name = os.path.split(device)
        dev_type = os.path.basename(prefix.rstrip("/"))
        clean_name, clean_type = clean_metric_name(dev_name), clean_metric_name(dev_type)
        if clean_type and clean_name:
            return f"{clean_type}_{clean_name}"
        if clean_name:
            return clean_name
    name = clean_metric_name(read_text(os.path.join(hwmon_dir, "name"), 4096, quiet=True) or "")
    if name:
        return name
    try:
        real = os.path.realpath(hwmon_dir, strict=True)
    except (OSError, RuntimeError):
        return None
    return clean_metric_name(os.path.basename(real)) or None


class ChipLayout(NamedTuple):
    """What is re-read only every STATIC_TTL_SECONDS: sensor files by sensor and property, and the
    static (threshold, label, setting) values."""

    chip_name: str | None
    files: dict[str, dict[str, str]]  # sensor -> property -> path
    static: dict[str, dict[str, str]]  # sensor -> property -> value


def read_layout(hwmon_dir: str) -> ChipLayout:
    """A chip's sensor files (its own, then `device/`'s, which win as in node_exporter) and static values."""
    files: dict[str, dict[str, str]] = {}
    for base in (hwmon_dir, os.path.join(hwmon_dir, "device")):
        for entry in list_dir(base):
            parts = explode_sensor_filename(entry)
            if parts is None or parts[0] not in SENSOR_TYPES:
                continue
            path = os.path.join(base, entry)
            if os.path.isdir(path):  # `device/power/` is a folder, not the power sensor
                continue
            files.setdefault(f"{parts[0]}{parts[1]}", {})[parts[2]] = path
    static: dict[str, dict[str, str]] = {}
    for sensor, props in files.items():
        for prop, path in props.items():
            if not is_dynamic(prop):
                value = read_value(path)
                if value is not None:
                    static.setdefault(sensor, {})[prop] = value
    raw = read_text(os.path.join(hwmon_dir, "name"), 4096, quiet=True)
    chip_name = clean_metric_name(raw) if raw is not None else None
    return ChipLayout(chip_name or None, files, static)


class HwmonChip(NamedTuple):
    chip: str
    chip_name: str | None
    sensors: dict[str, dict[str, str]]  # sensor -> property -> value (static and this scrape's readings)


class HwmonReader:
    """Chips with every sensor value; labels and layout cached for `ttl` seconds, readings read each call."""

    def __init__(self, class_dir: str, ttl: float = STATIC_TTL_SECONDS) -> None:
        self.class_dir = class_dir
        self.ttl = ttl
        self._dirs: dict[str, tuple[float, HwmonDir | None, ChipLayout | None]] = {}

    def present(self) -> bool:
        return os.path.isdir(self.class_dir)

    def _entry(self, folder: str, now: float) -> tuple[HwmonDir | None, ChipLayout | None]:
        cached = self._dirs.get(folder)
        if cached is None or now - cached[0] > self.ttl:
            path = os.path.join(self.class_dir, folder)
            if not os.path.isdir(path):
                cached = (now, None, None)
            else:
                base = base_label(path)
                name_file = (read_text(os.path.join(path, "name"), 4096, quiet=True) or "").strip()
                hd = HwmonDir(folder, base, name_file) if base else None
                cached = (now, hd, read_layout(path) if hd else None)
        self._dirs[folder] = cached
        return cached[1], cached[2]

    def chips(self) -> list[HwmonChip]:
        now = time.monotonic()
        listed = list_dir(self.class_dir)
        entries = [(d, layout) for d, layout in (self._entry(f, now) for f in listed) if d is not None and layout]
        for gone in set(self._dirs) - set(listed):
            del self._dirs[gone]
        labels = chip_labels([d for d, _ in entries])
        out = []
        for chip, (_d, layout) in zip(labels, entries):
            out.append(HwmonChip(chip, layout.chip_name, dict(_readings(layout))))
        return out


def _readings(layout: ChipLayout) -> Iterable[tuple[str, dict[str, str]]]:
    for sensor, props in layout.files.items():
        values = dict(layout.static.get(sensor, {}))
        for prop, path in props.items():
            if is_dynamic(prop):
                value = read_value(path)
                if value is not None:
                    values[prop] = value
        if values:
            yield sensor, values
