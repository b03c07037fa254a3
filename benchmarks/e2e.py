"""End to end at utility scale: throughput, latency, memory per meter, scale-out, real time.

Every figure comes from the whole engine (``gridwatch run``: collector → journal → bytewax
dataflow with every detector and load profiling → InfluxDB 1.6.7 over the v1 API → alert
router) on private servers on loopback (``--store victoria``: VictoriaMetrics over the v2
write API instead of InfluxDB), fed by the simulated utility fleet
(``config/fleets/utility-100k.yaml``), and is printed beside a baseline measured in the same run:

* ``throughput``: the same MQTT messages (100-reading batches; single readings) received by a
  bare paho client (baseline), then published to the engine; end to end is complete when
  the database counts every reading (InfluxDB: ``count(kw)`` of ``reading``;
  VictoriaMetrics: ``count_over_time(reading_kw)``), polled once the engine says it wrote
  as many points. Beside it: the database's write requests, and the points the dataflow
  spooled because the database had not taken them yet (written from the spool later).
* ``latency``: a steady stream with voltage sags injected; publish → alert at an MQTT
  subscriber, with the router's group wait and interval at 0 (service round every 50 ms).
* ``memory``: resident memory per meter of the dataflow holding 100,000 (and, with ``--full``,
  1,000,000) meters, and pickled ``MeterState`` bytes per meter after a simulated week.
* ``scaleout``: the throughput run with a two-process bytewax cluster and two collectors on a
  shared subscription; speed-up over one process.
* ``placed``: the same with the grid cells placed (``engine.placement``, exclusive) and each
  collector subscribed to its own regions (``topics.regions``), the fleet's six regions split
  between the two processes by meter count; speed-up over one process (and over ``scaleout``
  when both run).
* ``realtime``: 1,000,000 meters at a 15-minute interval (1,111 readings/s) for a bounded time;
  lag in readings (published, journaled, stored) and publish → stored delay over time.

Usage: ``python benchmarks/e2e.py`` (about ten minutes), ``--only PART`` (repeatable),
``--full`` (1,000,000 meters in the memory part, larger runs), ``--realtime-s N``.
Figures go to the terminal and to ``var/bench/e2e.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _e2e_lib
from _e2e_lib import (
    METER_RE,
    ROOT,
    STORES,
    Message,
    Publisher,
    Stack,
    Subscriber,
    console,
    engine_metrics,
    journal_readings,
    load_fleet,
    machine,
    messages_for,
    renamed,
)
from rich.table import Table


def _free_port() -> int:
    from gridwatch._services import free_port

    return free_port()


PARTS = ("throughput", "latency", "memory", "scaleout", "placed", "realtime", "collector")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# -- throughput and scale-out -------------------------------------------------------------------
def throughput_load(batch_intervals: int, single_readings: int
                    ) -> tuple[Any, list[tuple[datetime, list[Message]]],
                               tuple[datetime, list[Message]]]:
    """The 100k-meter fleet: ``batch_intervals`` intervals as 100-reading batches (one list
    per interval), then ``single_readings`` readings of the next interval as single-reading
    messages."""
    from gridwatch.simulators import Simulation

    fleet = load_fleet(meters_per_concentrator=100,
                       duration=f"{(batch_intervals + 1) * 15}m")
    sim = Simulation(fleet)
    batch: list[tuple[datetime, list[Message]]] = []
    single: tuple[datetime, list[Message]] = (datetime.now(UTC), [])
    for k, (ts, rows) in enumerate(sim.chunks()):
        if k < batch_intervals:
            batch.append((ts, messages_for(rows, 100)))
        else:
            single = (ts, messages_for(rows[:single_readings], 1))
    return sim, batch, single


def raw_rate(port: int, msgs: list[Message], tag: str) -> tuple[float, float]:
    """Baseline: a bare paho subscriber receives the messages (same payloads, under a first
    topic level the collector does not subscribe to) while a bare publisher sends them.
    Returns (seconds, readings/s)."""
    raw = renamed(msgs, "meterz")
    sub = Subscriber(port, f"bench-raw-{tag}", ["meterz/+/+/reading", "meterz/+/+/batch"])
    pub = Publisher(port, f"bench-rawpub-{tag}")
    t0 = time.perf_counter()
    for topic, payload, _n in raw:
        pub.publish(topic, payload)
    ok = sub.wait_for(len(raw), 300)
    elapsed = sub.last_at - t0
    pub.close()
    sub.close()
    if not ok:
        raise RuntimeError(f"raw subscriber received {sub.messages} of {len(raw)} messages")
    n = sum(m[2] for m in msgs)
    return elapsed, n / elapsed


def _watch_journal(journal: Path, target: int, stop: threading.Event,
                   out: list[float]) -> None:
    """Note when the collectors have journaled ``target`` readings (ingest is done)."""
    while not stop.wait(0.25):
        if journal_readings(journal) >= target:
            out.append(time.perf_counter())
            return


def _scrape(metrics_port: int, names: Sequence[str] = ()) -> dict[str, float]:
    """The engine's metrics now (``names``: only those), summed over labels (empty without a
    metrics port): one scrape, from which :func:`_handover`, :func:`_gc` and the written
    count are read."""
    return engine_metrics(metrics_port, names) if metrics_port else {}


def _handover(m: dict[str, float]) -> tuple[int, int, int]:
    """(hits, misses, compacted) of the engine's hand-over in scrape ``m``."""
    return (int(m.get("gridwatch_ingest_handover_hits_total", 0)),
            int(m.get("gridwatch_ingest_handover_misses_total", 0)),
            int(m.get("gridwatch_ingest_handover_compacted_total", 0)))


def _gc(m: dict[str, float]) -> tuple[float, float, float]:
    """(collections, seconds, objects freed) of the engine's cycle collector in scrape ``m``
    (``GcPauses`` and prometheus-client's ``python_gc_*``)."""
    return (m.get("gridwatch_gc_pause_seconds_count", 0.0),
            m.get("gridwatch_gc_pause_seconds_sum", 0.0),
            m.get("python_gc_objects_collected_total", 0.0))


_WRITTEN = "gridwatch_storage_points_written_total"
#: of them, the points of the reading measurement (an engine before it counted them: none)
_READINGS_WRITTEN = "gridwatch_storage_readings_written_total"
#: points the dataflow spooled itself, at an epoch's end or past a full queue, because the
#: database had not taken them yet
_SPOOLED = "gridwatch_storage_epoch_spooled_points_total"


def _metric(metrics_port: int, name: str) -> float:
    """One of the engine's metrics now, summed over labels (only it scraped: the benchmark
    polls it every 50 ms while it measures the engine's CPU)."""
    return _scrape(metrics_port, (name,)).get(name, 0.0)


def placed_split(sim: Any, processes: int = 2) -> dict[str, dict[str, Any]]:
    """Settings that place the fleet's regions on ``processes`` processes, balanced by meter
    count (largest region first, each to the process with the fewest meters so far): each
    process's collector hears its own regions (``topics.regions``) and its cells are placed
    there exclusively (``engine.placement``, ``<region>-*``). The probe reading's region goes
    to process 0."""
    meters: dict[str, int] = {}
    for m in sim.meters:
        region = m.grid_cell.rsplit("-", 1)[0]
        meters[region] = meters.get(region, 0) + 1
    load = [0] * processes
    regions: dict[int, list[str]] = {p: [] for p in range(processes)}
    for region, n in sorted(meters.items(), key=lambda kv: (-kv[1], kv[0])):
        p = load.index(min(load))
        regions[p].append(region)
        load[p] += n
    placement = {p: [f"{r}-*" for r in rs] for p, rs in regions.items()}
    regions[0] = [*regions[0], "probe"]
    return {"engine": {"placement": placement, "placement_exclusive": True},
            "topics": {"regions": regions}}


def _with_collector(sections: dict[str, Any] | None,
                    collector_process: bool | None) -> dict[str, Any] | None:
    """``sections`` with ``engine.collector_process`` set, unless None (the engine decides).
    (A collector process's CPU and memory count as the engine's: ``_e2e_lib.family``.)"""
    if collector_process is None:
        return sections
    sections = dict(sections or {})
    sections["engine"] = sections.get("engine", {}) | {"collector_process": collector_process}
    return sections


def run_collector_layouts(work: Path, intervals: int, single: int, rounds: int, store: str,
                          later_together: bool) -> dict[str, Any]:
    """The throughput run with the collector a thread of the engine, then a process of its
    own (``engine.collector_process`` false, then true), ``rounds`` times in turns: the steady
    intervals' rate of each, and of the process against the thread of its own round."""
    runs: list[dict[str, Any]] = []
    for k in range(rounds):
        for own in (False, True):
            r = run_throughput(work / f"{k}-{'process' if own else 'thread'}", 1, intervals,
                               single, store=store, later_together=later_together,
                               collector_process=own)
            parts = r["shapes"]["batch100"]["parts"][1:]  # (the first interval is start-up)
            n = sum(p["readings"] for p in parts)
            runs.append({"round": k + 1, "collector_process": own,
                         "steady_readings_per_s": round(n / sum(p["e2e_s"] for p in parts)),
                         "readings_per_engine_cpu_s": round(
                             n / max(sum(p["engine_cpu_s"] for p in parts), 0.01)),
                         "engine_rss_mib": r["shapes"]["batch100"]["engine_rss_mib"]})
    t = Table(title="the collector a thread of the engine, or a process of its own "
              "(100-reading batches, steady intervals)")
    for col in ("round", "collector", "readings/s", "per engine CPU-s", "RSS MiB",
                "process / thread"):
        t.add_column(col, justify="right")
    ratios = []
    for thread, process in zip(runs[::2], runs[1::2], strict=True):
        ratio = process["steady_readings_per_s"] / thread["steady_readings_per_s"]
        ratios.append(ratio)
        process["vs_thread"] = round(ratio, 3)
        for r in (thread, process):
            t.add_row(str(r["round"]), "process" if r["collector_process"] else "thread",
                      f"{r['steady_readings_per_s']:,}", f"{r['readings_per_engine_cpu_s']:,}",
                      f"{r['engine_rss_mib']:,}",
                      f"{ratio:.2f}x" if r["collector_process"] else "")
    console.print(t)
    ratios.sort()
    console.print(f"collector in a process of its own: {ratios[len(ratios) // 2]:.2f}x the "
                  f"steady rate of the thread (median of {len(ratios)} rounds; "
                  f"{ratios[0]:.2f}-{ratios[-1]:.2f}x)")
    return {"runs": runs, "median_vs_thread": round(ratios[len(ratios) // 2], 3)}


def run_throughput(work: Path, processes: int, batch_intervals: int,
                   single_readings: int, trace_ingest: bool = False,
                   placed: bool = False, store: str = "influxdb",
                   later_together: bool = False,
                   collector_process: bool | None = None,
                   recovery: bool = False) -> dict[str, Any]:
    """``collector_process``: the engine's setting, as it decides when None (``auto``);
    ``recovery``: the engine snapshots its state at every epoch's end (``gridwatch run -r``,
    a fresh recovery directory in ``work``)."""
    from gridwatch.simulators import write_registry

    label = "placed" if placed else "scaleout" if processes > 1 else "throughput"
    if collector_process is not None:
        label += (", collector in a process of its own" if collector_process
                  else ", collector a thread")
    console.rule(f"[bold]{label}: {processes} engine process(es)")
    console.print("generating the load (100,000-meter utility fleet) ...")
    sim, batch, single = throughput_load(batch_intervals, single_readings)
    if later_together and len(batch) > 2:
        # the later intervals back to back, stored once: one pipeline latency (the epoch,
        # the writer's batch, the database's visibility, the count poll) for all of them
        batch = [batch[0], (batch[1][0], [m for _ts, part in batch[1:] for m in part])]
    registry = work / "registry.json"
    stack = Stack(work, store)
    results: dict[str, Any] = {"processes": processes, "meters": sim.fleet.n_meters,
                               "collector_process": collector_process,
                               "store": store, "later_together": later_together,
                               "recovery": recovery, "shapes": {}}
    try:
        stack.start_servers()
        write_registry(sim.meters, registry)
        sections = _with_collector(placed_split(sim, processes) if placed else None,
                                   collector_process)
        if recovery:
            sections = sections or {}
            sections["engine"] = sections.get("engine", {}) | {
                "recovery_dir": str(work / "recovery")}
        if placed and sections:
            results["placement"] = sections
            console.print(f"placed: regions per process {sections['topics']['regions']}")
        # process p serves its metrics on metrics_port + p
        metrics_port = _free_port() if processes == 1 else 0
        cfg = stack.write_config(registry, metrics_port=metrics_port, sections=sections)
        console.print(f"starting {processes} x gridwatch run (registry of "
                      f"{sim.fleet.n_meters:,} meters) ...")
        t = time.perf_counter()
        stack.start_engine(cfg, processes)
        stack.wait_ready(at=batch[0][0] - timedelta(minutes=15))  # (before the fleet's time)
        results["engine_ready_s"] = round(time.perf_counter() - t, 1)
        results["engine_idle_rss_mib"] = round(stack.engine_rss() / 2**20)
        console.print(f"engine ready (a probe reading stored) after "
                      f"{results['engine_ready_s']} s; RSS {results['engine_idle_rss_mib']:,} MiB")
        shapes: list[tuple[str, list[tuple[datetime, list[Message]]]]] = [
            ("batch100", batch)] + ([("single", [single])] if single[1] else [])
        for shape, parts in shapes:
            msgs = [m for _ts, part in parts for m in part]
            n = sum(m[2] for m in msgs)
            raw_s, raw_r = raw_rate(stack.broker.port, msgs, f"{label}-{shape}")
            console.print(f"{shape}: raw paho receive of {len(msgs):,} messages "
                          f"({n:,} readings): {raw_r:,.0f} readings/s")
            before = stack.stored()
            http_before = stack.db_http_stats()
            j_before = journal_readings(work / "journal")
            scraped = _scrape(metrics_port)
            hand_before = _handover(scraped)
            spooled_before = scraped.get(_SPOOLED, 0.0)
            journaled_at: list[float] = []
            watching = threading.Event()

            watcher = threading.Thread(target=_watch_journal, daemon=True,
                                       args=(work / "journal", j_before + n, watching,
                                             journaled_at))
            if trace_ingest:
                watcher.start()
            pub = Publisher(stack.broker.port, f"bench-pub-{label}-{shape}")
            # One part (an interval of the fleet) at a time, each stored before the next is
            # published: the first interval creates every meter's state (start-up), the later
            # ones show the steady state.
            t0 = time.perf_counter()
            t_pub = 0.0
            target = before
            part_rates: list[dict[str, Any]] = []
            stored = before
            acked_s = 0.0  # (the intervals' own time, each to its last reading accepted)
            done: float | None = t0  # (when the last part was stored)
            for k, (part_ts, part) in enumerate(parts):
                n_part = sum(m[2] for m in part)
                target += n_part
                # Count only this interval's readings (event time from its start on): a count
                # over everything stored grows slower as the run goes on, and the poll waits
                # four times the query's duration.
                part_before = stack.stored(part_ts)
                at_start = _scrape(metrics_port)
                # the engine's count of the readings the database accepted, where it keeps
                # one: the interval ends when it has grown by the interval's readings (the
                # count query that then confirms them is the benchmark's, not the path's:
                # its time and CPU are left out); else its count of all points, and the
                # interval ends when the count query finds every reading
                acked = _READINGS_WRITTEN in at_start
                metric = _READINGS_WRITTEN if acked else _WRITTEN
                written_before = at_start.get(metric, 0.0)
                t_part = time.perf_counter()
                cpu_part = stack.engine_cpu()
                svc_part = stack.services_cpu()
                sched_part = stack.engine_sched()
                gc_part = _gc(at_start)
                at_end: dict[str, Any] = {}

                def ended(at_end: dict[str, Any] = at_end) -> None:
                    at_end.update(cpu=stack.engine_cpu(), svc=stack.services_cpu(),
                                  sched=stack.engine_sched(), gc=_gc(_scrape(metrics_port)))

                for topic, payload, _n in part:
                    pub.publish(topic, payload)
                pub.flush()
                t_pub += time.perf_counter() - t_part
                done, stored_part = stack.wait_stored(
                    part_before + n_part, timeout=max(600.0, n_part / 200),
                    label=f"{shape} part {k + 1}/{len(parts)}", poll_s=0.25, since=part_ts,
                    written=partial(_metric, metrics_port, metric) if metrics_port else None,
                    written_target=written_before + n_part,
                    on_written=ended if acked else None, until_written=acked)
                stored = target - n_part + stored_part - part_before
                if done is None:
                    journaled = journal_readings(work / "journal")
                    raise RuntimeError(f"{shape}: only {stored - before:,} of {n:,} readings "
                                       f"stored ({journaled:,} journaled); engine alive: "
                                       f"{stack.engines_alive()}")
                counted_s = (stack.counted_at or done) - t_part
                if not at_end:  # (the interval ended at the count)
                    ended()
                part_s = done - t_part
                acked_s += part_s
                cpu = at_end["cpu"] - cpu_part
                svc = {k: v - svc_part.get(k, 0.0) for k, v in at_end["svc"].items()}
                waited = at_end["sched"][1] - sched_part[1]
                gc_n, gc_s, gc_freed = (a - b for a, b in zip(at_end["gc"], gc_part,
                                                              strict=True))
                part_rates.append({"readings": n_part, "e2e_s": round(part_s, 3),
                                   "counted_s": round(counted_s, 3), "acked": acked,
                                   "e2e_readings_per_s": round(n_part / part_s),
                                   "engine_cpu_s": round(cpu, 2),
                                   "readings_per_engine_cpu_s": round(n_part / max(cpu, 0.01)),
                                   # the servers' CPU over the same interval: with the
                                   # engine's, what the whole path costs a reading
                                   "services_cpu_s": {k: round(v, 2) for k, v in svc.items()},
                                   "readings_per_stack_cpu_s": round(
                                       n_part / max(cpu + sum(svc.values()), 0.01)),
                                   # thread-seconds the engine was runnable with no free core
                                   "engine_wait_for_cpu_s": round(waited, 2),
                                   # the cycle collector's pauses (every thread waits)
                                   "gc_collections": int(gc_n), "gc_s": round(gc_s, 2),
                                   "gc_freed": int(gc_freed)})
            # with the engine's count of readings accepted: the intervals' own time (the
            # benchmark's count queries between them left out); else to the last count
            e2e_s = acked_s if part_rates and all(p["acked"] for p in part_rates) \
                else (done or t0) - t0
            watching.set()
            http = {k: v - http_before.get(k, 0.0)
                    for k, v in stack.db_http_stats().items()}
            scraped = _scrape(metrics_port)
            hand = _handover(scraped)
            spooled = int(scraped.get(_SPOOLED, 0.0) - spooled_before)
            hits, misses, compacted = (a - b for a, b in zip(hand, hand_before, strict=True))
            if trace_ingest:
                watcher.join(5)
            results["shapes"][shape] = {
                "messages": len(msgs), "readings": n,
                "raw_s": round(raw_s, 3), "raw_readings_per_s": round(raw_r),
                "publish_s": round(t_pub, 3), "e2e_s": round(e2e_s, 3),
                "journaled_s": round(journaled_at[0] - t0, 2) if journaled_at else None,
                "e2e_readings_per_s": round(n / e2e_s), "ratio": round(n / e2e_s / raw_r, 4),
                "stored": stored - before, "parts": part_rates,
                "engine_rss_mib": round(stack.engine_rss() / 2**20),
                "handover_hits": hits, "handover_misses": misses,
                "handover_compacted": compacted,
                # what the database was asked meanwhile (the benchmark's count queries
                # included; VictoriaMetrics does not count the time it spent answering)
                "db_write_requests": int(http.get("writeReq", 0)),
                "db_points_written": int(http.get("pointsWrittenOK", 0)),
                "db_query_requests": int(http.get("queryReq", 0)),
                "db_query_s": round(http.get("queryReqDurationNs", 0) / 1e9, 2),
                "db_write_s": round(http.get("writeReqDurationNs", 0) / 1e9, 2),
                # points the dataflow spooled because the database had not taken them yet
                # (written from the spool later: the engine's work too)
                "spooled_by_the_dataflow": spooled,
            }
            got = results["shapes"][shape]
            writes, points = got["db_write_requests"], got["db_points_written"]
            # (InfluxDB counts the time it spent answering; VictoriaMetrics does not)
            timed = store == "influxdb"
            answering = f"; {got['db_write_s']:.1f} s answering them" if timed else ""
            queried = f"{got['db_query_s']:.1f} s, " if timed else ""
            console.print(f"{shape}: {stack.db_name} took {writes:,} write requests "
                          f"({points:,} points, {points / max(writes, 1):,.0f} a request"
                          f"{answering}) and {got['db_query_requests']:,} queries "
                          f"({queried}the benchmark's count polls); the dataflow spooled "
                          f"{spooled:,} points the database had not taken yet")
            if metrics_port:
                console.print(f"{shape}: the dataflow took {hits:,} records from the "
                              f"collector's hand-over ({compacted:,} of them kept compact "
                              f"while they waited) and decoded {misses:,} (hit rate "
                              f"{hits / max(1, hits + misses):.3f}; ingest.handover_items)")
            j_s = f"{journaled_at[0] - t0:.1f} s" if journaled_at else "-"
            console.print(f"{shape}: end to end {n / e2e_s:,.0f} readings/s (published in "
                          f"{t_pub:.1f} s, journaled after {j_s}, stored after {e2e_s:.1f} s)")
            if part_rates and all(p["acked"] for p in part_rates):
                console.print(f"{shape}: each interval ends when the engine's count of "
                              "readings the database accepted has grown by its readings ("
                              + ", ".join(f"{p['e2e_s']:.2f}" for p in part_rates)
                              + " s); the count query that confirms them answered after "
                              + ", ".join(f"{p['counted_s']:.2f}" for p in part_rates)
                              + " s (its time and CPU left out of the figures)")
            if part_rates:
                console.print(f"{shape}: per interval (first = start-up, then steady state): "
                              + ", ".join(f"{p['e2e_readings_per_s']:,}" for p in part_rates)
                              + " readings/s; per engine CPU-second: "
                              + ", ".join(f"{p['readings_per_engine_cpu_s']:,}"
                                          for p in part_rates))
            console.print(f"{shape}: the engine's threads waited for a CPU "
                          + ", ".join(f"{p['engine_wait_for_cpu_s']:.1f}" for p in part_rates)
                          + " thread-seconds against "
                          + ", ".join(f"{p['engine_cpu_s']:.1f}" for p in part_rates)
                          + " CPU-seconds used, over "
                          + ", ".join(f"{p['e2e_s']:.1f}" for p in part_rates)
                          + " s (run queue: the machine's other jobs)")
            if metrics_port:
                console.print(f"{shape}: the cycle collector paused the engine "
                              + ", ".join(f"{p['gc_s']:.2f} s in {p['gc_collections']:,}"
                                          for p in part_rates)
                              + " collections, freeing "
                              + ", ".join(f"{p['gc_freed']:,}" for p in part_rates)
                              + " objects (engine.gc_threshold)")
            console.print(f"{shape}: CPU-seconds of {stack.db_name}, mosquitto over the "
                          "same intervals: " + ", ".join(
                              f"{p['services_cpu_s'].get(store, 0):.1f}, "
                              f"{p['services_cpu_s'].get('mosquitto', 0):.1f}"
                              for p in part_rates)
                          + "; readings per CPU-second of engine + servers: "
                          + ", ".join(f"{p['readings_per_stack_cpu_s']:,}" for p in part_rates)
                          + " (on 2 cores the path cannot store more than twice that a "
                          "second)")
        time.sleep(3)
        results["journaled_total"] = journal_readings(work / "journal")
        results["stored_total"] = stack.stored()
        results["engine_alive"] = stack.engines_alive()
    finally:
        stack.close()
    return results


def print_throughput(res: dict[str, Any], title: str) -> None:
    t = Table(title=title)
    for col in ("payload", "readings", "raw paho r/s", "end to end r/s", "ratio",
                "first interval r/s", "later intervals r/s", "later / raw",
                "first, per engine CPU-s", "later, per engine CPU-s", "engine RSS MiB"):
        t.add_column(col, justify="left" if col == "payload" else "right")
    for shape, r in res["shapes"].items():
        parts = r.get("parts") or []
        first = parts[0]["e2e_readings_per_s"] if len(parts) > 1 else None
        later_n = sum(p["readings"] for p in parts[1:])
        later_s = sum(p["e2e_s"] for p in parts[1:])
        later = round(later_n / later_s) if later_s else None
        later_cpu = sum(p.get("engine_cpu_s", 0) for p in parts[1:])
        first_pc = parts[0].get("readings_per_engine_cpu_s") if len(parts) > 1 else None
        later_pc = round(later_n / later_cpu) if later_cpu else None
        r["first_part_readings_per_s"] = first
        r["later_parts_readings_per_s"] = later
        r["later_parts_readings_per_engine_cpu_s"] = later_pc
        t.add_row(shape, f"{r['readings']:,}", f"{r['raw_readings_per_s']:,}",
                  f"{r['e2e_readings_per_s']:,}", f"{r['ratio']:.3f}",
                  f"{first:,}" if first else "-", f"{later:,}" if later else "-",
                  f"{later / r['raw_readings_per_s']:.3f}" if later else "-",
                  f"{first_pc:,}" if first_pc else "-", f"{later_pc:,}" if later_pc else "-",
                  f"{r['engine_rss_mib']:,}")
    console.print(t)


# -- latency ------------------------------------------------------------------------------------
def _groups(rows: list[Any]) -> dict[tuple[str, str], list[int]]:
    """Row indexes by (region, concentrator), in order: one concentrator's batches."""
    out: dict[tuple[str, str], list[int]] = {}
    for j, r in enumerate(rows):
        out.setdefault((r[0], r[1]), []).append(j)
    return out


def run_latency(work: Path, rate: float, seconds: float, sags_per_s: float,
                store: str = "influxdb",
                collector_process: bool | None = None) -> dict[str, Any]:
    """``collector_process``: the engine's setting, as it decides when None (``auto``)."""
    from gridwatch.simulators import Simulation, write_registry

    console.rule(f"[bold]latency: {rate:,.0f} readings/s for {seconds:.0f} s")
    per_interval = 100_000
    intervals = int(rate * seconds / per_interval) + 2
    fleet = load_fleet(meters_per_concentrator=100, duration=f"{intervals * 15}m")
    sim = Simulation(fleet)
    cell_of = {m.meter_id: m.grid_cell for m in sim.meters}
    n_sags = int(sags_per_s * seconds)
    warm = 100_000  # the first interval passes before any sag (every meter has a state)
    span = int(rate * seconds)
    every = max(1, span // max(1, n_sags))
    console.print("generating the load ...")
    msgs: list[Message] = []
    sag_in: dict[int, list[str]] = {}
    used_cells: set[str] = set()
    pos = 0
    next_sag = warm + every // 2
    first_ts: datetime | None = None
    for ts, rows in sim.chunks():
        first_ts = first_ts or ts
        rows = list(rows)
        # a sag at (about) every ``every``-th reading, one per grid cell, so no storm
        # summary or grouping merges them
        sag_rows: set[int] = set()
        while next_sag < pos + len(rows) and len(used_cells) < n_sags:
            j = next_sag - pos
            while j < len(rows) and cell_of[rows[j][2]] in used_cells:
                j += 1
            if j < len(rows):
                used_cells.add(cell_of[rows[j][2]])
                doc = json.loads(rows[j][3])
                doc["voltage"] = [round(v * 0.8, 1) for v in doc["voltage"]]
                rows[j] = (*rows[j][:3], json.dumps(doc, separators=(",", ":")))
                sag_rows.add(j)
            next_sag += every
        for (region, conc), items in _groups(rows).items():
            for k in range(0, len(items), 100):
                part = items[k:k + 100]
                sags = [rows[j][2] for j in part if j in sag_rows]
                if sags:
                    sag_in[len(msgs)] = sags
                msgs.append((f"meters/{region}/{conc}/batch",
                             ("[" + ",".join(rows[j][3] for j in part) + "]").encode(),
                             len(part)))
        pos += len(rows)
        if pos >= warm + span:
            break
    registry = work / "registry.json"
    stack = Stack(work, store)
    published: dict[str, float] = {}
    latencies: dict[str, float] = {}
    lock = threading.Lock()

    def on_alert(_topic: str, payload: bytes, at: float) -> None:
        try:
            doc = json.loads(payload)
            ids = {a.get("meter_id") for a in doc.get("alerts", ())} or set(
                METER_RE.findall(payload.decode(errors="replace")))
        except ValueError:
            return
        with lock:
            for mid in ids:
                if mid in published and mid not in latencies:
                    latencies[mid] = at - published[mid]

    try:
        stack.start_servers()
        write_registry(sim.meters, registry)
        metrics_port = _free_port()
        cfg = stack.write_config(registry, metrics_port=metrics_port, group_wait_s=0.0,
                                 group_interval_s=0.0, service_interval_s=0.05,
                                 sections=_with_collector(None, collector_process))
        stack.start_engine(cfg)
        assert first_ts is not None
        stack.wait_ready(at=first_ts - timedelta(minutes=15))  # (before the fleet's time)
        base = stack.stored()
        sub = Subscriber(stack.broker.port, "bench-alerts",
                         ["gridwatch/managers/+/alerts", "gridwatch/customers/+/notices"],
                         on_message=on_alert)
        pub = Publisher(stack.broker.port, "bench-pub-latency", window=2000)
        # warm-up interval at full speed, then wait until it is stored
        i = 0
        sent = 0
        while sent < warm:
            pub.publish(msgs[i][0], msgs[i][1])
            sent += msgs[i][2]
            i += 1
        stack.wait_stored(base + warm, 600, label="warm-up")
        at_warm = _scrape(metrics_port)
        n_sag = sum(map(len, sag_in.values()))
        console.print(f"steady stream: {rate:,.0f} readings/s, {n_sag} voltage sags ...")
        t0 = time.perf_counter()
        sched0 = stack.engine_sched()
        svc0 = stack.services_cpu()
        http0 = stack.db_http_stats()
        steady = 0
        behind_max = 0.0
        while i < len(msgs):
            due = t0 + steady / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                behind_max = max(behind_max, now - due)
            topic, payload, n = msgs[i]
            if i in sag_in:
                at = time.perf_counter()
                for mid in sag_in[i]:
                    published[mid] = at
            pub.publish(topic, payload)
            steady += n
            i += 1
        pub.flush()
        t_send = time.perf_counter() - t0
        # stored: when the engine's count of readings the database accepted has grown by the
        # stream's (the count query that confirms them, seconds on 1.5 million readings, is
        # the benchmark's own); an engine without that count: when the query finds them
        acked = _READINGS_WRITTEN in at_warm
        done, _ = stack.wait_stored(
            base + warm + steady, 600, label="latency",
            written=partial(_metric, metrics_port, _READINGS_WRITTEN) if acked else None,
            written_target=at_warm.get(_READINGS_WRITTEN, 0.0) + steady, until_written=acked)
        drain = (done - t0 - t_send) if done is not None else None
        spooled = _metric(metrics_port, _SPOOLED) - at_warm.get(_SPOOLED, 0.0)
        sched1 = stack.engine_sched()
        svc = {k: round(v - svc0.get(k, 0.0), 1) for k, v in stack.services_cpu().items()}
        http = {k: v - http0.get(k, 0.0) for k, v in stack.db_http_stats().items()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(latencies) < len(published):
            time.sleep(0.2)
        sub.close()
        pub.close()
    finally:
        stack.close()
    lat = list(latencies.values())
    return {
        "target_rate": rate, "achieved_rate": round(steady / t_send),
        "seconds": round(t_send, 1), "readings": steady, "publisher_behind_max_s":
        round(behind_max, 3), "sags": len(published), "alerts_received": len(lat),
        "p50_s": round(pct(lat, 50), 3), "p99_s": round(pct(lat, 99), 3),
        "max_s": round(max(lat), 3) if lat else None,
        "drain_after_last_publish_s": round(drain, 1) if drain is not None else None,
        "engine_cpu_s": round(sched1[0] - sched0[0], 1),
        "engine_wait_for_cpu_s": round(sched1[1] - sched0[1], 1),
        # the servers' CPU and the database's write requests over the same span
        "services_cpu_s": svc, "db_write_requests": int(http.get("writeReq", 0)),
        "db_points_written": int(http.get("pointsWrittenOK", 0)),
        "spooled_by_the_dataflow": int(spooled),
        "router": {"group_wait_s": 0.0, "group_interval_s": 0.0, "service_interval_s": 0.05},
        # each sag's publish time (s from the first steady publish) and its alert's delay:
        # whether the slow ones come together (a stall) or spread out (a queue)
        "timeline": sorted((round(published[m] - t0, 2), round(d, 3))
                           for m, d in latencies.items()),
    }


# -- memory -------------------------------------------------------------------------------------
MEMORY_CHILD = r'''
import gc, json, pickle, sys, time
sys.path.insert(0, {bench!r})
from _e2e_lib import load_fleet, rss_bytes
from datetime import timedelta
from typing import Any
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from gridwatch import Settings
from gridwatch.simulators import Simulation
from gridwatch.stream import Sinks, build_flow

scale, intervals = {scale}, {intervals}
fleet = load_fleet(scale, meters_per_concentrator=100, duration=f"{{intervals * 15}}m")
sim = Simulation(fleet)
meta = {{m.meter_id: m.meta() for m in sim.meters}}
n = fleet.n_meters
del sim.meters
gc.collect()
peak = [0]
count = [0]

class _Part(StatelessSinkPartition[Any]):
    def write_batch(self, items):
        count[0] += len(items)

class Null(DynamicSink[Any]):
    def build(self, *a):
        return _Part()

def readings():
    for block in sim.blocks():
        yield from sim.block_readings(block)
        peak[0] = max(peak[0], rss_bytes())
    time.sleep(1.0)  # a last epoch with every state alive
    peak[0] = max(peak[0], rss_bytes())

before = rss_bytes()
t0 = time.perf_counter()
flow = build_flow(Settings(), TestingSource(readings(), batch_size=1000),
                  Sinks(points=Null(), events=Null()), meta, snapshots=False)
run_main(flow, epoch_interval=timedelta(seconds=1))
print(json.dumps({{"meters": n, "readings": n * intervals, "rss_before": before,
                  "rss_peak": peak[0], "seconds": time.perf_counter() - t0}}))
'''

STATE_CHILD = r'''
import gc, json, sys
sys.path.insert(0, {bench!r})
from _e2e_lib import rss_bytes
from gridwatch.models import MeterState
blobs = [bytes.fromhex(x) for x in json.load(open({blobs!r}))]
n = {n}
gc.collect()
before = rss_bytes()
states = {{}}
for i in range(n):
    st = MeterState.from_bytes(blobs[i % len(blobs)])
    st.meter_id = f"m{{i:07d}}"
    states[st.meter_id] = st
gc.collect()
print(json.dumps({{"meters": n, "rss_delta": rss_bytes() - before}}))
'''


def warm_states(days: int = 8) -> list[bytes]:
    """Per-meter states of the demo fleet (304 meters) after ``days`` simulated days."""
    from gridwatch import Settings
    from gridwatch.models import Calendar, MeterState
    from gridwatch.simulators import Fleet

    fleet = Fleet.load(ROOT / "config/fleets/small.yaml", duration=f"{days}d")
    settings = Settings().detection
    cal = Calendar(settings.timezone, settings.holiday_country)
    meta = {m.meter_id: m.meta() for m in fleet.meters(fleet.seed)}
    states: dict[str, MeterState] = {}
    readings, _labels = fleet.generate()
    for r in readings:
        st = states.get(r.meter_id)
        if st is None:
            st = states[r.meter_id] = MeterState(r.meter_id)
        st.step(r, meta.get(r.meter_id), None, settings, cal)
    return [s.to_bytes() for s in states.values()]


def child(code: str, timeout: float = 1800) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_memory(work: Path, full: bool) -> dict[str, Any]:
    console.rule("[bold]memory per meter")
    work.mkdir(parents=True, exist_ok=True)
    bench = str(Path(__file__).resolve().parent)
    console.print("warming 304 meter states over 8 simulated days ...")
    blobs = warm_states()
    sizes = [len(b) for b in blobs]
    blob_file = work / "states.json"
    blob_file.write_text(json.dumps([b.hex() for b in blobs]))
    res: dict[str, Any] = {"pickled_state": {
        "meters": len(sizes), "days": 8, "mean_bytes": round(statistics.mean(sizes)),
        "max_bytes": max(sizes)}, "states": [], "dataflow": []}
    for n in (100_000, 1_000_000):
        console.print(f"{n:,} warm MeterState objects in a fresh process ...")
        r = child(STATE_CHILD.format(bench=bench, blobs=str(blob_file), n=n))
        r["bytes_per_meter"] = round(r["rss_delta"] / n)
        res["states"].append(r)
    for scale in ((1, 10) if full else (1,)):
        n = 100_000 * scale
        console.print(f"dataflow over {n:,} meters x 2 intervals (every detector, no sinks) ...")
        r = child(MEMORY_CHILD.format(bench=bench, scale=scale, intervals=2))
        r["bytes_per_meter"] = round((r["rss_peak"] - r["rss_before"]) / r["meters"])
        res["dataflow"].append(r)
    return res


# -- real time ----------------------------------------------------------------------------------
def run_realtime(work: Path, seconds: float, meters_scale: int = 10,
                 store: str = "influxdb") -> dict[str, Any]:
    from gridwatch.simulators import Simulation, write_registry

    n_meters = 100_000 * meters_scale
    rate = n_meters / 900.0
    console.rule(f"[bold]real time: {n_meters:,} meters every 15 min = {rate:,.0f} readings/s "
                 f"for {seconds:.0f} s")
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=15)).replace(second=0, microsecond=0)
    start -= timedelta(minutes=start.minute % 15)
    console.print("building the fleet, its registry and one interval of readings ...")
    fleet = load_fleet(meters_scale, meters_per_concentrator=100, start=start.isoformat(),
                       duration="15m")
    sim = Simulation(fleet)
    need = int(rate * seconds) + 1
    rows: list[Any] = []
    for _ts, chunk in sim.chunks():
        rows = chunk[:need]
    msgs = messages_for(rows, 100)
    registry = work / "registry.json"
    stack = Stack(work, store)
    samples: list[dict[str, Any]] = []
    delays: list[tuple[float, float]] = []
    probes: list[tuple[float, str, str, float]] = []
    probe_lock = threading.Lock()
    stop = threading.Event()
    try:
        stack.start_servers()
        write_registry(sim.meters, registry)
        del sim
        metrics_port = _free_port()
        cfg = stack.write_config(registry, metrics_port=metrics_port)
        t = time.perf_counter()
        stack.start_engine(cfg, timeout=600)
        stack.wait_ready()
        ready_s = time.perf_counter() - t
        idle_rss = stack.engine_rss()
        console.print(f"engine ready after {ready_s:.0f} s ({n_meters:,}-meter registry); "
                      f"RSS {idle_rss / 2**20:,.0f} MiB")
        base = stack.stored()
        j_base = journal_readings(work / "journal")

        def prober() -> None:
            while not stop.is_set() or probes:
                with probe_lock:
                    pending = list(probes)
                for item in pending:
                    t_pub, mid, ts, rel = item
                    try:
                        if stack.has_reading(mid, ts):
                            delays.append((rel, time.perf_counter() - t_pub))
                            with probe_lock:
                                probes.remove(item)
                    except OSError:
                        pass
                if stop.is_set() and time.perf_counter() - max(
                        (p[0] for p in pending), default=0) > 120:
                    break
                time.sleep(0.25)

        probe_thread = threading.Thread(target=prober, daemon=True)
        probe_thread.start()
        pub = Publisher(stack.broker.port, "bench-pub-realtime")
        t0 = time.perf_counter()
        sent = 0
        next_sample = 0.0
        next_probe = 1.0
        with console.status("real time") as status:
            for topic, payload, n in msgs:
                due = t0 + sent / rate
                now_p = time.perf_counter()
                if due > now_p:
                    time.sleep(due - now_p)
                rel = time.perf_counter() - t0
                pub.publish(topic, payload)
                sent += n
                if rel >= next_probe:
                    last = json.loads(payload)[-1]
                    with probe_lock:
                        probes.append((time.perf_counter(), last["meter_id"], last["ts"], rel))
                    next_probe += 5.0
                if rel >= next_sample:
                    journaled = journal_readings(work / "journal") - j_base
                    stored = stack.stored() - base
                    try:
                        m = engine_metrics(metrics_port)
                    except OSError:
                        m = {}
                    samples.append({"t_s": round(rel, 1), "published": sent,
                                    "journaled": journaled, "stored": stored,
                                    "consumer_lag": int(m.get("gridwatch_ingest_consumer_lag",
                                                              -1)),
                                    "spool_points": int(m.get("gridwatch_storage_spool_points",
                                                              -1)),
                                    "ingest_lag": sent - journaled,
                                    "dataflow_storage_lag": journaled - stored,
                                    "rss_mib": round(stack.engine_rss() / 2**20)})
                    status.update(f"real time {rel:.0f}/{seconds:.0f} s: published {sent:,}, "
                                  f"journaled {journaled:,}, stored {stored:,}")
                    next_sample += 10.0
                if not stack.engines_alive():
                    raise RuntimeError("the engine exited during the real-time run")
        pub.flush()
        t_end = time.perf_counter() - t0
        done, stored = stack.wait_stored(base + sent, 300, poll_s=0.5,
                                         label="real time drain")
        stored -= base
        drain = done - t0 - t_end if done is not None else None
        samples.append({"t_s": round(time.perf_counter() - t0, 1), "published": sent,
                        "journaled": journal_readings(work / "journal") - j_base,
                        "stored": stored,
                        "ingest_lag": 0, "dataflow_storage_lag": sent - stored,
                        "consumer_lag": 0, "spool_points": 0,
                        "rss_mib": round(stack.engine_rss() / 2**20)})
        stop.set()
        probe_thread.join(150)
    finally:
        stop.set()
        stack.close()
    d = [x[1] for x in delays]
    lags = [s["ingest_lag"] + s["dataflow_storage_lag"] for s in samples[:-1]]
    half = len(lags) // 2
    return {
        "meters": n_meters, "rate": round(rate, 1), "engine_ready_s": round(ready_s),
        "engine_idle_rss_mib": round(idle_rss / 2**20), "seconds": round(t_end, 1),
        "readings": sent, "stored": stored,
        "drain_after_last_publish_s": round(drain, 2) if drain is not None else None,
        "keeps_up": drain is not None and drain < 10 and (
            not lags or max(lags[half:], default=0) <= max(2 * max(lags[:half], default=0),
                                                          rate * 5)),
        "delay_p50_s": round(pct(d, 50), 2), "delay_p99_s": round(pct(d, 99), 2),
        "delay_max_s": round(max(d), 2) if d else None, "probes": len(d),
        "delays": [(round(a, 1), round(b, 2)) for a, b in delays],
        "samples": samples,
    }


# -- main ---------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", choices=PARTS,
                    help="run only this part (repeatable)")
    ap.add_argument("--full", action="store_true",
                    help="1,000,000 meters through the dataflow in the memory part; 5 "
                         "intervals in the throughput runs; 5 minutes real time")
    ap.add_argument("--rate", type=float, default=10_000.0, help="latency: readings/s")
    ap.add_argument("--latency-s", type=float, default=45.0)
    ap.add_argument("--realtime-s", type=float, default=None,
                    help="real time: seconds (default 120, 300 with --full)")
    ap.add_argument("--intervals", type=int, default=None,
                    help="throughput: 15-minute intervals of the 100k fleet as batches, "
                         "published and stored one after the other: the first is start-up "
                         "(every meter new), the later ones steady state (default 3, 5 with "
                         "--full)")
    ap.add_argument("--single", type=int, default=None,
                    help="throughput: single-reading messages (default 20,000; 0: none, "
                         "the batches only)")
    ap.add_argument("--trace-ingest", action="store_true",
                    help="throughput: also note when the journal holds every reading (reads "
                         "the journal four times a second, which slows the run itself)")
    ap.add_argument("--store", choices=STORES, default="influxdb",
                    help="throughput, scaleout, placed, latency, realtime: the database the "
                         "engine writes to: InfluxDB 1.6.7 over the v1 API (default) or "
                         "VictoriaMetrics over influxdb-client's v2 write API")
    ap.add_argument("--influx-cache-snapshot", default=_e2e_lib.influx_cache_snapshot,
                    metavar="SIZE",
                    help="InfluxDB's cache-snapshot-memory-size (default: "
                         f"{_e2e_lib.influx_cache_snapshot}, as gridwatch's private server; "
                         "'default': InfluxDB's own, 25 MB)")
    ap.add_argument("--later-together", action="store_true",
                    help="throughput, scaleout, placed: publish the intervals after the first "
                         "back to back and wait once until all are stored (by default each "
                         "interval is stored before the next is published, so each pays the "
                         "path's latency once)")
    ap.add_argument("--collector-rounds", type=int, default=2,
                    help="collector: rounds of the two layouts in turns (the collector a "
                    "thread of the engine, then a process of its own)")
    ap.add_argument("--collector-process", choices=("auto", "true", "false"), default="auto",
                    help="throughput, latency: engine.collector_process (auto: as the engine "
                    "decides)")
    ap.add_argument("--recovery", action="store_true",
                    help="throughput: the engine with recovery (-r), its state snapshotted at "
                    "every epoch's end (engine.epoch_s: 1 s here; GRIDWATCH_ENGINE__EPOCH_S "
                    "sets another)")
    ap.add_argument("--out", type=Path, default=ROOT / "var/bench/e2e.json")
    ap.add_argument("--work", type=Path, default=ROOT / "var/bench/e2e")
    args = ap.parse_args()
    args.collector_process = {"auto": None, "true": True, "false": False}[args.collector_process]
    args.work = args.work.resolve()
    _e2e_lib.influx_cache_snapshot = (None if args.influx_cache_snapshot == "default"
                                      else args.influx_cache_snapshot)
    parts = args.only or list(PARTS)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    out: dict[str, Any] = {}
    if args.out.exists():
        try:
            out = json.loads(args.out.read_text())
        except ValueError:
            out = {}
    out["machine"] = machine()
    out["command"] = " ".join(["python benchmarks/e2e.py", *sys.argv[1:]])
    out["influx_cache_snapshot"] = args.influx_cache_snapshot
    out["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    intervals = args.intervals or (5 if args.full else 3)
    single = args.single if args.single is not None else (60_000 if args.full else 20_000)
    console.print(f"machine: {out['machine']}")

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))

    t_all = time.perf_counter()
    one: dict[str, Any] | None = None
    if "throughput" in parts or "scaleout" in parts or "placed" in parts:
        one = run_throughput(args.work / "throughput", 1, intervals, single,
                             args.trace_ingest, store=args.store,
                             later_together=args.later_together,
                             collector_process=args.collector_process,
                             recovery=args.recovery)
        out["throughput"] = one
        save()
        print_throughput(one, "sustained throughput, one engine process")
    if "collector" in parts:
        out["collector"] = run_collector_layouts(args.work / "collector", intervals, single,
                                                 args.collector_rounds, args.store,
                                                 args.later_together)
        save()
    if "scaleout" in parts and one is not None:
        two = run_throughput(args.work / "scaleout", 2, intervals, single, args.trace_ingest,
                             store=args.store, later_together=args.later_together)
        for shape, r in two["shapes"].items():
            r["speedup"] = round(r["e2e_readings_per_s"]
                                 / one["shapes"][shape]["e2e_readings_per_s"], 3)
        out["scaleout"] = two
        save()
        print_throughput(one, "one process (same run)")
        print_throughput(two, "two-process bytewax cluster, two collectors ($share)")
        t = Table(title="scale-out speed-up (end-to-end readings/s, 2 processes / 1)")
        t.add_column("payload")
        t.add_column("1 process", justify="right")
        t.add_column("2 processes", justify="right")
        t.add_column("speed-up", justify="right")
        for shape, r in two["shapes"].items():
            t.add_row(shape, f"{one['shapes'][shape]['e2e_readings_per_s']:,}",
                      f"{r['e2e_readings_per_s']:,}", f"{r['speedup']:.2f}")
        console.print(t)
    if "placed" in parts and one is not None:
        placed = run_throughput(args.work / "placed", 2, intervals, single, args.trace_ingest,
                                placed=True, store=args.store,
                                later_together=args.later_together)
        hashed = out.get("scaleout") if "scaleout" in parts else None
        for shape, r in placed["shapes"].items():
            r["speedup"] = round(r["e2e_readings_per_s"]
                                 / one["shapes"][shape]["e2e_readings_per_s"], 3)
        out["placed"] = placed
        save()
        print_throughput(placed, "two-process cluster, cells placed, collectors on their own "
                                 "regions")
        t = Table(title="placed cluster (end-to-end readings/s against one process, same run)")
        for col in ("payload", "1 process", "2, hashed ($share)", "2, placed", "placed / 1",
                    "placed / hashed"):
            t.add_column(col, justify="left" if col == "payload" else "right")
        for shape, r in placed["shapes"].items():
            h = hashed["shapes"][shape]["e2e_readings_per_s"] if hashed else None
            t.add_row(shape, f"{one['shapes'][shape]['e2e_readings_per_s']:,}",
                      f"{h:,}" if h else "-", f"{r['e2e_readings_per_s']:,}",
                      f"{r['speedup']:.2f}", f"{r['e2e_readings_per_s'] / h:.2f}" if h else "-")
        console.print(t)
    if "latency" in parts:
        rate = args.rate
        if one is not None:
            b = one["shapes"]["batch100"]
            sustain = 0.8 * (b.get("later_parts_readings_per_s") or b["e2e_readings_per_s"])
            if sustain < rate:
                console.print(f"[yellow]the engine sustained "
                              f"{one['shapes']['batch100']['e2e_readings_per_s']:,} readings/s "
                              f"end to end: latency at 80 % of that, {sustain:,.0f}/s[/]")
                rate = sustain
        lat = run_latency(args.work / "latency", rate, args.latency_s, sags_per_s=2.0,
                          store=args.store, collector_process=args.collector_process)
        out["latency"] = lat
        save()
        t = Table(title="publish → alert at an MQTT subscriber (voltage sag)")
        for col in ("readings/s", "sags", "alerts", "p50 s", "p99 s", "max s",
                    "drain after publish s"):
            t.add_column(col, justify="right")
        t.add_row(f"{lat['achieved_rate']:,}", str(lat["sags"]), str(lat["alerts_received"]),
                  f"{lat['p50_s']:.3f}", f"{lat['p99_s']:.3f}", str(lat["max_s"]),
                  str(lat["drain_after_last_publish_s"]))
        console.print(t)
        console.print(f"the engine used {lat['engine_cpu_s']} CPU-seconds and its threads "
                      f"waited {lat['engine_wait_for_cpu_s']} s for a CPU (the machine's other "
                      f"jobs) from the first steady publish until everything was stored")
        svc, writes = lat["services_cpu_s"], max(lat["db_write_requests"], 1)
        console.print(f"meanwhile the servers used {', '.join(f'{k} {v}' for k, v in svc.items())}"
                      f" CPU-seconds; the database took {lat['db_write_requests']:,} write "
                      f"requests, {lat['db_points_written'] / writes:,.0f} points a request; "
                      f"the dataflow spooled {lat['spooled_by_the_dataflow']:,} points the "
                      f"database had not taken yet rather than wait for it")
    if "memory" in parts:
        mem = run_memory(args.work / "memory", args.full)
        out["memory"] = mem
        save()
        t = Table(title="memory per meter")
        t.add_column("what")
        t.add_column("meters", justify="right")
        t.add_column("bytes/meter", justify="right")
        ps = mem["pickled_state"]
        t.add_row("pickled MeterState after 8 days (mean / max)", str(ps["meters"]),
                  f"{ps['mean_bytes']:,} / {ps['max_bytes']:,}")
        for r in mem["states"]:
            t.add_row("RSS of warm MeterState objects", f"{r['meters']:,}",
                      f"{r['bytes_per_meter']:,}")
        for r in mem["dataflow"]:
            t.add_row("RSS of the dataflow (every step's state, 2 readings/meter)",
                      f"{r['meters']:,}", f"{r['bytes_per_meter']:,}")
        console.print(t)
    if "realtime" in parts:
        seconds = args.realtime_s or (300.0 if args.full else 120.0)
        rt = run_realtime(args.work / "realtime", seconds, store=args.store)
        out["realtime"] = rt
        save()
        t = Table(title=f"real time: {rt['meters']:,} meters, {rt['rate']:,} readings/s")
        for col in ("t s", "published", "journaled", "stored", "ingest lag",
                    "journal consumer lag", "journaled − stored", "engine RSS MiB"):
            t.add_column(col, justify="right")
        for s in rt["samples"]:
            t.add_row(str(s["t_s"]), f"{s['published']:,}", f"{s['journaled']:,}",
                      f"{s['stored']:,}", f"{s['ingest_lag']:,}",
                      f"{s.get('consumer_lag', -1):,}",
                      f"{s['dataflow_storage_lag']:,}", f"{s['rss_mib']:,}")
        console.print(t)
        console.print(f"keeps up: {rt['keeps_up']}; publish → stored delay p50 "
                      f"{rt['delay_p50_s']} s, p99 {rt['delay_p99_s']} s, max "
                      f"{rt['delay_max_s']} s over {rt['probes']} probes; drained "
                      f"{rt['drain_after_last_publish_s']} s after the last publish")
    out["total_s"] = round(time.perf_counter() - t_all)
    save()
    console.print(f"figures written to {args.out} ({out['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
