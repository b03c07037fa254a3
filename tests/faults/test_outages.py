"""The servers around the engine fail while readings keep coming: InfluxDB, the SMTP server and
the webhook receiver are down for 60 s together, and the MQTT broker restarts in the middle of
that. Nothing is lost, everything is delivered once after recovery, the engine never stops."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from _faults_helpers import (
    Fleet,
    Observer,
    Publisher,
    SmtpReceiver,
    WebhookReceiver,
    create_database,
    expected_keys,
    reading_count,
    slot_times,
    stored_readings,
    write_config,
)
from _suite_helpers import wait_until

from gridwatch import _services

REGULAR = [f"O-{i:03d}" for i in range(30)]
SAG = "O-SAG"
SLOTS = 96
OUTAGE_S = 60.0


def outbox(db: Path) -> list[tuple[str, str, str]]:
    """(key, channel, status) of every notification in the router's outbox."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute("SELECT key, channel, status FROM outbox"))


@pytest.mark.services
@pytest.mark.slow
def test_broker_restart_and_60s_outages(tmp_path: Path, fresh_mosquitto,
                                        engine_process) -> None:
    influx = _services.influxdb(tmp_path / "influxdb").start()
    smtp = SmtpReceiver().start()
    hook = WebhookReceiver().start()
    observer = pub = None
    try:
        db = "faults_outage"
        create_database(influx.url, db)
        config = write_config(
            tmp_path, broker=fresh_mosquitto, influx_url=influx.url, database=db,
            meters=[*REGULAR, SAG],
            registry={"channels": ["mqtt", "email", "webhook"], "email": "mgr@example.org",
                      "webhook": hook.url},
            alerts={"smtp": {"host": "127.0.0.1", "port": smtp.port, "timeout_s": 2},
                    "retry": {"base_s": 1, "max_s": 4, "max_attempts": 500}},
        )
        f = Fleet([*REGULAR, SAG], slot_times(SLOTS))
        for s in (44, 45, 46):
            f.override[(SAG, s)] = {"voltage": [180.0]}
        published: list[dict] = []
        observer = Observer(fresh_mosquitto)
        engine = engine_process(config)

        def alive() -> None:
            assert engine.proc is not None and engine.proc.poll() is None, engine.log()[-3000:]

        def send(slots: range, pause: float = 0.0, batch: int = 0) -> None:
            for s in slots:
                rows = f.slot(s)
                pub.readings(rows, batch=batch)
                published.extend(rows)
                alive()
                time.sleep(pause)

        pub = Publisher(fresh_mosquitto)
        send(range(40), batch=31)
        wait_until(lambda: reading_count(influx.url, db) >= len(published), 60,
                   "the first readings stored", alive)

        # InfluxDB, SMTP and the webhook receiver go down together.
        influx.stop()
        smtp.stop()
        hook.stop()
        down_at = time.monotonic()
        send(range(40, 50), pause=0.5)
        # MQTT still works: the sag is told to the manager on MQTT during the outage.
        wait_until(lambda: (SAG, "voltage_sag") in {a[:2] for a in observer.alerts()}, 30,
                   "the sag alert on MQTT while the other channels are down", alive)

        # The broker restarts in the middle of it.
        pub.close()
        fresh_mosquitto.restart()
        pub = Publisher(fresh_mosquitto)
        rest = range(50, 86)
        pause = max(0.0, (down_at + OUTAGE_S - time.monotonic()) / len(rest))
        send(rest, pause=pause)
        time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
        alive()
        assert influx.proc is None and not smtp.keys and not hook.keys

        influx.start()
        smtp.start()
        hook.start()
        send(range(86, SLOTS), pause=0.3)

        wait_until(lambda: reading_count(influx.url, db) >= len(published), 90,
                   "every reading stored after the outage", alive,
                   lambda: reading_count(influx.url, db))

        def delivered() -> bool:
            entries = outbox(tmp_path / "alerts.sqlite")
            return bool(entries) and all(status == "delivered" for _k, _c, status in entries)

        wait_until(delivered, 60, "every notification delivered", alive,
                   lambda: outbox(tmp_path / "alerts.sqlite"))
        time.sleep(2)  # room for a repeat to show up, if one were coming
        alive()

        assert stored_readings(influx.url, db) == expected_keys(published)
        entries = outbox(tmp_path / "alerts.sqlite")
        by_channel = {ch: {k for k, c, _s in entries if c == ch}
                      for ch in ("mqtt", "email", "webhook")}
        assert by_channel["email"] and by_channel["webhook"], entries
        # Each notification arrived once on its channel, the MQTT ones despite the restart.
        assert set(smtp.keys) == by_channel["email"] and max(smtp.keys.values()) == 1
        assert set(hook.keys) == by_channel["webhook"] and max(hook.keys.values()) == 1
        seen = observer.keys()
        assert set(seen) == by_channel["mqtt"] and max(seen.values()) == 1, seen
        assert any("O-SAG" in subject for subject in smtp.subjects), smtp.subjects
        log = engine.log()
        assert log.count("subscribed to") >= 2  # the collector came back after the restart
        assert "points go to the spool" in log and "accepts writes again" in log
        assert not (tmp_path / "spool" / "influx-deadletter.jsonl").exists()
    finally:
        if pub is not None:
            pub.close()
        if observer is not None:
            observer.close()
        hook.stop()
        smtp.stop()
        influx.stop()
