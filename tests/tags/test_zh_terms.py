"""What an alert says to a Chinese reader, as pure functions: the per-type summary phrases
(every type the detectors can raise has one), the evidence labels, the segment names and the
customer classes; and the English fallback where there is no phrase."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import yaml
from _zh_samples import REPO, SAMPLES, english_words, raised_types
from hypothesis import given
from hypothesis import strategies as st

from gridwatch import _i18n_terms as terms
from gridwatch._i18n_terms import (
    EVIDENCE_LABELS,
    SUMMARIES,
    class_name,
    evidence_items,
    segment_label,
    summary_text,
)
from gridwatch._segnames import SEGMENT_SHAPES, segment_name

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_type_the_engine_raises_has_a_chinese_summary_and_name():
    types = raised_types()
    # the detectors' source is read, not a list kept by hand: it must see the known families
    assert {"abnormal_consumption", "possible_theft", "feeder_outage", "device_overload",
            "overload_forecast", "capacity_forecast", "over_capacity_risk"} <= types
    assert len(types) >= 20
    phrased = {k.split("/")[0] for k in SUMMARIES}
    assert types - phrased == set()
    messages = yaml.safe_load((REPO / "config/templates/messages.yaml").read_text("utf-8"))
    for lang in ("zh", "en"):
        assert types - set(messages[lang]["names"]) == set(), lang
        assert types - set(messages[lang]["advice"]) == set(), lang
    # and every sample type covers the raised ones
    assert types <= {t for t, _, _ in SAMPLES}


@pytest.mark.parametrize(("type_", "evidence", "english"), SAMPLES)
def test_each_sample_summary_is_chinese(type_, evidence, english):
    zh = summary_text("zh", type_, "firing", evidence, english)
    assert zh != english and CJK.search(zh), zh
    assert english_words(zh, ("TX-01",)) == [], zh
    assert summary_text("en", type_, "firing", evidence, english) == english


@pytest.mark.parametrize(("type_", "evidence", "english"), SAMPLES)
def test_every_evidence_key_has_a_label_and_keeps_its_unit(type_, evidence, english):
    items = evidence_items("zh", evidence)
    assert len(items) == len(evidence)
    assert set(evidence) <= set(EVIDENCE_LABELS)
    for label, value in items:
        assert CJK.search(label), label
        assert english_words(value, ("TX-01", "S1")) == [], (label, value)
    # English: keys and values as the detector wrote them
    assert [k for k, _ in evidence_items("en", evidence)] == sorted(evidence)


def test_values_and_units():
    items = dict(evidence_items("zh", {"observed_kw": 12.4, "lasted_min": 120.0,
                                       "strong": True, "previous_kwh": None,
                                       "kind": "reverse_flow,cover_open",
                                       "baseline": "day-type hour baseline for Sat 21:00 "
                                                   "(12 samples)"}))
    assert items["实测负荷"] == "12.4 kW"
    assert items["持续"] == "120 分钟"
    assert items["强证据"] == "是"
    assert items["上次电量读数"] == "-"
    assert items["类型"] == "反向潮流、表盖打开"
    assert items["基准"] == "周六 21:00 的同类日同小时基准（12 个样本）"


def test_a_type_without_a_phrase_keeps_english_and_is_logged_once(caplog):
    terms._warned.discard("brand_new_type")
    with caplog.at_level(logging.WARNING, logger="gridwatch.i18n"):
        assert summary_text("zh", "brand_new_type", "firing", {"x": 1}, "new thing") == \
            "new thing"
        assert summary_text("zh", "brand_new_type", "firing", {"x": 2}, "again") == "again"
    logged = [r for r in caplog.records if "brand_new_type" in r.getMessage()]
    assert len(logged) == 1 and "no Chinese phrase" in logged[0].getMessage()


def test_a_missing_slot_falls_back_to_english():
    terms._warned.discard("voltage_sag")
    assert summary_text("zh", "voltage_sag", "firing", {"observed_v": 190.0}, "low") == "low"
    # a resolved alert says so whatever its evidence
    assert summary_text("zh", "voltage_sag", "resolved", {}, "back") == "已恢复正常"
    # device alerts: the second phrase when the first one's slots are not there
    zh = summary_text("zh", "device_overload", "firing",
                      {"device_id": "M-7", "device_kind": "motor", "current_of_rated": 1.3},
                      "motor M-7: loaded above its rating")
    assert zh == "电动机 M-7：电流超过额定值（额定的 130%）"


def test_classes():
    assert [class_name("zh", c) for c in ("residential", "commercial", "industrial",
                                          "agricultural")] == ["居民", "商业", "工业", "农业"]
    assert class_name("en", "industrial") == "industrial"
    assert class_name("zh", "unknown-class") == "unknown-class"


@given(curve=st.lists(st.floats(0, 100, allow_nan=False), min_size=24, max_size=24),
       cls=st.sampled_from(["residential", "commercial", "industrial", "agricultural"]))
def test_every_segment_name_reads_in_chinese(curve, cls):
    name = segment_name(np.array(curve), cls)
    label = segment_label("zh", name)
    assert label != name and not re.search(r"[A-Za-z]", label), (name, label)
    assert segment_label("en", name) == name
    assert segment_label("zh", name) == label  # a pure function of the name


def test_segment_names_shown_and_unknown_ones():
    assert segment_label("zh", "sharp evening-peak households") == "尖峰晚高峰型居民户"
    assert segment_label("zh", "round-the-clock plants") == "全天候工厂"
    assert segment_label("zh", "daytime public customers") == "daytime public customers"
    assert segment_label("zh", "night-heavy agricultural customers") == "夜间为主农业客户"
    assert segment_label("zh", "unknown") == "unknown"
    assert segment_label("zh", None) == ""
    assert all(s in terms._SHAPES for s in SEGMENT_SHAPES)
    # a second segment of one shape keeps its number; a meter not yet placed says so
    assert segment_label("zh", "long-hours plants 2") == "长时段工厂（2）"
    assert segment_label("zh", "residential-unknown") == "尚未分群的居民客户"
    assert segment_label("zh", "weird 3") == "weird 3"


def test_the_segment_judges_evidence_reads_in_chinese():
    """What the segment judge adds to a theft or level-shift candidate (``_segment.py``)."""
    got = dict(evidence_items("zh", {"segment": "long-hours plants 2",
                                     "segment_candidates_24h": 1, "window_ratio": 0.5}))
    assert got["用户分群"] == "长时段工厂（2）" and got["同群 24 小时内疑似户数"] == "1 户"
    assert not english_words(" ".join(f"{k} {v}" for k, v in got.items()))


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))


@given(type_=st.sampled_from(sorted({k.split("/")[0] for k in SUMMARIES} | {"other"})),
       state=st.sampled_from(["firing", "resolved", "acknowledged"]),
       evidence=st.dictionaries(st.sampled_from([*sorted(EVIDENCE_LABELS), "kind", "x"]),
                                _VALUES, max_size=8))
def test_bad_evidence_never_breaks_a_message(type_, state, evidence):
    """Whatever a detector (or a replayed file) put in the evidence, the reader gets a summary
    (the English one when the phrase cannot be filled) and every evidence entry."""
    zh = summary_text("zh", type_, state, evidence, "english summary")
    assert isinstance(zh, str) and zh
    items = evidence_items("zh", evidence)
    assert len(items) == len(evidence)
    assert all(isinstance(v, str) for _, v in items)


def test_the_english_word_check_itself():
    """The check the message and page tests rely on finds English and lets only the listed
    things through."""
    assert english_words("说明：sustained rise: 12.40 kW") == ["sustained", "rise"]
    assert english_words("负荷 12.4 kW，电量 3 kWh，容量 630 kVA，1.2 m³/min，820 W/m²") == []
    assert english_words("确认：gridwatch alerts ack MTR-0001/tamper") == []
    assert english_words("另见 /customer/C0001 与 https://example.org/x") == []
    # an id hides itself only, not a word that merely contains it
    assert english_words("计量点 MTR-0001", ("MTR-0001",)) == []
    assert english_words("计量点 MTR-0001xyzw meter", ("MTR-0001",)) == ["xyzw", "meter"]
    assert english_words("the ack") == []  # three letters or fewer pass
    assert english_words("gridwatch alerts list --cell CELL-A 以后 please") == ["please"]
