"""run_command: argument lists only, timeouts, pinned environment, failures named."""

import pytest
from hpcwatch.exporters.command import CommandError, run_command


def test_pinned_environment():
    out = run_command(["/usr/bin/env"], timeout=5)
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert env["LC_ALL"] == "C"
    assert env["SLURM_TIME_FORMAT"] == "standard"


def test_timeout_is_an_error_naming_the_command():
    with pytest.raises(CommandError, match="sleep timed out after 0.2s"):
        run_command(["sleep", "5"], timeout=0.2)


def test_non_zero_exit_names_code_and_stderr():
    with pytest.raises(CommandError, match=r"sh exited 3: oops"):
        run_command(["sh", "-c", "echo oops >&2; exit 3"], timeout=5)


def test_missing_binary():
    with pytest.raises(CommandError, match="could not be run"):
        run_command(["/nonexistent/squeue"], timeout=5)


def test_string_commands_are_refused():
    with pytest.raises(TypeError):
        run_command("squeue -h", timeout=5)  # type: ignore[arg-type]
