"""The NVML boundary: the one place the GPU collector reaches the `pynvml` module (nvidia-ml-py).

Every NVML call in hpcwatch.exporters.gpu goes through `lib`, a module-like object with pynvml's
function and constant names. Production uses pynvml itself; tests install a fake with `use()`.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pynvml

lib: Any = pynvml


def use(fake: Any) -> Any:
    """Install a pynvml-compatible object as the NVML boundary; returns the one it replaces."""
    global lib
    previous, lib = lib, fake
    return previous


def shutdown(binding: Any) -> None:
    """nvmlShutdown, once per nvmlInit; a failure is only worth a debug line (the process is ending)."""
    try:
        binding.nvmlShutdown()
    except binding.NVMLError as exc:
        logging.getLogger("hpcwatch.collector.gpu").debug("nvmlShutdown failed: %s", exc)


def error_code(exc: BaseException) -> int | None:
    """The NVML return code carried by an NVMLError, or None for any other exception."""
    if isinstance(exc, (pynvml.NVMLError, getattr(lib, "NVMLError", ()))):
        return getattr(exc, "value", None)
    return None


def text(value: Any) -> str:
    """NVML strings come back as bytes or str depending on the binding version."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def handle_key(handle: Any) -> Any:
    """A hashable identity for a device handle, equal for two handles of the same device.

    Real handles are ctypes pointers: the handle inside an event record is a new Python object with
    the same address as the one from nvmlDeviceGetHandleByIndex, so compare addresses.
    """
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (ctypes.ArgumentError, TypeError):
        return handle


class FieldRequest:
    """The (fieldId, scopeId) pairs of one GPU's batched nvmlDeviceGetFieldValues call, kept across
    scrapes. pynvml's wrapper rebuilds its ctypes request array on every call through Python-level
    attribute sets (~0.2 ms a GPU for 126 fields); with the real pynvml, `field_values` builds the array
    once here and hands NVML a copy of it (one memcpy) per call instead."""

    def __init__(self, ids: Iterable[tuple[int, int]]) -> None:
        self.ids = list(ids)
        self._template: Any = None

    def array(self) -> Any:
        """A fresh c_nvmlFieldValue_t array with fieldId and scopeId set (concurrent scrapes each get one)."""
        if self._template is None:
            template = (pynvml.c_nvmlFieldValue_t * len(self.ids))()
            for record, (fid, scope) in zip(template, self.ids):
                record.fieldId, record.scopeId = fid, scope
            self._template = template
        return type(self._template).from_buffer_copy(self._template)


def _direct(binding: Any) -> tuple[Callable[[str], Any], Callable[[int], Any]] | None:
    """pynvml's function-pointer lookup and return-code check, when the binding is the real pynvml
    and this version still has them (they are private: without them, the public wrapper is used)."""
    if binding is not pynvml:
        return None
    get_function = getattr(pynvml, "_nvmlGetFunctionPointer", None)
    check = getattr(pynvml, "_nvmlCheckReturn", None)
    if not callable(get_function) or not callable(check) or not hasattr(pynvml, "c_nvmlFieldValue_t"):
        return None
    return get_function, check


def field_values(binding: Any, handle: Any, request: FieldRequest) -> Any:
    """binding.nvmlDeviceGetFieldValues(handle, request.ids): with the real pynvml, the same records and
    the same NVMLError on a failed call as its wrapper (which does this, building the array each time)."""
    direct = _direct(binding)
    if direct is None:
        return binding.nvmlDeviceGetFieldValues(handle, request.ids)
    get_function, check = direct
    values = request.array()
    fn = get_function("nvmlDeviceGetFieldValues")
    check(fn(handle, ctypes.c_int32(len(request.ids)), ctypes.byref(values)))
    return values
