"""XID errors as a counter: a background thread waits on an NVML event set registered for
critical-XID events and counts each event by GPU and XID number.

A counter, not "the last XID" gauge: two XIDs between scrapes are two increments, and an XID that
came and went between scrapes is still seen.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.gpu import nvml

log = logging.getLogger("hpcwatch.collector.gpu")


@dataclasses.dataclass(frozen=True)
class WatchedGpu:
    gpu: str
    uuid: str
    handle: Any


class XidWatcher:
    """Owns one NVML event set and the thread that waits on it; `stop()` ends both."""

    def __init__(self, lib: Any, gpus: Sequence[WatchedGpu], wait_ms: int = 500) -> None:
        self.lib = lib
        self.wait_ms = wait_ms
        self.registered: list[WatchedGpu] = []
        self._by_handle: dict[Any, WatchedGpu] = {}
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_set: Any = None
        self._gpus = list(gpus)

    def start(self) -> None:
        """Create the event set, register every GPU that supports XID events, start the thread."""
        lib = self.lib
        try:
            self._event_set = lib.nvmlEventSetCreate()
        except lib.NVMLError as exc:
            log_once(log, "xid-set", "XID events unavailable: nvmlEventSetCreate failed: %s", exc)
            return
        for gpu in self._gpus:
            try:
                lib.nvmlDeviceRegisterEvents(gpu.handle, lib.nvmlEventTypeXidCriticalError, self._event_set)
            except lib.NVMLError as exc:
                level = (
                    logging.DEBUG if nvml.error_code(exc) == lib.NVML_ERROR_NOT_SUPPORTED else logging.WARNING
                )
                log_once(
                    log,
                    f"xid-register:{gpu.uuid}",
                    "gpu %s (%s): XID events not watched: %s",
                    gpu.gpu,
                    gpu.uuid,
                    exc,
                    level=level,
                )
                continue
            self.registered.append(gpu)
            self._by_handle[nvml.handle_key(gpu.handle)] = gpu
        if not self.registered:
            self._free()
            return
        self._thread = threading.Thread(target=self._run, name="gpu-xid-events", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counts(self) -> dict[tuple[str, str, str], int]:
        """{(gpu, uuid, xid): events seen since start}."""
        with self._lock:
            return dict(self._counts)

    def _count(self, data: Any) -> None:
        if not int(data.eventType) & self.lib.nvmlEventTypeXidCriticalError:
            return
        gpu = self._by_handle.get(nvml.handle_key(data.device))
        key = (gpu.gpu, gpu.uuid) if gpu else ("", "")
        xid = str(int(data.eventData))
        with self._lock:
            self._counts[key + (xid,)] = self._counts.get(key + (xid,), 0) + 1

    def _run(self) -> None:
        lib = self.lib
        while not self._stop.is_set():
            try:
                data = lib.nvmlEventSetWait_v2(self._event_set, self.wait_ms)
            except lib.NVMLError as exc:
                if nvml.error_code(exc) == lib.NVML_ERROR_TIMEOUT:
                    continue
                # GPU lost or a driver error: say so once, and do not spin on a failing wait.
                log_once(log, f"xid-wait:{nvml.error_code(exc)}", "waiting for XID events failed: %s", exc)
                self._stop.wait(1.0)
                continue
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any odd record
                log_once(log, "xid-wait-other", "XID event thread: %s: %s", type(exc).__name__, exc)
                self._stop.wait(1.0)
                continue
            try:
                self._count(data)
            except (AttributeError, TypeError, ValueError) as exc:
                log_once(log, "xid-record", "unreadable XID event record: %s", exc)

    def _free(self) -> None:
        if self._event_set is not None:
            try:
                self.lib.nvmlEventSetFree(self._event_set)
            except self.lib.NVMLError as exc:
                log.debug("nvmlEventSetFree failed: %s", exc)
            self._event_set = None

    def stop(self) -> None:
        """Stop the thread (within one wait timeout) and free the event set."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_ms / 1000 + 5)
            if self._thread.is_alive():
                # Freeing a set another thread still waits on is undefined in NVML: leak it instead.
                log.warning("XID event thread did not stop; leaving its event set allocated")
                return
        self._free()
