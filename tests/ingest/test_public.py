"""The public face of gridwatch.ingest, its metrics endpoint and the journal command."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry

import gridwatch.ingest as ingest
from gridwatch import _services
from gridwatch.ingest import IngestMetrics, Journal, start_metrics_server


def test_all_names_resolve_and_match_the_exports() -> None:
    assert sorted(ingest.__all__) == sorted(ingest._EXPORTS)
    for name in ingest.__all__:
        assert getattr(ingest, name) is not None


def test_settings_load_without_loading_the_collector_or_sources() -> None:
    """The settings import this package for its sections; the heavy modules (paho, bytewax)
    come in only when a name that needs them is used."""
    code = ("import sys, gridwatch; gridwatch.load_settings(); "
            "print(sorted(m for m in sys.modules if m.startswith('gridwatch.ingest.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['gridwatch.ingest._config']"


def test_metrics_endpoint_serves_prometheus_text() -> None:
    registry = CollectorRegistry()
    m = IngestMetrics(registry)
    m.received.labels("0").inc(3)
    m.deadlettered.labels("0", "invalid_json").inc()
    m.journal_bytes.labels("0").set(1234)
    m.consumer_lag.labels("0").set(7)
    port = _services.free_port()
    server = start_metrics_server(port, registry, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
    assert 'gridwatch_ingest_messages_received_total{partition="0"} 3.0' in text
    assert 'gridwatch_ingest_deadletters_total{partition="0",reason="invalid_json"} 1.0' in text
    assert 'gridwatch_ingest_journal_bytes{partition="0"} 1234.0' in text
    assert 'gridwatch_ingest_consumer_lag{partition="0"} 7.0' in text


def test_journal_stats_command(tmp_path: Path) -> None:
    with Journal(tmp_path, 0) as j:
        j.append([b"a", b"b", b"c"])
    with Journal(tmp_path, 4) as j:
        j.append([b"x"])
    out = subprocess.run(
        [sys.executable, "-m", "gridwatch", "journal", "stats", "--dir", str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "partition 0: segments=1 offsets=0..3" in out
    assert "partition 4: segments=1 offsets=0..1" in out


def test_deadletters_command_counts_and_shows(tmp_path: Path) -> None:
    from gridwatch.ingest import DeadLetters

    with DeadLetters(tmp_path) as dl:
        dl.put("invalid_json", "meters/r/m1/reading", b"{oops", "line 1 column 2: ...")
        dl.put("schema", "meters/r/m2/reading", b"{}", "kw: Field required")
        dl.put("invalid_json", "meters/r/m3/reading", b"[", "line 1 column 2: ...")
    out = subprocess.run(
        [sys.executable, "-m", "gridwatch", "journal", "deadletters", "--dir", str(tmp_path),
         "--reason", "schema"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "invalid_json: 2" in out and "schema: 1" in out
    assert "meters/r/m2/reading: kw: Field required" in out
    assert "meters/r/m1/reading" not in out
