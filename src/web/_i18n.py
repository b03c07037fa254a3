"""The workspace's words in English and Chinese; each account chooses its language."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridwatch._i18n_terms import (
    class_name,
    evidence_items,
    segment_label,
    summary_text,
    tag_names,
)

__all__ = ["LANGUAGES", "advice", "audit_text", "reader_terms", "translate", "type_name"]

LANGUAGES = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    # key: (en, zh)
    "app": ("gridwatch workspace", "gridwatch 工作台"),
    "login": ("Log in", "登录"),
    "logout": ("Log out", "退出"),
    "username": ("User name", "用户名"),
    "password": ("Password", "密码"),
    "bad_login": ("Wrong user name or password.", "用户名或密码错误。"),
    "too_many": ("Too many failed logins; try again later.", "登录失败次数过多，请稍后再试。"),
    "my_alerts": ("My open alerts", "我的待处理告警"),
    "my_cells": ("My cells", "我的网格"),
    "cell": ("Cell", "网格"),
    "type": ("Type", "类型"),
    "class": ("Customer class", "客户类别"),
    "tag": ("Profile tag", "画像标签"),
    "state": ("State", "状态"),
    "all": ("all", "全部"),
    "open": ("open", "未关闭"),
    "firing": ("firing", "告警中"),
    "acknowledged": ("acknowledged", "已确认"),
    "resolved": ("resolved", "已解除"),
    "severity": ("Severity", "级别"),
    "critical": ("critical", "严重"),
    "warning": ("warning", "警告"),
    "info": ("info", "提示"),
    "since": ("Since", "开始于"),
    "customer": ("Customer", "客户"),
    "meter": ("Meter", "电表"),
    "filter": ("Filter", "筛选"),
    "shown": ("shown", "显示"),
    "of": ("of", "共"),
    "next": ("next", "下一页"),
    "prev": ("previous", "上一页"),
    "no_alerts": ("No open alerts.", "没有待处理告警。"),
    "load_curve": ("Load around the event", "事件前后负荷曲线"),
    "readings": ("readings", "实测"),
    "expected": ("expected", "预期"),
    "band": ("expected band", "预期范围"),
    "onset": ("onset", "开始"),
    "raised": ("raised", "告警"),
    "no_data": ("No load data for this window.", "该时段无负荷数据。"),
    "data_unavailable": ("Load data unavailable", "负荷数据暂不可用"),
    "evidence": ("Evidence", "证据"),
    "profile": ("Customer profile", "客户画像"),
    "segment": ("Segment", "用电类型"),
    "tags": ("Tags", "标签"),
    "tag_reasons": ("Why these tags", "标签依据"),
    "tag_history": ("Tag history", "标签变化"),
    "dimension_basic": ("Basic attributes", "基本属性"),
    "dimension_usage": ("Usage behaviour", "用电行为"),
    "dimension_value": ("Value", "客户价值"),
    "dimension_needs": ("Needs", "服务需求"),
    "typical_day": ("Typical day", "典型日曲线"),
    "audit": ("Audit trail", "操作记录"),
    "ack": ("Acknowledge", "确认"),
    "resolve": ("Resolve", "解除"),
    "reason": ("Reason", "原因"),
    "verdict": ("Verdict", "结论"),
    "confirmed": ("confirmed", "属实"),
    "false_alarm": ("false alarm", "误报"),
    "site_visit": ("site visit needed", "需现场核查"),
    "note": ("Note", "备注"),
    "save": ("Save", "保存"),
    "zoom": ("Zoom", "缩放"),
    "hours": ("h", "小时"),
    "customer_page": ("Customer", "客户详情"),
    "last_30": ("Last 30 days", "近30天"),
    "alert_history": ("Alert history", "告警历史"),
    "cell_page": ("Cell report", "网格报告"),
    "customers": ("Customers", "客户"),
    "alerts_per_day": ("Alerts per day", "每日告警数"),
    "verdicts": ("Verdicts", "结论"),
    "median_ack": ("Median time to acknowledge", "确认用时中位数"),
    "minutes": ("min", "分钟"),
    "open_alerts": ("Open alerts", "未关闭告警"),
    "notices": ("My notices", "我的通知"),
    "no_notices": ("No notices.", "暂无通知。"),
    "my_load": ("My load, last 7 days", "近7天负荷"),
    "advice": ("What to do", "建议"),
    "ack_notice": ("Mark as read", "标记已读"),
    "noted": ("read", "已读"),
    "digest": ("Weekly digest", "每周摘要"),
    "no_digest": ("No digest yet.", "暂无摘要。"),
    "digest_sent": ("Emailed to", "已发送至"),
    "digest_failed": ("Email failed", "邮件发送失败"),
    "digest_claimed": ("Being emailed since", "正在发送，开始于"),
    "digest_kept": ("Kept here only (no email)", "仅保存在工作台（未发邮件）"),
    "language": ("中文", "English"),
    "not_found": ("Not found.", "未找到。"),
    "forbidden": ("The form has expired; reload the page.", "表单已失效，请刷新页面。"),
    "done": ("Done.", "已完成。"),
    "contracted": ("Contracted capacity", "合同容量"),
    "kw": ("kW", "千瓦"),
    "updated": ("updated", "更新于"),
}

def translate(lang: str, key: str) -> str:
    pair = _WORDS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "zh" else pair[0]


def advice(lang: str, event_type: str, messages: dict[str, Any] | None = None) -> str:
    """What the reader should do about ``event_type``: the alert messages' advice
    (``messages.yaml`` beside the alert templates), else a general sentence."""
    text = ((messages or {}).get(lang) or {}).get("advice", {}).get(event_type)
    if text:
        return str(text)
    return ("Your account manager has been told and will contact you if needed."
            if lang != "zh" else "客户经理已收到通知，如有需要会与您联系。")


def type_name(lang: str, event_type: str, messages: dict[str, Any] | None = None) -> str:
    """The readable name of an event type, from the alert messages; the identifier else."""
    return str(((messages or {}).get(lang) or {}).get("names", {}).get(event_type, event_type))


#: The audit trail's actions and words in Chinese (the stored records stay English).
_AUDIT_ZH: dict[str, str] = {
    "firing": "告警", "routed": "已分派", "notified": "已通知", "summarized": "已汇总通知",
    "acknowledged": "已确认", "ack_repeated": "重复确认", "resolved": "已解除",
    "escalated": "已升级", "inhibited": "被抑制", "uninhibited": "解除抑制",
    "silenced": "已静默", "unsilenced": "解除静默", "suppressed_by_silence": "静默中未通知",
    "unrouted": "无接收人", "customer_not_notified": "未通知客户",
    "severity_raised": "级别上调", "replay_ignored": "重放已忽略",
    "resolve_unknown": "未知告警的解除",
    "delivered": "已送达", "delivery_retry": "重试发送", "delivery_failed": "发送失败",
    "undeliverable": "无法送达", "verdict": "结论", "notice_acknowledged": "客户已读",
    "held_quiet_hours": "免打扰时段暂缓", "held_rate_limited": "频率限制暂缓",
    "detector": "检测引擎", "info": "提示", "warning": "警告", "critical": "严重",
    "escalation": "升级", "update": "更新", "repeat": "重复提醒", "via": "经", "by": "由",
    "score": "分值", "customer": "客户", "manager": "客户经理", "receiver": "接收方",
    "confirmed": "属实", "false_alarm": "误报", "site_visit": "需现场核查",
}
_AUDIT_WORD = re.compile(r"[A-Za-z_]+")


def audit_text(lang: str, text: str | None) -> str:
    """An audit entry's action, author or detail for the reader: in Chinese the trail's own
    words (``_AUDIT_ZH``) are translated, ids, channel names and numbers kept."""
    if not text or lang != "zh":
        return text or ""
    return _AUDIT_WORD.sub(lambda m: _AUDIT_ZH.get(m.group(0), m.group(0)),
                           text.replace("=", " ").replace(":", " "))


def reader_terms(lang: str, catalogue: str | Path | None = None) -> dict[str, Any]:
    """The template helpers that show an alert's words in ``lang`` (``gridwatch._i18n_terms``):
    ``seg(name)`` a segment, ``cls(value)`` a customer class, ``summ(alert)`` the summary,
    ``evid(evidence)`` the evidence as (label, value) pairs, ``tagn(tag)`` a tag's name in
    Chinese (its id in English), ``audit(text)`` an audit entry's words. The
    stored ids stay what routes and links use."""

    def summ(alert: Mapping[str, Any]) -> str:
        ev = alert.get("evidence")
        if isinstance(ev, str):
            try:
                ev = json.loads(ev)
            except ValueError:
                ev = {}
        return summary_text(lang, str(alert.get("type")), str(alert.get("state")),
                            ev if isinstance(ev, dict) else {}, alert.get("summary"))

    def evid(evidence: Any) -> list[tuple[str, str]]:
        if isinstance(evidence, str):
            try:
                evidence = json.loads(evidence)
            except ValueError:
                return [("evidence", evidence)]
        return evidence_items(lang, evidence if isinstance(evidence, dict) else {})

    def tagn(tag: str) -> str:
        return tag_names(lang, catalogue, [tag])[0] if lang == "zh" else tag

    return {"seg": lambda name: segment_label(lang, name),
            "cls": lambda value: class_name(lang, value), "summ": summ, "evid": evid,
            "tagn": tagn, "audit": lambda text: audit_text(lang, text)}
