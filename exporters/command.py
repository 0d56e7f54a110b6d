"""Run an external command the safe way: argument list, timeout, pinned environment, bounded output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

# Pinned so parsers see one format whatever the operator's shell sets.
PINNED_ENV = {"LC_ALL": "C", "LANG": "C", "SLURM_TIME_FORMAT": "standard", "TZ": "UTC"}


class CommandError(RuntimeError):
    """A command failed, timed out or could not be started; the message says which and why."""


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PINNED_ENV)
    if extra:
        env.update(extra)
    return env


def run_command(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
) -> str:
    """Run argv (never through a shell) and return stdout; raise CommandError on timeout or failure."""
    if isinstance(argv, str):
        raise TypeError("run_command takes an argument list, not a string")
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            timeout=timeout,
            env=command_env(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{argv[0]} timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise CommandError(f"{argv[0]} could not be run: {exc.strerror or exc}") from exc
    if proc.returncode not in ok_codes:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = err[-1] if err else "(no stderr)"
        raise CommandError(f"{argv[0]} exited {proc.returncode}: {tail[:500]}")
    return proc.stdout.decode("utf-8", "replace")
