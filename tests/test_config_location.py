"""Where the settings file is found and where state goes: the documented search order, and every
state path under ``engine.data_dir`` whatever the current directory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gridwatch import _settings, load_settings
from gridwatch._cli_common import settings_or_exit
from gridwatch._settings import STATE_PATHS, find_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A settings file at each place of the search order, in a clean environment; the system
    folder (``/etc/gridwatch``) is stood in for by a temporary one."""
    for var in ("GRIDWATCH_CONFIG", "GRIDWATCH_ENGINE__DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    system = tmp_path / "etc" / "gridwatch" / "gridwatch.yaml"
    real = _settings.config_search_path()
    monkeypatch.setattr(_settings, "config_search_path", lambda: [*real[:2], system])
    made = {
        "flag": tmp_path / "flag.yaml",
        "env": tmp_path / "env.yaml",
        "cwd": work / "config" / "gridwatch.yaml",
        "user": tmp_path / "xdg" / "gridwatch" / "gridwatch.yaml",
        "system": system,
    }
    for name, path in made.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"mqtt:\n  client_id: from-{name}\n")
    return made


def test_documented_search_path() -> None:
    assert _settings.config_search_path()[0] == Path("config/gridwatch.yaml")
    assert _settings.config_search_path()[2] == Path("/etc/gridwatch/gridwatch.yaml")


def test_search_order(places: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_CONFIG", str(places["env"]))
    assert load_settings(places["flag"]).mqtt.client_id == "from-flag"
    assert find_config(places["flag"]).how == "--config"
    assert load_settings().mqtt.client_id == "from-env"
    assert find_config().how == "$GRIDWATCH_CONFIG"
    monkeypatch.delenv("GRIDWATCH_CONFIG")
    for name in ("cwd", "user", "system"):
        assert load_settings().mqtt.client_id == f"from-{name}"
        assert find_config().path == places[name].absolute()
        places[name].unlink()
    source = find_config()
    assert source.path is None and "/etc/gridwatch" in source.describe()
    assert load_settings().mqtt.client_id == "gridwatch-collector-0"  # the defaults


def test_a_named_file_that_is_missing_is_an_error(places: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_CONFIG", str(places["env"].with_name("gone.yaml")))
    with pytest.raises(_settings.ConfigError, match=r"gone\.yaml: no such configuration file"):
        load_settings()


def test_state_goes_under_the_data_dir_of_the_file_wherever_the_command_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDWATCH_ENGINE__DATA_DIR", raising=False)
    site = tmp_path / "site"
    cfg = site / "config" / "gridwatch.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("engine:\n  data_dir: ../state\n"
                   f"ingest:\n  deadletter_dir: {tmp_path / 'elsewhere'}\n")
    for cwd in (tmp_path, site, cfg.parent):
        monkeypatch.chdir(cwd)
        s = load_settings(cfg)
        data = (site / "state").resolve()
        assert s.engine.data_dir == data
        assert s.ingest.journal_dir == data / "journal"
        assert s.ingest.deadletter_dir == tmp_path / "elsewhere"  # absolute: kept
        assert s.influx.spool_dir == data / "spool"
        assert s.alerts.state_db == data / "alerts.sqlite"
        assert s.alerts.jsonl_out == data / "alerts.jsonl"
        assert s.engine.recovery_dir is None


def test_every_state_path_is_absolute_after_loading(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRIDWATCH_ENGINE__DATA_DIR", "rel-data")  # from the environment: cwd
    monkeypatch.setenv("GRIDWATCH_ENGINE__RECOVERY_DIR", "recovery")
    s = load_settings(ROOT / "config" / "gridwatch.yaml")
    assert s.engine.data_dir == tmp_path / "rel-data"
    for section, name in STATE_PATHS:
        value = getattr(getattr(s, section), name)
        if value is None:  # web.db unset: the alert database
            continue
        assert value.is_absolute() and value.is_relative_to(tmp_path / "rel-data"), (section, name)
    assert s.web.secret_file == tmp_path / "rel-data" / "web.secret"


def test_without_a_data_dir_state_goes_to_the_users_or_the_systems(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDWATCH_ENGINE__DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert load_settings(empty).ingest.journal_dir == tmp_path / "state" / "gridwatch" / "journal"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert load_settings(empty).engine.data_dir == Path("/var/lib/gridwatch")


def test_the_shipped_settings_keep_state_in_the_checkouts_var(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDWATCH_ENGINE__DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    s = load_settings(ROOT / "config" / "gridwatch.yaml")
    assert s.ingest.journal_dir == ROOT / "var" / "journal"


def test_commands_say_which_file_and_data_dir_they_use(
        places: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gridwatch.settings"):
        s = settings_or_exit(None)
    assert s.mqtt.client_id == "from-cwd"
    assert [r.getMessage() for r in caplog.records if r.levelname == "INFO"] == [
        f"settings: {places['cwd'].absolute()} (found in the search path); "
        f"data: {s.engine.data_dir}"]
    # and a file that leaves the time zone unset is told so
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "detection.timezone is not set: days, hours and holidays are judged in UTC unless the "
        "registry gives a cell its time zone"]


def test_check_config_names_the_data_dir_and_every_state_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gridwatch.cli import app

    for var in ("GRIDWATCH_ENGINE__DATA_DIR", "GRIDWATCH_WEB__SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "site" / "gridwatch.yaml"
    cfg.parent.mkdir()
    cfg.write_text("engine:\n  data_dir: state\n  recovery_dir: recovery\n"
                   "alerts:\n  tags_db: my-tags.sqlite\n")
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["check-config", "-c", str(cfg)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    shown = {line.split()[0]: line.split()[1:] for line in out.output.splitlines()
             if line.startswith("  ") and not line.lstrip().startswith(('"', "}", "]"))}
    data = tmp_path / "site" / "state"
    assert f"data directory: {data}" in out.output.splitlines()
    s = load_settings(cfg)
    for section, name in STATE_PATHS:
        if section != "web":
            assert shown[f"{section}.{name}"][0] == str(getattr(getattr(s, section), name))
    assert shown["engine.recovery_dir"] == [str(data / "recovery")]
    assert shown["alerts.tags_db"] == [str(data / "my-tags.sqlite")]
    assert shown["web.db"] == [str(data / "alerts.sqlite"), "(alerts.state_db)"]
    assert shown["web.secret_file"] == [str(data / "web.secret")]
    assert out.output.rstrip().endswith("configuration is valid")
