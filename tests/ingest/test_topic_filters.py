"""Topic filters per kind (a string or a list), per-process regions (``topics.regions``), their
validation, and the placement warning of ``gridwatch run``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch import Settings
from gridwatch._engine import cluster_topics, placement_topics_warning
from gridwatch._settings import ConfigError, load_settings
from gridwatch.alerts._acl import acl_rules
from gridwatch.alerts._registry import Registry
from gridwatch.ingest import Collector, CollectorError, TopicSettings
from gridwatch.ingest._config import check_filter
from gridwatch.ingest._decode import UNKNOWN_TOPIC, Decoder, topic_matches

NOW = datetime(2026, 5, 1, 0, 20, tzinfo=UTC)
READING = b'{"meter_id": "M-1", "ts": "2026-05-01T00:15:00Z", "kw": 1.0}'


def test_a_string_stays_a_string_and_a_list_is_a_list_of_filters():
    t = TopicSettings()
    assert t.reading == "meters/+/+/reading"
    assert t.reading_filters == ("meters/+/+/reading",)
    t = TopicSettings(reading=["meters/a/+/reading", "meters/b/+/reading", "meters/a/+/reading"],
                      batch="meters/a/+/batch")
    assert t.reading_filters == ("meters/a/+/reading", "meters/b/+/reading")  # once each
    assert t.batch_filters == ("meters/a/+/batch",)


def test_the_environment_takes_a_json_list_or_a_plain_filter(monkeypatch):
    monkeypatch.setenv("GRIDWATCH_TOPICS__READING", '["meters/a/+/reading", "meters/b/+/reading"]')
    monkeypatch.setenv("GRIDWATCH_TOPICS__BATCH", "meters/a/+/batch")
    t = Settings().topics
    assert t.reading_filters == ("meters/a/+/reading", "meters/b/+/reading")
    assert t.batch_filters == ("meters/a/+/batch",)


@pytest.mark.parametrize("bad, why", [
    ("", "empty"), ("meters/+x/reading", "'+' must be a whole level"),
    ("meters/#/reading", "'#' must be a whole level"), ("meters/a#", "'#' must be"),
    ("$share/g/meters/+/+/reading", "mqtt.shared_group"), ("a\x00b", "NUL"),
])
def test_bad_filters_are_refused_with_the_reason(bad, why):
    with pytest.raises(ValidationError, match=why.replace("+", r"\+").replace("$", r"\$")):
        TopicSettings(reading=bad)
    with pytest.raises(ValidationError, match="topic filter"):
        TopicSettings(batch=[])


@given(st.lists(st.sampled_from(["a", "b", "+", "#", "x+", "$s"]), min_size=1, max_size=5))
def test_check_filter_accepts_what_mqtt_accepts(levels):
    flt = "/".join(levels)
    valid = all(lv in ("+", "#") or ("+" not in lv and "#" not in lv) for lv in levels) and \
        "#" not in levels[:-1] and not flt.startswith("$share/")
    if valid:
        assert check_filter(flt) == flt
    else:
        with pytest.raises(ValueError):
            check_filter(flt)


def test_regions_give_each_process_its_own_filters():
    t = TopicSettings(regions={0: ["north", "east"], 1: ["south"]})
    p0, p1 = t.for_process(0), t.for_process(1)
    assert p0.reading_filters == ("meters/north/+/reading", "meters/east/+/reading")
    assert p0.batch_filters == ("meters/north/+/batch", "meters/east/+/batch")
    assert p1.reading_filters == ("meters/south/+/reading",)
    assert p0.regions == {} and p0.telemetry == t.telemetry
    assert TopicSettings().for_process(3) == TopicSettings()
    with pytest.raises(ValueError, match="not process 2"):
        t.for_process(2)
    # the region level is the first '+' before the meter id's
    t = TopicSettings(reading="utility/+/+/+/reading", meter_id_level=3, regions={0: ["r1"]})
    assert t.for_process(0).reading_filters == ("utility/r1/+/+/reading",)


def test_regions_need_a_region_level_and_a_region_each():
    with pytest.raises(ValidationError, match="no region level"):
        TopicSettings(reading="meters/north/+/reading", regions={0: ["north"]})
    with pytest.raises(ValidationError, match="has no region"):
        TopicSettings(regions={0: []})
    with pytest.raises(ValidationError):
        TopicSettings(regions={0: ["no/slash"]})
    with pytest.raises(ValidationError):
        TopicSettings(regions={0: ["+"]})


def test_a_region_two_processes_hear_is_refused_only_with_exclusive_placement(tmp_path: Path):
    regions = {0: ["north", "east"], 1: ["east"]}
    assert Settings(topics={"regions": regions}).topics.claims()["east"] == [0, 1]
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("topics:\n  regions: {0: [north, east], 1: [east]}\n"
                   "engine:\n  placement: {0: [north-*], 1: [east-*]}\n"
                   "  placement_exclusive: true\n")
    with pytest.raises(ConfigError, match="region 'east' is listed for processes 0, 1"):
        load_settings(cfg)


def test_the_decoder_classifies_by_every_filter_of_a_kind():
    d = Decoder(TopicSettings(regions={0: ["north", "east"], 1: ["south"]}).for_process(0))
    for region, meter in (("north", "M-1"), ("east", "M-2")):
        payload = READING.replace(b"M-1", meter.encode())
        result = d.decode_message(f"meters/{region}/{meter}/reading", payload, NOW)
        assert [r.meter_id for r in result.accepted] == [meter], result
    result = d.decode_message("meters/south/M-3/reading", READING.replace(b"M-1", b"M-3"), NOW)
    assert [r.reason for r in result.rejected] == [UNKNOWN_TOPIC]


def test_a_collector_subscribes_to_its_partitions_regions(tmp_path: Path):
    s = Settings(topics={"regions": {0: ["north"], 1: ["south", "west"]}},
                 mqtt={"shared_group": "g"}, ingest={"journal_dir": tmp_path / "j"})
    subs = [flt for flt, _ in Collector(s, partition=1)._subscriptions()]
    assert subs == ["$share/g/meters/south/+/reading", "$share/g/meters/west/+/reading",
                    "$share/g/meters/south/+/batch", "$share/g/meters/west/+/batch",
                    "$share/g/devices/+/+/telemetry"]
    assert all(topic_matches(f.split("/", 2)[2], t) for f, t in zip(
        subs, ["meters/south/M/reading", "meters/west/M/reading"], strict=False))
    with pytest.raises(CollectorError, match="not process 2"):
        Collector(s, partition=2)


def test_the_acl_reads_every_filter():
    t = TopicSettings(reading=["meters/a/+/reading", "meters/b/+/reading"])
    rules = acl_rules(Registry(), Settings().alerts,
                      router_user="router", collector_user="collector", topics=t)
    assert "topic read meters/a/+/reading" in rules["collector"]
    assert "topic read meters/b/+/reading" in rules["collector"]
    # a region's login and a meter's write on every filter of their kind, not the first only
    t = TopicSettings(reading=["meters/+/+/reading", "site/+/+/reading"])
    rules = acl_rules(Registry(), Settings().alerts, router_user="router", topics=t,
                      regions=["north"])
    assert rules["region-north"] == ["topic write meters/north/+/reading",
                                     "topic write site/north/+/reading",
                                     "topic write meters/north/+/batch"]


def test_run_warns_when_exclusive_cells_share_the_default_topics():
    placed = {"placement": {0: ["north-*"], 1: ["south-*"]}, "placement_exclusive": True}
    warning = placement_topics_warning(Settings(engine=placed), 2)
    assert warning and "topics.regions" in warning
    assert placement_topics_warning(Settings(engine=placed), 1) is None
    assert placement_topics_warning(
        Settings(engine=placed | {"placement_exclusive": False}), 2) is None
    regions = {"regions": {0: ["north"], 1: ["south"]}}
    assert placement_topics_warning(Settings(engine=placed, topics=regions), 2) is None
    own = {"reading": "meters/north/+/reading", "batch": "meters/north/+/batch"}
    assert placement_topics_warning(Settings(engine=placed, topics=own), 2) is None


def test_a_cluster_must_list_every_process_and_a_single_process_hears_everything():
    s = Settings(topics={"regions": {0: ["north"], 2: ["south"]}})
    with pytest.raises(ConfigError, match=r"missing \[1\]; not in the cluster \[2\]"):
        cluster_topics(s, 2, 0)
    ok = Settings(topics={"regions": {0: ["north"], 1: ["south"]}})
    assert cluster_topics(ok, 2, 1) is ok
    alone = cluster_topics(ok, 1, 0)
    assert alone.topics.regions == {}
    assert alone.topics.for_process(0).reading_filters == ("meters/+/+/reading",)


def test_a_region_two_processes_hear_is_warned_without_exclusive_placement(caplog):
    s = Settings(topics={"regions": {0: ["north", "east"], 1: ["east"]}})
    with caplog.at_level("WARNING", logger="gridwatch.engine"):
        assert cluster_topics(s, 2, 0) is s
    assert "region 'east' is listed for processes 0, 1" in caplog.text
