"""The users and act receivers of the generated Alertmanager config through amtool: the config checks,
and every waste alert reaches exactly the receivers it should (act and the job's owner, never a ticket)."""

from __future__ import annotations

import subprocess

import helpers
import pytest
from hpcwatch.alerts import alertmanager as am

CONFIG = """oncall: {type: pagerduty, routing_key_file: /etc/am/pd-key}
ticket: {type: webhook, url: 'http://127.0.0.1:9/ticket'}
users: {type: email, to: '{{ .CommonLabels.user }}@example.edu', from: hpcwatch@example.edu,
        smarthost: 'smtp.example.edu:587'}
act: {url: 'http://127.0.0.1:19469/alertmanager', repeat: 1h}
"""


def _amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helpers.require_binary("amtool"), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "alertmanager.yml"
    path.write_text(am.render(am.load_config(CONFIG)))
    return str(path)


def test_check_config_with_users_and_act(config):
    proc = _amtool("check-config", config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 receivers" in proc.stdout


@pytest.mark.parametrize("what, labels, receivers", am.USER_ROUTING_CASES, ids=[c[0] for c in am.USER_ROUTING_CASES])
def test_waste_alerts_reach_act_and_the_owner_only(config, what, labels, receivers):
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = _amtool("config", "routes", "test", f"--config.file={config}", f"--verify.receivers={','.join(receivers)}",
                   *args)
    assert proc.returncode == 0, f"{what}: {proc.stdout}{proc.stderr}"


def test_the_shipped_example_routes_user_alerts_to_users(tmp_path):
    """deploy/alertmanager/alertmanager.yml (the example receivers) sends waste alerts to `users`."""
    path = tmp_path / "am.yml"
    path.write_text(am.render(am.load_config(am.EXAMPLE_CONFIG)))
    labels = [f"{k}={v}" for k, v in am.USER_ROUTING_CASES[2][1].items()]
    proc = _amtool("config", "routes", "test", f"--config.file={path}", "--verify.receivers=users", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
