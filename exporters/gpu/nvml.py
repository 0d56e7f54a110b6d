"""The NVML boundary: the one place the GPU collector reaches the `pynvml` module (nvidia-ml-py).

Every NVML call in hpcwatch.exporters.gpu goes through `lib`, a module-like object with pynvml's
function and constant names. Production uses pynvml itself; tests install a fake with `use()`.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pynvml

lib: Any = pynvml


def use(fake: Any) -> Any:
    """Install a pynvml-compatible object as the NVML boundary; returns the one it replaces."""
    global lib
    previous, lib = lib, fake
    return previous


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
