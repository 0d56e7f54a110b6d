"""NVML field values: which fields one batched nvmlDeviceGetFieldValues call asks for, and a pure
decoder that turns the returned records into plain numbers, dropping failed fields and sentinels.

Field ids are the documented NVML_FI_DEV_* numbers (stable by NVML's own promise); the test suite
checks every one against the constant of the same name in the installed pynvml.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

# Device-scoped fields asked for on every scrape (name -> NVML field id).
DEVICE_FIELDS: dict[str, int] = {
    "NVML_FI_DEV_ECC_CURRENT": 1,
    "NVML_FI_DEV_ECC_SBE_VOL_TOTAL": 3,
    "NVML_FI_DEV_ECC_DBE_VOL_TOTAL": 4,
    "NVML_FI_DEV_ECC_SBE_AGG_TOTAL": 5,
    "NVML_FI_DEV_ECC_DBE_AGG_TOTAL": 6,
    "NVML_FI_DEV_RETIRED_SBE": 29,
    "NVML_FI_DEV_RETIRED_DBE": 30,
    "NVML_FI_DEV_RETIRED_PENDING": 31,
    "NVML_FI_DEV_MEMORY_TEMP": 82,
    "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 83,
    "NVML_FI_DEV_PCIE_REPLAY_COUNTER": 94,
    "NVML_FI_DEV_REMAPPED_COR": 142,
    "NVML_FI_DEV_REMAPPED_UNC": 143,
    "NVML_FI_DEV_REMAPPED_PENDING": 144,
    "NVML_FI_DEV_REMAPPED_FAILURE": 145,
    "NVML_FI_DEV_POWER_INSTANT": 186,
    "NVML_FI_DEV_PCIE_COUNT_TX_BYTES": 197,
    "NVML_FI_DEV_PCIE_COUNT_RX_BYTES": 198,
}

# Asked for once per GPU at discovery: how many NVLinks to ask the per-link fields for.
NVLINK_LINK_COUNT = ("NVML_FI_DEV_NVLINK_LINK_COUNT", 91)

# Per-link fields; the link number goes in the record's scopeId.
LINK_FIELDS: dict[str, int] = {
    "NVML_FI_DEV_NVLINK_GET_STATE": 165,
    "NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY": 161,
    "NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY": 162,
    "NVML_FI_DEV_NVLINK_ERROR_DL_CRC": 163,
    "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX": 138,
    "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX": 139,
}

FIELD_NAMES: dict[int, str] = {
    v: k for k, v in (*DEVICE_FIELDS.items(), NVLINK_LINK_COUNT, *LINK_FIELDS.items())
}

NVML_SUCCESS = 0

# nvmlValueType_t -> the member of the nvmlValue_t union that holds the value.
_VALUE_MEMBER = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
# "Not available" markers NVML puts in a field that otherwise reports success (all bits set).
_SENTINELS = {
    "uiVal": 0xFFFFFFFF,
    "ulVal": 0xFFFFFFFFFFFFFFFF,
    "ullVal": 0xFFFFFFFFFFFFFFFF,
    "usVal": 0xFFFF,
    "siVal": -1,
    "sllVal": -1,
}
_ULONG_32_SENTINEL = 0xFFFFFFFF  # unsigned long is 32 bits on some platforms


@dataclasses.dataclass(frozen=True)
class FieldReading:
    """One field's outcome: its value, or why it has none (`status` is the field's own nvmlReturn)."""

    field_id: int
    scope_id: int
    value: float | None
    status: int
    sentinel: bool = False


def request(link_count: int) -> list[tuple[int, int]]:
    """The (fieldId, scopeId) list for one batched call: device fields, then per-link fields."""
    out = [(fid, 0) for fid in DEVICE_FIELDS.values()]
    for link in range(max(0, link_count)):
        out.extend((fid, link) for fid in LINK_FIELDS.values())
    return out


def _number(record: Any) -> tuple[float | None, bool]:
    member = _VALUE_MEMBER.get(int(record.valueType))
    if member is None:
        return None, False
    raw = getattr(record.value, member)
    if member == "dVal":
        raw = float(raw)
        return (None, True) if math.isnan(raw) or math.isinf(raw) else (raw, False)
    raw = int(raw)
    if raw == _SENTINELS[member] or (member == "ulVal" and raw == _ULONG_32_SENTINEL):
        return None, True
    return float(raw), False


def decode(records: Iterable[Any]) -> list[FieldReading]:
    """Field-value records (pynvml c_nvmlFieldValue_t or alike) to readings; never raises on odd records."""
    out = []
    for rec in records:
        try:
            fid, scope, status = int(rec.fieldId), int(rec.scopeId), int(rec.nvmlReturn)
        except (AttributeError, TypeError, ValueError):
            continue
        if status != NVML_SUCCESS:
            out.append(FieldReading(fid, scope, None, status))
            continue
        try:
            value, sentinel = _number(rec)
        except (AttributeError, TypeError, ValueError, OverflowError):
            value, sentinel = None, False
        out.append(FieldReading(fid, scope, value, status if value is not None or sentinel else -1, sentinel))
    return out


def by_key(readings: Sequence[FieldReading]) -> dict[tuple[int, int], float]:
    """{(fieldId, scopeId): value} for the readings that carry a value."""
    return {(r.field_id, r.scope_id): r.value for r in readings if r.value is not None}


# --- the per-scrape fast path ----------------------------------------------------------------------
# Reading 126 records a GPU through ctypes attribute access (and pynvml's Python-level
# _PrintableStructure.__getattribute__ on every member) dominated the collector's own time. A ctypes
# array of field-value records is one contiguous buffer, so it is unpacked with `struct` instead, in a
# layout derived from the record type's own ctypes description (offsets, sizes, type codes): whatever
# pynvml's c_nvmlFieldValue_t looks like, the fast path reads it as ctypes would, or is not used.
_HEAD = ("fieldId", "scopeId", "valueType", "nvmlReturn")
_INT_CODES = frozenset("bBhHiIlLqQ")


@dataclasses.dataclass(frozen=True)
class _Layout:
    record: struct.Struct  # one record -> (fieldId, scopeId, valueType, nvmlReturn, value union bytes)
    values: dict[int, tuple[struct.Struct, str]]  # valueType -> (union member unpacker, member name)


_LAYOUTS: dict[type, _Layout | None] = {}


def _layout_of(record_type: type) -> _Layout | None:
    """The struct layout of a field-value record type, or None where it cannot be derived safely."""
    try:
        types = dict(record_type._fields_)
        members = [(getattr(record_type, n).offset, getattr(record_type, n).size, n) for n in (*_HEAD, "value")]
        union = types["value"]
        union_types = dict(union._fields_)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if [n for _, _, n in sorted(members)] != [*_HEAD, "value"]:
        return None
    fmt, pos = "@", 0
    for offset, size, name in members:
        if offset < pos:
            return None
        fmt += f"{offset - pos}x" if offset > pos else ""
        if name == "value":
            fmt += f"{size}s"
        else:
            code = getattr(types[name], "_type_", None)
            if not isinstance(code, str) or code not in _INT_CODES or struct.calcsize("@" + code) != size:
                return None
            fmt += code
        pos = offset + size
    total = ctypes.sizeof(record_type)
    fmt += f"{total - pos}x" if total > pos else ""
    record = struct.Struct(fmt)
    if record.size != total:  # packed or otherwise unusual: leave it to ctypes
        return None
    values: dict[int, tuple[struct.Struct, str]] = {}
    for vtype, member in _VALUE_MEMBER.items():
        ctype = union_types.get(member)
        code = getattr(ctype, "_type_", None)
        if ctype is None or getattr(union, member).offset != 0 or not isinstance(code, str):
            return None
        if code not in _INT_CODES and code != "d":
            return None
        unpack = struct.Struct("@" + code)
        if unpack.size != ctypes.sizeof(ctype):
            return None
        values[vtype] = (unpack, member)
    return _Layout(record, values)


def _layout_for(records: Any) -> _Layout | None:
    if not isinstance(records, ctypes.Array):
        return None
    record_type = records._type_
    if record_type not in _LAYOUTS:
        _LAYOUTS[record_type] = _layout_of(record_type)
    return _LAYOUTS[record_type]


def decode_values(records: Any) -> tuple[dict[tuple[int, int], float], list[FieldReading]]:
    """({(fieldId, scopeId): value} of the fields that carry one, [readings of those that do not]).

    The same outcome as `by_key(decode(records))` and the readings without a value, read straight from
    the buffer of a ctypes array of records; any other sequence of records goes through `decode`.
    """
    layout = _layout_for(records)
    if layout is None:
        readings = decode(records or ())
        return by_key(readings), [r for r in readings if r.value is None]
    values: dict[tuple[int, int], float] = {}
    missing: list[FieldReading] = []
    unpackers = layout.values
    isnan, isinf = math.isnan, math.isinf
    for fid, scope, vtype, status, raw in layout.record.iter_unpack(bytes(records)):
        if status != NVML_SUCCESS:
            missing.append(FieldReading(fid, scope, None, status))
            continue
        how = unpackers.get(vtype)
        if how is None:
            missing.append(FieldReading(fid, scope, None, -1))
            continue
        unpack, member = how
        x = unpack.unpack_from(raw)[0]
        if member == "dVal":
            if isnan(x) or isinf(x):
                missing.append(FieldReading(fid, scope, None, status, True))
                continue
        elif x == _SENTINELS[member] or (member == "ulVal" and x == _ULONG_32_SENTINEL):
            missing.append(FieldReading(fid, scope, None, status, True))
            continue
        values[(fid, scope)] = float(x)
    return values, missing
