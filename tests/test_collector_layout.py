"""Where ``gridwatch run``'s collector runs (``engine.collector_process``) and how the engine's
metrics endpoint serves the figures of a collector in a process of its own."""

from __future__ import annotations

import multiprocessing
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gridwatch._collector_process import ProcessMetrics
from gridwatch._engine import collector_in_process
from gridwatch._settings import Settings
from gridwatch.ingest import start_metrics_server


@pytest.mark.parametrize(("cores", "addresses", "pid", "own"), [
    (2, None, 0, True),  # one engine, two cores: the collector gets the other one
    (1, None, 0, False),
    (8, None, 0, True),
    (2, ["a:2101", "a:2102"], 1, False),  # two engine processes on two cores
    (4, ["a:2101", "a:2102"], 0, True),
    (3, ["a:2101", "a:2102"], 0, False),
    (2, ["a:2101", "b:2101"], 1, True),  # one process on each of two machines
    (2, ["a:2101", "a:2102", "b:2101"], 2, True),
    (2, ["a:2101", "a:2102", "b:2101"], 0, False),
])
def test_auto_gives_the_collector_a_process_when_there_are_two_cores_an_engine(
        cores: int, addresses: list[str] | None, pid: int, own: bool) -> None:
    got, why = collector_in_process("auto", addresses, pid, cores=cores)
    assert got is own
    assert f"{cores} cores" in why and "auto" in why


@pytest.mark.parametrize("choice", [True, False])
def test_a_set_choice_is_kept_whatever_the_cores(choice: bool) -> None:
    for cores in (1, 2, 64):
        assert collector_in_process(choice, ["a:1", "a:2"], 0, cores=cores)[0] is choice


def test_the_setting_is_auto_by_default_and_takes_yes_no_or_auto() -> None:
    assert Settings().engine.collector_process == "auto"
    for given, want in (("auto", "auto"), (True, True), ("false", False)):
        assert Settings.model_validate(
            {"engine": {"collector_process": given}}).engine.collector_process == want
    with pytest.raises(ValueError, match="collector_process"):
        Settings.model_validate({"engine": {"collector_process": "sometimes"}})


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _families(registry: CollectorRegistry) -> dict[str, Samples]:
    """What a scrape of ``registry`` reads, as parsed by Prometheus's own parser:
    {family: {(sample, labels): value}} (raises on a family served twice)."""
    text = generate_latest(registry).decode()
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names)), f"a family served twice: {names}"
    return {f.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)}


def test_process_metrics_serve_both_sides_one_family_a_name() -> None:
    child, own, engine = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    # the process's counters, and the engine's own figures of the same families
    Counter("x_accepted", "accepted", ["partition"], registry=child).labels("0").inc(7)
    Gauge("x_lag", "lag", ["partition"], registry=child)  # (no sample in the process)
    Gauge("x_lag", "lag", ["partition"], registry=own).labels("0").set(3)
    Counter("x_accepted", "accepted", ["partition"], registry=own)
    server = start_metrics_server(0, child, "127.0.0.1")
    port = multiprocessing.get_context("spawn").Value("i", 0)
    engine.register(ProcessMetrics(own, port, max_age_s=0))
    try:
        # no process serving yet: the engine's own figures alone
        alone = _families(engine)
        assert alone["x_lag"] == {("x_lag", (("partition", "0"),)): 3.0}
        assert alone["x_accepted"] == {}
        port.value = server.server_port
        both = _families(engine)
        assert both["x_lag"] == {("x_lag", (("partition", "0"),)): 3.0}
        assert both["x_accepted"][("x_accepted_total", (("partition", "0"),))] == 7.0
        # a process gone (its port closed): a scrape still answers, with the engine's own
        server.shutdown()
        server.server_close()
        assert _families(engine)["x_lag"] == {("x_lag", (("partition", "0"),)): 3.0}
    finally:
        server.server_close()


def test_scrapes_close_together_share_one_read_of_the_process() -> None:
    child, engine = CollectorRegistry(), CollectorRegistry()
    reads = Counter("x_reads", "reads of the process's metrics", registry=child)

    class Count:  # (counts each time the process's endpoint is read)
        def collect(self):  # type: ignore[no-untyped-def]
            reads.inc()
            return []

    child.register(Count())
    server = start_metrics_server(0, child, "127.0.0.1")
    port = multiprocessing.get_context("spawn").Value("i", server.server_port)
    engine.register(ProcessMetrics(CollectorRegistry(), port, max_age_s=0.5))
    try:
        first = _families(engine)["x_reads"]
        assert _families(engine)["x_reads"] == first  # the same read
        time.sleep(0.6)
        assert _families(engine)["x_reads"] != first  # read again
    finally:
        server.shutdown()
        server.server_close()


def test_the_engine_endpoint_answers_while_a_process_is_slow() -> None:
    """A process that does not answer costs a scrape at most ``timeout_s``."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    own, engine = CollectorRegistry(), CollectorRegistry()
    Gauge("x_up", "up", registry=own).set(1)
    port = multiprocessing.get_context("spawn").Value("i", silent.getsockname()[1])
    engine.register(ProcessMetrics(own, port, timeout_s=0.3))
    server = start_metrics_server(0, engine, "127.0.0.1")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics",
                                      timeout=5).read().decode()
        assert "x_up 1.0" in text
    finally:
        server.shutdown()
        server.server_close()
        silent.close()
