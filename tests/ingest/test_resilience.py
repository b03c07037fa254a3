"""No reading is lost when the collector is killed (-9) or the broker restarts mid-stream."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml
from _ingest_helpers import (
    journal_end,
    journal_keys,
    make_settings,
    mixed_messages,
)
from _suite_helpers import holds, wait_until
from prometheus_client import CollectorRegistry

from gridwatch import _services
from gridwatch.ingest import Collector

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _config_file(tmp: Path, port: int, client_id: str, metrics_port: int = 0) -> Path:
    cfg = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client_id,
                 "reconnect_min_s": 1, "reconnect_max_s": 2},
        "ingest": {"journal_dir": str(tmp / "journal"), "deadletter_dir": str(tmp / "dead"),
                   "fsync_every_ms": 5, "metrics_port": metrics_port},
    }
    path = tmp / "gridwatch.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start_collector(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridwatch", "collect", "--config", str(config), "-q"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )

    def running() -> None:
        assert proc.poll() is None, f"collector exited:\n{log.read_text()}"

    try:
        wait_until(lambda: "subscribed to" in log.read_bytes()[start:].decode(errors="replace"),
                   30, "the collector to subscribe", running, log.read_text, every=0.05)
    except AssertionError:
        proc.kill()
        raise
    return proc


def test_kill_9_collector_mid_stream_loses_nothing(fresh_mosquitto, tmp_path: Path,
                                                  publisher_factory) -> None:
    metrics_port = _services.free_port()
    config = _config_file(tmp_path, fresh_mosquitto.port, "gw-kill", metrics_port)
    log = tmp_path / "collector.log"
    journal_dir = tmp_path / "journal"
    proc = _start_collector(config, log)
    msgs = list(mixed_messages(0, 10_000, 200))
    expected = Counter(k for _, _, keys in msgs for k in keys)
    pub = publisher_factory(fresh_mosquitto.port, client_id="pub-kill")
    sender = threading.Thread(target=pub.publish_all, args=(msgs, 500, 0.05))
    sender.start()
    try:
        wait_until(lambda: journal_end(journal_dir) >= 5_000, 60, "the stream under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = journal_end(journal_dir)
        assert killed_at < 30_000, "the stream ended before the kill: make it longer"
        sender.join()
        pub.wait_all(60)
        proc = _start_collector(config, log)
        wait_until(lambda: journal_end(journal_dir) >= 30_000, 90, "every reading journaled")
        holds(lambda: journal_end(journal_dir) <= 30_000, 0.5,
              "no reading journaled twice")  # room for a late double to arrive
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            metrics = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0, log.read_text()
    got = Counter(journal_keys(journal_dir))
    assert got == expected, f"missing {len(expected - got)}, doubled {len(got - expected)}"
    # The restarted collector's own counters, served in the Prometheus text format.
    accepted = re.search(r'gridwatch_ingest_items_accepted_total\{partition="0"\} (\S+)',
                         metrics)
    assert accepted and 0 < float(accepted.group(1)) <= 30_000, metrics
    assert 'gridwatch_ingest_connected{partition="0"} 1.0' in metrics


def test_broker_restart_mid_stream_loses_nothing(fresh_mosquitto, tmp_path: Path,
                                                publisher_factory) -> None:
    settings = make_settings(fresh_mosquitto.port, tmp_path, client_id="gw-restart")
    collector = Collector(settings, registry=CollectorRegistry()).start()
    try:
        collector.wait_ready(10)
        msgs = list(mixed_messages(0, 10_000, 100))
        expected = Counter(k for _, _, keys in msgs for k in keys)
        pub = publisher_factory(fresh_mosquitto.port, client_id="pub-restart")
        sender = threading.Thread(target=pub.publish_all, args=(msgs, 500, 0.05))
        sender.start()
        wait_until(lambda: collector.stats.accepted >= 3_000, 60, "the stream under way")
        connects_before = collector.stats.connects
        fresh_mosquitto.restart()
        sender.join()
        wait_until(lambda: collector.stats.connects > connects_before and
                   collector.stats.connected, 30, "the collector to reconnect by itself")
        pub.wait_all(90)
        wait_until(lambda: collector.stats.accepted >= 20_000, 90, "every reading journaled")
        holds(lambda: collector.stats.accepted <= 20_000, 0.5,
              "no reading journaled twice")  # room for a late double to arrive
        stats = collector.stats
    finally:
        collector.stop()
    assert stats.connects >= 2, "the collector never reconnected"
    got = Counter(journal_keys(settings.ingest.journal_dir))
    assert got == expected, f"missing {len(expected - got)}, doubled {len(got - expected)}"
    assert set(stats.deadlettered) <= {"duplicate"}, stats.deadlettered
