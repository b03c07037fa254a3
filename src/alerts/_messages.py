"""What a notification says and where it goes, as pure functions of values: a recipient's
channels, an alert's context for the templates, and an episode's times (event time, with the
router's wall clock apart). The router reads the rows; these functions only shape them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from gridwatch._i18n_terms import (
    class_name,
    evidence_items,
    segment_label,
    summary_text,
    tag_names,
)
from gridwatch.alerts._config import AlertSettings
from gridwatch.alerts._registry import Registry
from gridwatch.alerts._routes import RouteTree
from gridwatch.alerts._store import parse_ts

__all__ = ["alert_context", "channels_for", "episode_times"]

Channels = tuple[list[tuple[str, str]], str, str, str]

def channels_for(recipient: str, registry: Registry, routes: RouteTree,
                 settings: AlertSettings) -> Channels:
    """(channel, target) pairs, language, audience and display name of a recipient
    (``manager:ID``, ``customer:ID`` or ``receiver:NAME``)."""
    kind, _, ident = recipient.partition(":")
    s = settings
    if kind == "manager":
        mgr = registry.manager(ident)
        if mgr is None:
            return [], s.language, "manager", ident
        out: list[tuple[str, str]] = []
        for ch in mgr.channels:
            if ch == "mqtt":
                out.append(("mqtt", s.manager_topic.format(manager_id=mgr.id)))
            elif ch == "email" and mgr.email:
                out.append(("email", mgr.email))
            elif ch == "webhook" and mgr.webhook:
                out.append(("webhook", mgr.webhook))
            elif ch == "apprise":
                out.extend(("apprise", u) for u in mgr.apprise)
        return out, mgr.language, "manager", mgr.name or mgr.id
    if kind == "customer":
        cust = registry.customer(ident)
        if cust is None:
            return [], s.language, "customer", ident
        out = []
        for ch in cust.channels:
            if ch == "mqtt":
                out.append(("mqtt", s.customer_topic.format(customer_id=cust.id)))
            elif ch == "email" and cust.contacts.email:
                out.append(("email", cust.contacts.email))
            elif ch == "webhook" and cust.contacts.webhook:
                out.append(("webhook", cust.contacts.webhook))
            elif ch == "apprise":
                out.extend(("apprise", u) for u in cust.contacts.apprise)
        return out, cust.language, "customer", cust.name or cust.id
    spec = routes.receivers.get(ident)
    if spec is None:
        return [], s.language, "manager", ident
    lang = spec.language or s.language
    ch = spec.channel
    if ch == "email":
        return [("email", a) for a in spec.email or ()], lang, "manager", ident
    if ch == "apprise":
        return [("apprise", u) for u in spec.apprise or ()], lang, "manager", ident
    target = getattr(spec, ch)
    if ch == "alertmanager" and target == "default":
        target = s.alertmanager_url
    return ([(ch, target)] if target else []), lang, "manager", ident


def episode_times(onset: str, raised_at: str, ends_at: str | None, detected_at: str | None,
                  resolved_detected_at: str | None, timezone: str) -> dict[str, Any]:
    """An episode's times for a message, from their stored form: ``onset``, ``raised_at`` and
    ``ends_at`` are event times (when things happened at the meter), with ``*_local``
    renderings in ``timezone``; ``detected_at`` and ``resolved_detected_at`` the router's wall
    clock when it learnt of them."""
    tz = ZoneInfo(timezone)

    def local(value: str | None) -> str | None:
        t = parse_ts(value)
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if t else None

    def iso(value: str | None) -> str | None:
        t = parse_ts(value)
        return t.isoformat().replace("+00:00", "Z") if t else None

    return {
        "onset": iso(onset), "raised_at": iso(raised_at), "starts_at": iso(onset),
        "ends_at": iso(ends_at), "onset_local": local(onset),
        "raised_at_local": local(raised_at), "ends_at_local": local(ends_at),
        "detected_at": iso(detected_at), "resolved_detected_at": iso(resolved_detected_at),
    }


def alert_context(row: Mapping[str, Any], kind: str, *, registry: Registry,
                  labels: Mapping[str, Any], settings: AlertSettings,
                  resolved_at: str | None,
                  tag_notes: Callable[[str, Any], list[dict[str, Any]]] | None = None
                  ) -> dict[str, Any]:
    """One alert as the templates and the channels see it: who, what, how far from usual, and
    when (see :func:`episode_times`). ``row`` is the stored alert, ``labels`` its routing
    labels, ``resolved_at`` the wall-clock time the router closed it (if it did);
    ``tag_notes(customer_id, day)`` the customer's tags with their reasons as of the day the
    alert was raised. The context's ``tag_notes`` are the few that matter for the alert's type
    (``config/tags/relevance.yaml`` beside the catalogue; each: tag, reason, reasons per
    language, since, days, became), ``tag_notes_more`` how many more the workspace's customer
    page (``customer_path``) shows. ``zh`` holds what a Chinese reader sees: the summary
    rendered from the evidence, the evidence as (label, value) pairs, the segment and the
    customer class (the English ids stay in ``segment``, ``customer_class`` and ``labels``
    for routing)."""
    times = episode_times(row["onset"], row["raised_at"], row["ends_at"], row["starts_at"],
                          resolved_at, settings.quiet_hours.timezone)
    raised = parse_ts(row["raised_at"])
    notes = tag_notes(row["customer_id"], raised.date()) \
        if tag_notes is not None and row["customer_id"] and raised is not None else []
    more = 0
    if notes:
        from gridwatch.tags._relevance import relevance_for

        shown, more = relevance_for(getattr(settings, "tags_catalogue", None)).select(
            row["type"], notes)
        notes = [dict(n) for n in shown]
    cust = registry.customer(row["customer_id"]) if row["customer_id"] else None
    evidence = json.loads(row["evidence"])
    kw = evidence.get("observed_kw", evidence.get("kw"))
    expected = evidence.get("expected_kw")
    above = None
    if isinstance(kw, int | float) and isinstance(expected, int | float) and expected > 0:
        above = round(100.0 * (kw - expected) / expected)
    kva_pct = None
    demand = next((evidence[k] for k in ("current_kva", "demand_kva", "kva")
                   if isinstance(evidence.get(k), int | float)), None)
    contracted = evidence.get("contracted_kva") or (cust.contracted_kva if cust else None)
    if isinstance(demand, int | float) and isinstance(contracted, int | float) and contracted:
        kva_pct = round(100.0 * demand / contracted)
    state = row["state"]
    return {
        "fingerprint": row["fingerprint"], "episode": row["episode"], "kind": kind,
        "state": state, "state_status": "resolved" if state == "resolved" else "firing",
        "type": row["type"], "severity": row["severity"], "score": round(row["score"], 3),
        "meter_id": row["meter_id"], "customer_id": row["customer_id"],
        "customer_name": cust.name if cust else None,
        "customer_class": labels["customer_class"], "grid_cell": row["grid_cell"],
        "summary": row["summary"], "evidence": evidence, "tags": list(labels["tags"]),
        "segment": labels["segment"], "tag_notes": notes,
        "zh": {"summary": summary_text("zh", row["type"], state, evidence, row["summary"]),
               "evidence": evidence_items("zh", evidence),
               "segment": segment_label("zh", labels["segment"]),
               "tags": tag_names("zh", getattr(settings, "tags_catalogue", None),
                                 list(labels["tags"])),
               "customer_class": class_name("zh", labels["customer_class"])},
        "tag_notes_more": more,
        "customer_path": f"/customer/{row['customer_id']}" if row["customer_id"] else None,
        "kw": kw, "expected_kw": expected,
        "above_pct": above, "kva_pct": kva_pct, "acked_by": row["acked_by"],
        **times,
        "labels": {"alertname": row["type"], "severity": row["severity"],
                   "meter_id": row["meter_id"], "customer_id": row["customer_id"],
                   "grid_cell": row["grid_cell"],
                   "customer_class": labels["customer_class"]},
        "annotations": {"summary": row["summary"] or row["type"],
                        "score": f"{row['score']:.3g}",
                        "onset": times["onset"], "episode": str(row["episode"])},
    }
