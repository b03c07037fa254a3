"""What an alert says in the reader's language: segment names, customer classes, the summary
and the evidence (shared by the alert messages and the workspace).

The detectors write an English ``summary`` and structured ``evidence``; in Chinese the summary is
rendered again from the evidence with a per-type phrase (``SUMMARIES``, slots named after the
evidence keys), and the evidence keys become labels (``EVIDENCE_LABELS``) with their units kept.
A type without a phrase, or an event missing a slot, keeps the English summary (logged once per
type). Segment names and customer classes keep their stable English id for routing; only what is
*shown* is translated.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CLASS_NAMES", "EVIDENCE_LABELS", "SUMMARIES", "class_name", "evidence_items",
           "segment_label", "summary_text", "tag_names"]

log = logging.getLogger("gridwatch.i18n")

#: Customer classes in Chinese (the English id is shown as is in English).
CLASS_NAMES: dict[str, str] = {"residential": "居民", "commercial": "商业", "industrial": "工业",
                               "agricultural": "农业"}

_SHAPES = {"inactive": "无用电", "round-the-clock": "全天候", "night-heavy": "夜间为主",
           "long-hours": "长时段", "evening-peak": "晚高峰型", "morning-peak": "早高峰型",
           "daytime": "白天型", "midday-peak": "午间高峰型", "night-peak": "夜间高峰型"}
_WHO = {"households": "居民户", "businesses": "商户", "plants": "工厂", "farms": "农户"}


def class_name(lang: str, cls: Any) -> str:
    """A customer class as the reader reads it (``industrial`` → ``工业`` in zh)."""
    value = str(getattr(cls, "value", cls) or "")
    if lang != "zh":
        return value
    return CLASS_NAMES.get(value, value)


def segment_label(lang: str, name: str | None) -> str:
    """A segment name (``sharp evening-peak households``, see ``segment_name``) as shown to the
    reader: ``尖峰晚高峰型居民户`` in zh; the name itself in English or when it is not one of
    the vocabulary's."""
    if not name:
        return ""
    if lang != "zh":
        return name
    cls, dash, tail = name.rpartition("-")
    if dash and tail == "unknown" and cls in CLASS_NAMES:  # too few days to be placed yet
        return f"尚未分群的{CLASS_NAMES[cls]}客户"
    base, space, number = name.rpartition(" ")
    if space and number.isdigit():  # a second segment of one shape: "long-hours plants 2"
        shown = segment_label(lang, base)
        return name if shown == base else f"{shown}（{number}）"
    words = name.split(" ", 2)
    sharp = words[0] == "sharp"
    if sharp:
        words = words[1:]
    if len(words) < 2 or words[0] not in _SHAPES:
        return name
    rest = " ".join(words[1:])
    who = _WHO.get(rest)
    if who is None and rest.endswith(" customers"):
        who = CLASS_NAMES.get(rest[:-len(" customers")])
        who = f"{who}客户" if who else None
    if who is None:
        return name
    return ("尖峰" if sharp else "") + _SHAPES[words[0]] + who


# --------------------------------------------------------------------------------- summaries
#: Chinese summary per event type (``type/kind`` first, where the evidence has a ``kind``):
#: alternatives tried in order, the first whose slots the evidence fills wins. Slots are
#: evidence keys, plus ``hours`` (``lasted_min`` in hours), ``energy_abs`` (``|energy_kwh|``),
#: ``forecast_ratio`` (``forecast / limit``), ``kind_zh`` and ``device_kind_zh``.
SUMMARIES: dict[str, tuple[str, ...]] = {
    "abnormal_consumption/spike": (
        "尖峰负荷：{observed_kw:.2f} kW，持续 {lasted_min:.0f} 分钟，超过该表近 28 天最高"
        "纪录 {record_kw:.2f} kW；该时段通常为 {expected_kw:.2f} kW",),
    "abnormal_consumption/sustained_rise": (
        "负荷持续偏高：{observed_kw:.2f} kW，该时段通常为 {expected_kw:.2f} kW；"
        "{hours:.1f} 小时内多用 {energy_abs:.1f} kWh",),
    "abnormal_consumption/sustained_drop": (
        "负荷持续偏低：{observed_kw:.2f} kW，该时段通常为 {expected_kw:.2f} kW；"
        "{hours:.1f} 小时内少用 {energy_abs:.1f} kWh",),
    "abnormal_consumption/zero_consumption": (
        "持续零用电：{hours:.1f} 小时几乎无负荷，该时段通常为 {expected_kw:.2f} kW；"
        "少用 {energy_abs:.1f} kWh",),
    "abnormal_consumption/level_shift_up": (
        "日用电量持续偏高：连续 {days} 天为平时的 {day_ratio:.0%}（{day_kwh:.1f} kWh，"
        "平时 {usual_day_kwh:.1f} kWh）",),
    "abnormal_consumption/level_shift_down": (
        "日用电量持续偏低：连续 {days} 天为平时的 {day_ratio:.0%}（{day_kwh:.1f} kWh，"
        "平时 {usual_day_kwh:.1f} kWh），且日曲线形状改变",),
    "abnormal_consumption": (
        "用电异常：{observed_kw:.2f} kW，该时段通常为 {expected_kw:.2f} kW",
        "用电异常：日用电量为平时的 {day_ratio:.0%}",),
    "possible_theft": (
        "连续 {days_low} 天用电量仅为该表历史预期的 {day_ratio:.0%}，日曲线形状照常"
        "（绕表会按比例压低负荷；空置房屋则曲线变平）",
        "{window_hours} 小时内用电量仅为该表这些时段平时的 {window_ratio:.0%}，曲线形状照常"
        "（绕表会按比例压低负荷；空置房屋则曲线变平）",),
    "outage/last_gasp": ("{missed_intervals} 个采集周期无读数：最后一条读数报告了停电",),
    "outage": ("{missed_intervals} 个采集周期无读数：最后一条读数无电压",),
    "comm_loss": ("{missed_intervals} 个采集周期无读数：表计停止上报，最后一条读数正常",),
    "tamper": ("疑似窃电或表计被动：{kind_zh}",),
    "register_frozen": ("有功率流过（{kw} kW），但电量寄存器停止走字",),
    "stuck_reading": ("读数连续 {identical_readings} 次为同一值 {kw} kW",),
    "clock_drift/backwards": ("时间戳倒退（表计时钟回拨）",),
    "clock_drift": ("时间戳偏离 {interval_s:.0f} 秒的采集周期 {offset_s:.0f} 秒",),
    "voltage_sag": ("电压 {observed_v:.1f} V，低于下限 {limit_v:.1f} V",),
    "voltage_swell": ("电压 {observed_v:.1f} V，高于上限 {limit_v:.1f} V",),
    "phase_imbalance": ("三相{kind_zh}不平衡度 {unbalance_pct:.1f}%",),
    "low_power_factor": ("功率因数 {observed_pf:.2f}，低于 {limit_pf}",),
    "over_capacity_risk": (
        "需量预计在 {lead_min:.0f} 分钟内达到 {projected_kva:.1f} kVA"
        "（合同容量 {contracted_kva:.0f} kVA）",),
    "overload_forecast": ("变压器负荷预计在 {lead_min:.0f} 分钟内达到限值的 {forecast_ratio:.0%}",),
    "capacity_forecast": ("需量预计在 {lead_min:.0f} 分钟内达到限值的 {forecast_ratio:.0%}",),
    "feeder_outage": ("疑似馈线停电：网格内 {meters_in_cell} 个计量点中有 {silent_meters} 个"
                      "同时中断上报",),
    "device_overload": (
        "{device_kind_zh} {device_id}：负载超过额定值（额定的 {load_of_rated:.0%}）",
        "{device_kind_zh} {device_id}：电流超过额定值（额定的 {current_of_rated:.0%}）",),
    "device_overheating": ("{device_kind_zh} {device_id}：温度高于热模型预期（过热）",),
    "phase_unbalance": ("{device_kind_zh} {device_id}：三相电流不平衡 {unbalance:.0%}",),
    "sensor_fault": ("{device_kind_zh} {device_id}：一个温度传感器与其他传感器读数不符",),
    "off_shift_running": ("{device_kind_zh} {device_id}：在班次（{shift}）以外运行 "
                          "{hours_outside_shift:.1f} 小时",),
    "inverter_trip": ("{device_kind_zh} {device_id}：日照充足（{irradiance_w_m2:.0f} W/m²）"
                      "但几乎无出力",),
    "compressor_wear": ("{device_kind_zh} {device_id}：同样出力下耗电增加（高出模型 "
                        "{power_above_model_of_rated:.0%} 额定功率），疑似磨损",),
}

_RESOLVED = "已恢复正常"

#: Words that evidence values are made of (kinds, modes, device kinds, sensors).
_VALUES: dict[str, str] = {
    "spike": "尖峰负荷", "sustained_rise": "持续偏高", "sustained_drop": "持续偏低",
    "zero_consumption": "零用电", "level_shift_up": "日电量偏高", "level_shift_down": "日电量偏低",
    "last_gasp": "停电前最后上报", "silence": "停止上报", "backwards": "时间倒退",
    "register_decrease": "电量读数减少", "reverse_flow": "反向潮流", "cover_open": "表盖打开",
    "magnetic_tamper": "强磁干扰", "voltage": "电压", "current": "电流",
    "stuck": "读数不变", "drift": "读数漂移",
    "transformer": "变压器", "motor": "电动机", "compressor": "空压机", "chiller": "冷水机组",
    "furnace": "电炉", "pv_inverter": "光伏逆变器", "customer": "客户",
    "oil_temp_c": "顶层油温", "winding_temp_c": "绕组温度", "bearing_temp_c": "轴承温度",
    "the meter's usual curve for this day type": "该表同类日的常规曲线",
    "the meter's usual mean load of each hour": "该表各小时的平均负荷",
    "the last reading reported a power failure": "最后一条读数报告了停电",
    "the last reading had no voltage": "最后一条读数无电压",
    "the meter stopped reporting; its last reading looked normal": "表计停止上报，最后一条读数正常",
}
_SOURCES = {"time-of-week": "周内同时段", "day-type hour": "同类日同小时", "meter-wide": "全表",
            "none": "无"}
_DAYS = {"Mon": "周一", "Tue": "周二", "Wed": "周三", "Thu": "周四", "Fri": "周五", "Sat": "周六",
         "Sun": "周日"}
_BASELINE = re.compile(r"^(?P<src>.+) baseline for (?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       r"(?P<hour>\d\d:\d\d) \((?P<n>\d+) samples\)$")

#: Evidence keys in Chinese, with the unit their value is shown in (kept as in English).
EVIDENCE_LABELS: dict[str, tuple[str, str]] = {
    "kind": ("类型", ""), "observed_kw": ("实测负荷", "kW"), "expected_kw": ("平时负荷", "kW"),
    "band_kw": ("正常范围", "kW"), "energy_kwh": ("偏离电量", "kWh"),
    "usual_daily_kwh": ("平时日电量", "kWh"), "ratio": ("倍数", ""),
    "energy_share": ("占日电量", ""),
    "lasted_min": ("持续", "分钟"), "readings": ("读数条数", ""), "baseline": ("基准", ""),
    "z": ("偏离程度", ""), "record_kw": ("近期最高", "kW"), "record_factor": ("纪录倍数", ""),
    "record_days": ("纪录天数", "天"), "day_ratio": ("日电量比", ""),
    "day_kwh": ("当日电量", "kWh"),
    "usual_day_kwh": ("平时日电量", "kWh"), "shape_corr": ("形状相关度", ""),
    "days": ("天数", "天"),
    "threshold_ratio": ("阈值比例", ""), "days_low": ("偏低天数", "天"), "strong": ("强证据", ""),
    "window_ratio": ("时段电量比", ""), "window_hours": ("时段长度", "小时"),
    "swing_ratio": ("波动比", ""), "observed_kwh": ("实测电量", "kWh"),
    "expected_kwh": ("平时电量", "kWh"), "last_reading_at": ("最后读数时间", ""),
    "expected_interval_s": ("采集周期", "秒"), "missed_intervals": ("缺失周期数", ""),
    "last_kw": ("最后负荷", "kW"), "reason": ("原因", ""), "kw": ("负荷", "kW"),
    "kwh": ("电量读数", "kWh"), "previous_kwh": ("上次电量读数", "kWh"),
    "has_export": ("有上网电量", ""), "expected_increment_kwh": ("应增电量", "kWh"),
    "identical_readings": ("相同读数次数", ""), "offset_s": ("偏差", "秒"),
    "interval_s": ("采集周期", "秒"), "clock_invalid_flag": ("时钟无效标志", ""),
    "timestamp": ("时间戳", ""), "previous": ("上一时间戳", ""), "observed_v": ("实测电压", "V"),
    "limit_v": ("电压限值", "V"), "nominal_v": ("额定电压", "V"), "limit_pct": ("限值偏差", "%"),
    "unbalance_pct": ("不平衡度", "%"), "voltage": ("三相电压", "V"), "current": ("三相电流", "A"),
    "observed_pf": ("实测功率因数", ""), "limit_pf": ("功率因数下限", ""),
    "contracted_kva": ("合同容量", "kVA"), "current_kva": ("当前需量", "kVA"),
    "projected_kva": ("预计需量", "kVA"), "projected_crossing": ("预计越限时间", ""),
    "lead_min": ("提前", "分钟"), "trend_kw_per_interval": ("每周期负荷变化", "kW"),
    "horizon_min": ("预测范围", "分钟"), "projected_peak_kva": ("预计峰值需量", "kVA"),
    "forecast": ("预测值", ""), "limit": ("限值", ""), "horizon": ("预测步长", ""),
    "expected_at": ("预计时间", ""), "target_kind": ("对象", ""),
    "silent_meters": ("中断计量点", "个"), "meters_in_cell": ("网格计量点", "个"),
    "share_silent": ("中断比例", ""), "meters_back": ("恢复计量点", "个"),
    "device_id": ("设备", ""), "device_kind": ("设备类型", ""), "site": ("站点", ""),
    "load_of_rated": ("负载率", ""), "kva": ("视在功率", "kVA"), "rated_kva": ("额定容量", "kVA"),
    "current_of_rated": ("电流负载率", ""), "mean_current_a": ("平均电流", "A"),
    "rated_current_a": ("额定电流", "A"), "unbalance": ("不平衡度", ""),
    "current_a": ("A相电流", "A"), "current_b": ("B相电流", "A"), "current_c": ("C相电流", "A"),
    "irradiance_w_m2": ("辐照度", "W/m²"), "oil_temp_c": ("顶层油温", "°C"),
    "winding_temp_c": ("绕组温度", "°C"), "bearing_temp_c": ("轴承温度", "°C"),
    "oil_temp_c_above_model": ("油温高出模型", "°C"),
    "winding_temp_c_above_model": ("绕组温度高出模型", "°C"),
    "bearing_temp_c_above_model": ("轴承温度高出模型", "°C"),
    "sensor": ("传感器", ""), "mode": ("故障方式", ""),
    "hours_outside_shift": ("班次外运行", "小时"),
    "shift": ("班次", ""), "power_above_model_of_rated": ("功率高出模型", ""),
    "flow_m3min": ("流量", "m³/min"),
    "segment": ("用户分群", ""), "segment_candidates_24h": ("同群 24 小时内疑似户数", "户"),
}

_ORDER = {k: i for i, k in enumerate(EVIDENCE_LABELS)}
_warned: set[str] = set()


def _value_zh(value: str) -> str:
    if value in _VALUES:
        return _VALUES[value]
    m = _BASELINE.match(value)
    if m and m["src"] in _SOURCES:
        return f"{_DAYS[m['day']]} {m['hour']} 的{_SOURCES[m['src']]}基准（{m['n']} 个样本）"
    if "," in value and all(p in _VALUES for p in value.split(",")):
        return "、".join(_VALUES[p] for p in value.split(","))
    return value


def _slots(evidence: Mapping[str, Any]) -> dict[str, Any]:
    slots = {k: v for k, v in evidence.items() if v is not None}
    lasted = evidence.get("lasted_min")
    if isinstance(lasted, int | float):
        slots["hours"] = lasted / 60
    energy = evidence.get("energy_kwh")
    if isinstance(energy, int | float):
        slots["energy_abs"] = abs(energy)
    fc, limit = evidence.get("forecast"), evidence.get("limit")
    if isinstance(fc, int | float) and isinstance(limit, int | float) and limit:
        slots["forecast_ratio"] = fc / limit
    if isinstance(evidence.get("kind"), str):
        slots["kind_zh"] = _value_zh(evidence["kind"])
    if isinstance(evidence.get("device_kind"), str):
        slots["device_kind_zh"] = _value_zh(evidence["device_kind"])
    return slots


def summary_text(lang: str, event_type: str, state: str, evidence: Mapping[str, Any] | None,
                 english: str | None) -> str:
    """An alert's summary in ``lang``: the detector's English ``english`` in English; in
    Chinese the type's phrase (``SUMMARIES``) filled from ``evidence``, ``已恢复正常`` for a
    resolved one, and the English summary for a type without a phrase (logged once)."""
    english = english or ""
    if lang != "zh":
        return english
    if state == "resolved":
        return _RESOLVED
    ev = evidence or {}
    slots = _slots(ev)
    kind = ev.get("kind")
    keys = ([f"{event_type}/{kind}"] if isinstance(kind, str) else []) + [event_type]
    known = False
    for key in keys:
        for phrase in SUMMARIES.get(key, ()):
            known = True
            try:
                return phrase.format_map(slots)
            except (KeyError, ValueError, TypeError):
                continue
    why = "its evidence misses a slot" if known else "no Chinese phrase"
    if event_type not in _warned:
        _warned.add(event_type)
        log.warning("summary of %s shown in English: %s", event_type, why)
    return english


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return str(value)


def evidence_items(lang: str, evidence: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The evidence as (label, value) pairs for the reader: in English the keys and values as
    the detector wrote them (keys sorted); in Chinese, in the label table's order, the keys'
    labels (``EVIDENCE_LABELS``, an unknown key shown as is) and the values with their unit,
    known words translated."""
    out: list[tuple[str, str]] = []
    if lang != "zh":
        return [(key, str(value)) for key, value in sorted((evidence or {}).items())]
    # in the order of the label table (what was seen before how it was judged), unknown last
    for key in sorted(evidence or {}, key=lambda k: (_ORDER.get(k, len(_ORDER)), k)):
        value = (evidence or {})[key]
        label, unit = EVIDENCE_LABELS.get(key, (key, ""))
        if value is None:
            text = "-"
        elif isinstance(value, bool):
            text = "是" if value else "否"
        elif key == "segment" and isinstance(value, str):
            text = segment_label(lang, value)
        elif isinstance(value, str):
            text = _value_zh(value)
        else:
            text = _format(value)
        if unit and value is not None and not isinstance(value, bool):
            text = f"{text} {unit}"
        out.append((label, text))
    return out


@functools.lru_cache(maxsize=8)
def _tag_names_at(path: str, lang: str, mtime: float) -> dict[str, str]:
    from gridwatch.tags._catalogue import Catalogue

    return {t.id: t.name(lang) for t in Catalogue.load(path)}


#: (catalogue, lang) -> (when its files' times were last looked at, their newest time)
_SEEN: dict[tuple[str, str], tuple[float, float]] = {}
_RECHECK_S = 5.0


def _mtime(catalogue: str) -> float:
    path = Path(catalogue)
    files = list(path.glob("*.yaml")) if path.is_dir() else [path]
    return max((f.stat().st_mtime for f in files), default=0.0)


def tag_names(lang: str, catalogue: str | Path | None, tags: list[str]) -> list[str]:
    """The tags' names in ``lang`` from the catalogue (``tags_catalogue``, read again when one
    of its files changed, looked at every few seconds); a tag the catalogue does not hold, or
    every tag when it cannot be read, keeps its id (a message or a page never fails for its
    tags' names)."""
    names: dict[str, str] = {}
    if catalogue is not None and tags:
        key = (str(catalogue), lang)
        try:
            now = time.monotonic()
            seen = _SEEN.get(key)
            if seen is None or now - seen[0] > _RECHECK_S:
                seen = (now, _mtime(key[0]))
                _SEEN[key] = seen
            names = _tag_names_at(key[0], lang, seen[1])
        except Exception as exc:
            log.warning("tag names unavailable (%s): %s", catalogue, exc)
    return [names.get(t, t) for t in tags]
