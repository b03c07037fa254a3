"""The settings root: YAML + environment, frozen, one-line errors, exit code 2 from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gridwatch import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


def test_shipped_config_is_valid(monkeypatch):
    monkeypatch.chdir(ROOT)
    s = load_settings(ROOT / "config" / "gridwatch.yaml")
    assert s.mqtt.qos == 1
    assert s.topics.deadletter == "gridwatch/deadletter"


def test_environment_overrides_file(tmp_path, monkeypatch):
    path = write(tmp_path, "mqtt:\n  port: 1884\n  host: broker.local\n")
    monkeypatch.setenv("GRIDWATCH_MQTT__PORT", "1999")
    s = load_settings(path)
    assert s.mqtt.port == 1999
    assert s.mqtt.host == "broker.local"  # file value kept where env is silent


def test_settings_are_frozen(tmp_path):
    s = load_settings(write(tmp_path, ""))
    with pytest.raises(ValidationError):
        s.mqtt.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt:\n  port: 70000\n", "mqtt.port: Input should be less than or equal to 65535"),
        ("mqtt:\n  prot: 1\n", "mqtt.prot: unknown setting"),
        ("influx:\n  api: v3\n", "influx.api:"),
        ("mqtt:\n  port: [1\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_errors_are_one_line_naming_the_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, text))
    msg = str(exc.value)
    assert expected in msg
    assert "\n" not in msg


def test_secrets_are_hidden_and_placeholders_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDWATCH_INFLUX__TOKEN", "s3cr3t-token-value")
    s = load_settings(write(tmp_path, ""))
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in s.model_dump_json()
    assert s.influx.token is not None
    assert s.influx.token.get_secret_value() == "s3cr3t-token-value"
    monkeypatch.setenv("GRIDWATCH_INFLUX__TOKEN", "changeme")
    with pytest.raises(ConfigError, match=r"influx.token: .*placeholder.*\(got \*\*\*\)"):
        load_settings(write(tmp_path, ""))


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.yaml")


def test_check_config_cli_exit_code_and_single_line(tmp_path):
    bad = write(tmp_path, "detection:\n  band_hi: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", "check-config", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "detection.band_hi" in lines[0]
    assert "Traceback" not in proc.stderr


def test_code_overrides_beat_environment_and_merge_with_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "alerts:\n  registry: a.yaml\n  group_wait_s: 3\n")
    monkeypatch.setenv("GRIDWATCH_ALERTS__REGISTRY", "from-env.yaml")
    s = load_settings(path, alerts={"registry": "from-cli.yaml"})
    assert str(s.alerts.registry) == "from-cli.yaml"
    assert s.alerts.group_wait_s == 3  # the rest of the section still comes from the file
