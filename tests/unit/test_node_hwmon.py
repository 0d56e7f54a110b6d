"""hwmon as node_exporter reads it: chip labels (told apart when chips share a device), every sensor type
and property with node_exporter's names and units, and the pure helpers fuzzed."""

from __future__ import annotations

import os
import re

import helpers
import nodetrees
import pytest
from hpcwatch.exporters.node.families import FAMILIES
from hpcwatch.exporters.node.hwmon import (
    HwmonDir,
    chip_labels,
    clean_metric_name,
    explode_sensor_filename,
    sensor_samples,
)
from hypothesis import given
from hypothesis import strategies as st

FIX = nodetrees.FIX


def scrape(sysfs: str) -> str:
    return nodetrees.scrape(nodetrees.node(os.path.dirname(sysfs)))


def temps(text: str) -> dict[tuple[str, str], float]:
    return {(d["chip"], d["sensor"]): v for d, v in zip(helpers.series_labels(text, "node_hwmon_temp_celsius"),
                                                      helpers.values(text, "node_hwmon_temp_celsius"))}


def test_chips_sharing_one_device_stay_apart_as_node_exporter_names_them() -> None:
    # Three radios of one MT7996 card, asus + asus_wmi_sensors on one platform device, and two hwmon
    # folders of one Super I/O chip with the same `name`: before, all but one per device vanished.
    text = scrape(os.path.join(FIX, "hwmon-shared-device", "sys"))
    assert temps(text) == {
        ("ieee80211_phy0_mt7996_phy0_0", "temp1"): 51.0,
        ("ieee80211_phy0_mt7996_phy0_1", "temp1"): 52.5,
        ("ieee80211_phy0_mt7996_phy0_2", "temp1"): 49.0,
        ("platform_asus_nb_wmi_asus_wmi_sensors", "temp1"): 38.0,
        ("platform_nct6775_656_hwmon7", "temp1"): 30.0,
        ("platform_nct6775_656_hwmon8", "temp1"): 31.0,
    }
    chip_names = {d["chip"]: d["chip_name"] for d in helpers.series_labels(text, "node_hwmon_chip_names")}
    assert chip_names["platform_asus_nb_wmi_asus"] == "asus"
    assert chip_names["platform_nct6775_656_hwmon8"] == "nct6775"
    fans = {(d["chip"], d["sensor"]) for d in helpers.series_labels(text, "node_hwmon_fan_rpm")}
    assert fans == {("platform_asus_nb_wmi_asus", "fan1"), ("platform_asus_nb_wmi_asus_wmi_sensors", "fan1")}


def test_fans_voltages_power_and_current_of_a_server() -> None:
    # Super I/O fans and voltages, the BMC's ACPI power meter and a PMBus power supply (kernel 6 tree).
    text = scrape(os.path.join(FIX, "real", "sys"))
    nct, meter, psu = "platform_nct6775_2592", "lnxsybus:00_acpi000d:00", "i2c_0_0_0058"

    def one(name: str, chip: str, sensor: str) -> float:
        [v] = helpers.values(text, name, chip=chip, sensor=sensor)
        return v

    assert one("node_hwmon_fan_rpm", nct, "fan1") == 1102 and one("node_hwmon_fan_min_rpm", nct, "fan1") == 300
    assert one("node_hwmon_fan_alarm", nct, "fan2") == 1  # a stopped fan below its minimum
    assert one("node_hwmon_in_volts", nct, "in0") == pytest.approx(1.032)
    assert one("node_hwmon_in_max_volts", nct, "in0") == pytest.approx(1.744)
    assert one("node_hwmon_power_average_watt", meter, "power1") == 245.0
    assert one("node_hwmon_power_average_interval_seconds", meter, "power1") == 1.0
    assert not helpers.values(text, "node_hwmon_power_accuracy")  # "95.0%" is not a number: left out
    assert one("node_hwmon_power_watt", psu, "power1") == 245.0
    assert one("node_hwmon_curr_amps", psu, "curr1") == pytest.approx(1.1)
    assert one("node_hwmon_in_volts", psu, "in1") == 230.0
    assert one("node_hwmon_energy_joule_total", psu, "energy1") == pytest.approx(987654.321)
    assert helpers.values(text, "node_hwmon_sensor_label", chip=psu, sensor="curr1", label="iin") == [1]


def test_chip_include_and_sensor_exclude_options() -> None:
    text = nodetrees.scrape(nodetrees.node(**{"hwmon-chip-include": "nct|i2c",
                                              "hwmon-sensor-exclude": "^platform_nct6775_2592;fan2$"}))
    assert {d["chip"] for d in helpers.series_labels(text, "node_hwmon_chip_names")} == {
        "platform_nct6775_2592", "i2c_0_0_0058"}
    assert {d["sensor"] for d in helpers.series_labels(text, "node_hwmon_fan_rpm")} == {"fan1"}


def test_chip_labels_rule() -> None:
    dirs = [HwmonDir("hwmon6", "platform_asus_nb_wmi", "asus"),
            HwmonDir("hwmon7", "platform_asus_nb_wmi", "asus_wmi_sensors"),
            HwmonDir("hwmon3", "platform_x", "same"), HwmonDir("hwmon4", "platform_x", "same"),
            HwmonDir("hwmon9", "platform_y", ""), HwmonDir("hwmon10", "platform_y", "Y Chip"),
            HwmonDir("hwmon0", "platform_coretemp_0", "coretemp")]
    assert chip_labels(dirs) == ["platform_asus_nb_wmi_asus", "platform_asus_nb_wmi_asus_wmi_sensors",
                                 "platform_x_hwmon3", "platform_x_hwmon4", "platform_y_hwmon9",
                                 "platform_y_y_chip", "platform_coretemp_0"]


def test_clean_metric_name_lowercases_and_keeps_colons() -> None:
    assert clean_metric_name("coretemp.0") == "coretemp_0"
    assert clean_metric_name("0000:00:18.3\n") == "0000:00:18_3"
    assert clean_metric_name("__Foo Bar__") == "foo_bar"


def test_explode_sensor_filename() -> None:
    assert explode_sensor_filename("temp1_crit_alarm") == ("temp", 1, "crit_alarm")
    assert explode_sensor_filename("pwm1") == ("pwm", 1, "")
    assert explode_sensor_filename("beep_enable") == ("beep_enable", 0, "")
    assert explode_sensor_filename("in0_input") == ("in", 0, "input")
    assert explode_sensor_filename("1abc") is None


@pytest.mark.parametrize("sensor,data,expected", [
    ("temp1", {"input": "55000", "crit_alarm": "0", "type": "4"},
     {("node_hwmon_temp_celsius", 55.0), ("node_hwmon_temp_crit_alarm_celsius", 0.0), ("node_hwmon_temp_type", 4.0)}),
    ("fan1", {"input": "1998", "min": "2000", "alarm": "1", "beep": "0", "pulses": "2"},
     {("node_hwmon_fan_rpm", 1998.0), ("node_hwmon_fan_min_rpm", 2000.0), ("node_hwmon_fan_alarm", 1.0),
      ("node_hwmon_fan_beep_enabled", 0.0), ("node_hwmon_fan_pulses", 2.0)}),
    ("in0", {"input": "1234", "max": "1500", "min": "1000"},
     {("node_hwmon_in_volts", 1.234), ("node_hwmon_in_max_volts", 1.5), ("node_hwmon_in_min_volts", 1.0)}),
    ("curr1", {"input": "2500"}, {("node_hwmon_curr_amps", 2.5)}),
    ("power1", {"input": "125000000", "average": "120000000", "average_interval": "1000", "accuracy": "5000"},
     {("node_hwmon_power_watt", 125.0), ("node_hwmon_power_average_watt", 120.0),
      ("node_hwmon_power_average_interval_seconds", 1.0), ("node_hwmon_power_accuracy", 0.005)}),
    ("energy1", {"input": "3000000"}, {("node_hwmon_energy_joule_total", 3.0)}),
    ("humidity1", {"input": "45000000"}, {("node_hwmon_humidity", 45.0)}),
    ("pwm1", {"": "128", "enable": "2"}, {("node_hwmon_pwm", 128.0), ("node_hwmon_pwm_enable", 2.0)}),
    ("temp2", {"": "40000", "input": "41000"}, {("node_hwmon_temp_celsius", 40.0), ("node_hwmon_temp_input_celsius",
                                                                                   41.0)}),
    ("beep_enable0", {"": "1"}, {("node_hwmon_beep_enabled", 1.0)}),
    ("vrm0", {"": "9.1"}, {("node_hwmon_voltage_regulator_version", 9.1)}),
    ("update_interval0", {"": "1000"}, {("node_hwmon_update_interval_seconds", 1.0)}),
    ("intrusion0", {"alarm": "1"}, {("node_hwmon_intrusion_alarm", 1.0)}),
    ("temp3", {"input": "hot"}, set()),
])
def test_sensor_samples_follow_node_exporters_units(sensor: str, data: dict[str, str], expected: set) -> None:
    got = {(s.family, round(s.value, 9)) for s in sensor_samples("chip", sensor, data)}
    assert got == expected


def test_freq_sensor_is_named_by_its_label() -> None:
    [s] = sensor_samples("hwmon4", "freq1", {"input": "214000000", "label": "sclk"})
    assert (s.family, s.labels, s.value) == ("node_hwmon_freq_freq_mhz", ("hwmon4", "sclk"), 214.0)
    assert sensor_samples("hwmon4", "freq1", {"input": "214000000"}) == []


@given(st.text(max_size=40))
def test_clean_and_explode_fuzz(text: str) -> None:
    assert re.fullmatch(r"[a-z0-9:_]*", clean_metric_name(text))
    parts = explode_sensor_filename(text)
    assert parts is None or (parts[0] and not re.search("[0-9]", parts[0]) and parts[1] >= 0)


@given(st.sampled_from(["temp1", "fan2", "in0", "curr1", "power1", "energy1", "humidity1", "pwm1", "freq1",
                        "intrusion0", "beep_enable0", "vrm0", "update_interval0", "cpu0"]),
       st.dictionaries(st.sampled_from(["", "input", "label", "max", "min", "crit", "alarm", "fault", "beep",
                                        "average", "accuracy", "type", "enable", "average_interval", "x y"]),
                       st.text(max_size=12) | st.integers(-10**12, 10**12).map(str), max_size=8))
def test_sensor_samples_fuzz(sensor: str, data: dict[str, str]) -> None:
    for s in sensor_samples("chip", sensor, data):
        assert re.fullmatch(r"node_hwmon_[a-z0-9_:]+", s.family), s.family
        assert len(s.labels) == 2
        assert FAMILIES.spec_of(s.family).type == ("counter" if s.family.endswith("_total") else "gauge")
