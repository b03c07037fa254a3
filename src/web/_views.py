"""The pages: a manager's alert list, alert, customer and cell pages, the digest; a customer
contact's portal. Each checks access through ``_access`` before it reads anything else."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gridwatch.tags._notes import TagNotes, tags_db_path, tags_row_id
from gridwatch.web import _accounts as acc
from gridwatch.web import _alertdb as adb
from gridwatch.web._access import (
    can_see_alert,
    can_see_cell,
    can_see_customer,
    cells_of,
)
from gridwatch.web._app import Workspace, _client, authed, not_found
from gridwatch.web._chart import bar_chart, expected_band, load_chart
from gridwatch.web._i18n import translate
from gridwatch.web._store import parse_ts
from gridwatch.web._verdicts import VERDICTS, record_verdict, verdicts_of

__all__ = ["LoadWindow", "fetch_load", "view_routes"]

log = logging.getLogger("gridwatch.web")


@dataclass
class LoadWindow:
    readings: list[tuple[datetime, float]] = field(default_factory=list)
    scores: list[tuple[datetime, float, float, float]] = field(default_factory=list)
    error: str | None = None


def fetch_load(ws: Workspace, meter_id: str, start: datetime, end: datetime) -> LoadWindow:
    """Readings and detector scores of one meter from InfluxDB (blocking: call it in a
    thread). A failed query gives an empty window with the error, never an exception."""
    from gridwatch.storage._reader import InfluxReader, ReadError, quote

    out = LoadWindow()
    if not ws.settings.influx.enabled:
        out.error = "InfluxDB is not enabled"
        return out
    try:
        with InfluxReader(ws.settings.influx) as reader:
            for r in reader.readings(meter_id, start, end):
                out.readings.append((r.ts, r.kw))
            q = reader._select("score", [f"meter_id = {quote(meter_id)}"], start, end)
            for row in reader.rows(q):
                out.scores.append((datetime.fromtimestamp(row["time"] / 1e9, start.tzinfo),
                                   float(row.get("kw", "nan")),
                                   float(row.get("expected_kw", "nan")),
                                   float(row.get("score", 0.0))))
    except (ReadError, ValueError, KeyError) as exc:
        out.error = str(exc)
    return out


def _lang(request: Request) -> str:
    sess: acc.Session = request.state.session
    return sess.user.language


def _fp(request: Request) -> str:
    return f"{request.path_params['meter']}/{request.path_params['type']}"


def _wants_json(request: Request) -> bool:
    return request.query_params.get("format") == "json"


def view_routes(ws: Workspace) -> list[Route]:
    web = ws.settings.web

    async def chart_for(request: Request, meter_id: str, center: datetime | None,
                        hours: float, marks: list[tuple[datetime, str]],
                        end: datetime | None = None) -> Markup:
        lang = _lang(request)
        if center is not None:
            start, stop = center - timedelta(hours=hours / 2), center + timedelta(hours=hours / 2)
        else:
            stop = end or ws.clock()
            start = stop - timedelta(hours=hours)
        window: LoadWindow = await run_in_threadpool(fetch_load, ws, meter_id, start, stop)
        det = ws.settings.detection
        band = expected_band(window.scores, det.band_hi, det.band_lo)
        labels = {k: translate(lang, k) for k in ("readings", "band", "onset", "raised",
                                                   "no_data")}
        labels["title"] = f"{translate(lang, 'load_curve')} {meter_id}"
        if window.error:
            labels["no_data"] = f"{translate(lang, 'data_unavailable')}"
        return load_chart(window.readings, band, marks, start=start, end=stop, labels=labels)

    # -------------------------------------------------------------- manager: alert list
    @authed(ws, "manager")
    async def alerts_page(request: Request) -> Response:
        sess: acc.Session = request.state.session
        reg = ws.registry
        mine = cells_of(reg, sess.user)
        q = request.query_params
        cell = q.get("cell") or None
        cells = [cell] if cell in mine else mine
        state = q.get("state", "open")
        states = {"open": adb.OPEN_STATES, "firing": ("firing",),
                  "acknowledged": ("acknowledged",), "resolved": ("resolved",)}.get(
            state, adb.OPEN_STATES)
        cls = q.get("class") or None
        customer_ids = ([c.id for c in reg.customers if c.customer_class.value == cls]
                        if cls else None)
        try:
            offset = max(int(q.get("offset", "0")), 0)
        except ValueError:
            offset = 0
        with ws.lock:
            page = adb.list_alerts(ws.db, cells, states=states, type_=q.get("type") or None,
                                   customer_ids=customer_ids, tag=q.get("tag") or None,
                                   limit=web.page_size, offset=offset)
        if _wants_json(request):
            return JSONResponse({"total": page.total, "offset": page.offset,
                                 "alerts": page.rows, "cells": mine})
        names = {c.id: c.name for c in reg.customers if c.grid_cell in mine}
        query = urlencode([(k, v) for k, v in q.items() if k != "offset" and v])
        ctx = dict(page=page, cells=mine, filters=dict(q), names=names, query=query,
                   classes=["residential", "commercial", "industrial", "agricultural"])
        if request.headers.get("hx-request"):
            return ws.render(request, "_alert_rows.html", **ctx)
        return ws.render(request, "alerts.html", **ctx)

    # -------------------------------------------------------------- manager: one alert
    def visible_alert(request: Request) -> dict[str, Any] | None:
        sess: acc.Session = request.state.session
        with ws.lock:
            alert = adb.alert(ws.db, _fp(request))
        if alert is None or sess.user.role != "manager" or \
                not can_see_alert(ws.registry, sess.user, alert):
            return None
        return alert

    def marks_of(alert: dict[str, Any]) -> list[tuple[datetime, str]]:
        return [(parse_ts(alert["onset"]), "onset"), (parse_ts(alert["raised_at"]), "raised")]

    def hours_of(request: Request) -> float:
        try:
            return min(max(float(request.query_params.get("hours", web.chart_hours)), 1.0),
                       24 * 31)
        except ValueError:
            return web.chart_hours

    @authed(ws, "manager")
    async def alert_page(request: Request) -> Response:
        alert = visible_alert(request)
        if alert is None:
            return not_found(ws, request)
        reg = ws.registry
        cust = reg.customer(alert["customer_id"]) if alert["customer_id"] else None
        with ws.lock:
            trail = adb.alert_trail(ws.db, alert["fingerprint"])
            verdicts = verdicts_of(ws.db, alert["fingerprint"])
            segment, tags = adb.profile(ws.db, [*(m.id for m in cust.meters),
                                                tags_row_id(cust.id)] if cust else
                                        [alert["meter_id"]])
        notes, changes = await run_in_threadpool(_tag_notes, ws, cust.id if cust else None,
                                                 _lang(request))
        if _wants_json(request):
            return JSONResponse({"alert": alert, "audit": trail, "verdicts": verdicts,
                                 "profile": {"segment": segment, "tags": tags,
                                             "tag_notes": notes, "tag_history": changes}})
        hours = hours_of(request)
        center = parse_ts(alert["onset"]) + (parse_ts(alert["raised_at"]) -
                                             parse_ts(alert["onset"])) / 2
        chart = await chart_for(request, alert["meter_id"], center, hours, marks_of(alert))
        _, curve = await run_in_threadpool(_profiles, ws, [alert["meter_id"]], 30)
        curve_chart = bar_chart([(f"{h:02d}", v) for h, v in enumerate(curve)],
                                title="kW") if curve else None
        return ws.render(request, "alert.html", alert=alert, customer=cust, trail=trail,
                         verdicts=verdicts, segment=segment, tags=tags, chart=chart,
                         tag_notes=notes, tag_history=changes,
                         curve_chart=curve_chart,
                         hours=hours, verdict_names=VERDICTS, zooms=(6, 24, 72, 168))

    @authed(ws, "manager")
    async def alert_chart(request: Request) -> Response:
        alert = visible_alert(request)
        if alert is None:
            return not_found(ws, request)
        hours = hours_of(request)
        center = parse_ts(alert["onset"]) + (parse_ts(alert["raised_at"]) -
                                             parse_ts(alert["onset"])) / 2
        chart = await chart_for(request, alert["meter_id"], center, hours, marks_of(alert))
        return ws.render(request, "_chart.html", chart=chart, alert=alert, hours=hours,
                         zooms=(6, 24, 72, 168))

    async def act(request: Request, action: str) -> Response:
        from gridwatch.alerts._router import UnknownAlert

        sess: acc.Session = request.state.session
        alert = visible_alert(request)
        if alert is None:
            with ws.lock:
                acc.audit(ws.db, ws.clock(), sess.user.username, "denied",
                          f"alert:{_fp(request)}", action, client=_client(request))
            return not_found(ws, request)
        form = await request.form()
        by = f"web:{sess.user.username}"
        fp = alert["fingerprint"]
        now = ws.clock()
        detail = ""
        try:
            if action == "ack":
                ws.router.ack(fp, by=by, now=now)
            elif action == "resolve":
                detail = str(form.get("reason", "")).strip()[:500]
                ws.router.resolve(fp, by=by, now=now, reason=detail)
            else:
                verdict = str(form.get("verdict", ""))
                if verdict not in VERDICTS:
                    return Response(f"unknown verdict {verdict!r}", status_code=400)
                note = str(form.get("note", ""))
                detail = f"{verdict}: {note.strip()[:200]}" if note.strip() else verdict
                with ws.lock:
                    record_verdict(ws.db, alert, verdict, note, sess.user.username, now)
        except UnknownAlert:
            detail = "alert is no longer open"
        with ws.lock:
            acc.audit(ws.db, now, sess.user.username, action if action != "verdict" else
                      "verdict", f"alert:{fp}", detail, client=_client(request))
        if action == "verdict":
            await run_in_threadpool(ws.export_verdicts)
        return RedirectResponse(f"/alert/{fp}", status_code=303)

    @authed(ws, "manager", post=True)
    async def ack(request: Request) -> Response:
        return await act(request, "ack")

    @authed(ws, "manager", post=True)
    async def resolve(request: Request) -> Response:
        return await act(request, "resolve")

    @authed(ws, "manager", post=True)
    async def verdict(request: Request) -> Response:
        return await act(request, "verdict")

    # -------------------------------------------------------------- customer and cell pages
    @authed(ws)
    async def customer_page(request: Request) -> Response:
        sess: acc.Session = request.state.session
        cid = request.path_params["customer"]
        reg = ws.registry
        if not can_see_customer(reg, sess.user, cid):
            return not_found(ws, request)
        if sess.user.role == "customer":
            return RedirectResponse("/portal", status_code=303)
        cust = reg.customer(cid)
        assert cust is not None
        meters = [m.id for m in cust.meters]
        with ws.lock:
            history = adb.alerts_of_customer(ws.db, cid)
            segment, tags = adb.profile(ws.db, [*meters, tags_row_id(cid)])
        notes, changes = await run_in_threadpool(_tag_notes, ws, cid, _lang(request))
        daily, curve = await run_in_threadpool(_profiles, ws, meters, 30)
        if _wants_json(request):
            return JSONResponse({"customer": cust.model_dump(mode="json", by_alias=True),
                                 "alerts": history, "daily_kwh": daily, "curve": curve,
                                 "segment": segment, "tags": tags, "tag_notes": notes,
                                 "tag_history": changes})
        charts = []
        for m in meters[:4]:
            charts.append((m, await chart_for(request, m, None, 24 * 30, [])))
        return ws.render(
            request, "customer.html", customer=cust, history=history, segment=segment,
            tags=tags, tag_notes=notes, tag_history=changes, load_charts=charts,
            daily_chart=bar_chart([(d[5:], v) for d, v in daily], title="kWh"),
            curve_chart=bar_chart([(f"{h:02d}", v) for h, v in enumerate(curve)],
                                  title="kW") if curve else None)

    @authed(ws, "manager")
    async def cell_page(request: Request) -> Response:
        sess: acc.Session = request.state.session
        cell_id = request.path_params["cell"]
        reg = ws.registry
        if not can_see_cell(reg, sess.user, cell_id):
            return not_found(ws, request)
        with ws.lock:
            fig = adb.cell_figures(ws.db, cell_id, ws.clock())
        customers = [c for c in reg.customers if c.grid_cell == cell_id]
        if _wants_json(request):
            return JSONResponse({"cell": cell_id, "per_day": fig.per_day, "by_type": fig.by_type,
                                 "verdicts": fig.verdicts, "median_ack_min": fig.median_ack_min,
                                 "open_alerts": fig.open_alerts,
                                 "customers": [c.id for c in customers]})
        return ws.render(request, "cell.html", cell=reg.cell(cell_id), fig=fig,
                         customers=customers,
                         per_day_chart=bar_chart([(d[5:], n) for d, n in fig.per_day]))

    @authed(ws, "manager")
    async def digest_page(request: Request) -> Response:
        sess: acc.Session = request.state.session
        from gridwatch.web._digest import send_state

        with ws.lock:
            rows = [dict(r) for r in ws.db.execute(
                "SELECT week_start, created_at, body FROM web_digests WHERE manager_id=? "
                "ORDER BY week_start DESC LIMIT 8", (sess.user.subject,))]
            for r in rows:
                # how the week's email went (none: built by hand, never sent)
                r["send"] = send_state(ws.db, sess.user.subject, r["week_start"])
        for r in rows:
            r["body"] = json.loads(r["body"])
        return ws.render(request, "digest.html", digests=rows)

    # -------------------------------------------------------------- customer portal
    @authed(ws, "customer")
    async def portal(request: Request) -> Response:
        sess: acc.Session = request.state.session
        cust = ws.registry.customer(sess.user.subject)
        if cust is None:
            return not_found(ws, request)
        with ws.lock:
            notices = adb.alerts_of_customer(ws.db, cust.id, notices_only=True)
            segment, tags = adb.profile(ws.db, [m.id for m in cust.meters])
        if _wants_json(request):
            return JSONResponse({"customer": cust.id, "notices": notices})
        charts = []
        for m in [m.id for m in cust.meters][:4]:
            charts.append((m, await chart_for(request, m, None, 24 * 7, [])))
        _, curve = await run_in_threadpool(_profiles, ws, [m.id for m in cust.meters], 30)
        return ws.render(request, "portal.html", customer=cust, notices=notices,
                         segment=segment, tags=tags, load_charts=charts,
                         curve_chart=bar_chart([(f"{h:02d}", v) for h, v in enumerate(curve)])
                         if curve else None)

    def visible_notice(request: Request) -> dict[str, Any] | None:
        sess: acc.Session = request.state.session
        with ws.lock:
            alert = adb.alert(ws.db, _fp(request))
        if alert is None or not can_see_alert(ws.registry, sess.user, alert):
            return None
        return alert

    @authed(ws, "customer")
    async def notice_page(request: Request) -> Response:
        alert = visible_notice(request)
        if alert is None:
            return not_found(ws, request)
        with ws.lock:
            acked = ws.db.execute(
                "SELECT at FROM web_notice_acks WHERE fingerprint=? AND episode=? AND "
                "customer_id=?", (alert["fingerprint"], alert["episode"],
                                  alert["customer_id"])).fetchone()
        center = parse_ts(alert["onset"])
        chart = await chart_for(request, alert["meter_id"], center, web.chart_hours,
                                marks_of(alert))
        return ws.render(request, "notice.html", alert=alert, chart=chart,
                         acked_at=acked["at"] if acked else None)

    @authed(ws, "customer", post=True)
    async def notice_ack(request: Request) -> Response:
        sess: acc.Session = request.state.session
        alert = visible_notice(request)
        if alert is None:
            with ws.lock:
                acc.audit(ws.db, ws.clock(), sess.user.username, "denied",
                          f"alert:{_fp(request)}", "notice_ack", client=_client(request))
            return not_found(ws, request)
        now = ws.clock()
        from gridwatch.web._store import ts

        with ws.lock:
            ws.db.execute("INSERT OR IGNORE INTO web_notice_acks(fingerprint, episode, "
                          "customer_id, by, at) VALUES (?,?,?,?,?)",
                          (alert["fingerprint"], alert["episode"], alert["customer_id"],
                           sess.user.username, ts(now)))
            acc.audit(ws.db, now, sess.user.username, "notice_acknowledged",
                      f"alert:{alert['fingerprint']}", client=_client(request))
        return RedirectResponse(f"/portal/notice/{alert['fingerprint']}", status_code=303)

    return [
        Route("/alerts", alerts_page),
        Route("/alert/{meter}/{type}", alert_page),
        Route("/alert/{meter}/{type}/chart", alert_chart),
        Route("/alert/{meter}/{type}/ack", ack, methods=["POST"]),
        Route("/alert/{meter}/{type}/resolve", resolve, methods=["POST"]),
        Route("/alert/{meter}/{type}/verdict", verdict, methods=["POST"]),
        Route("/customer/{customer}", customer_page),
        Route("/cell/{cell}", cell_page),
        Route("/digest", digest_page),
        Route("/portal", portal),
        Route("/portal/notice/{meter}/{type}", notice_page),
        Route("/portal/notice/{meter}/{type}/ack", notice_ack, methods=["POST"]),
    ]


def _tag_notes(ws: Workspace, customer_id: str | None, lang: str = "en"
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """The customer's tags with their reasons (in each language) and its recent tag changes
    (in ``lang``), from the tag store (as of the last day the engine evaluated them); none
    when the store cannot be read."""
    if customer_id is None:
        return [], []
    notes = TagNotes(tags_db_path(ws.settings.alerts))
    try:
        return ([n.as_dict() for n in notes.current(customer_id)],
                notes.history(customer_id, lang=lang))
    except (sqlite3.Error, OSError, ValueError) as exc:
        log.warning("customer tags unavailable: %s", exc)
        return [], []


def _profiles(ws: Workspace, meter_ids: list[str], days: int
              ) -> tuple[list[tuple[str, float]], list[float]]:
    """Daily kWh (summed over the meters) and the latest typical-day curve, from the load
    profiles in InfluxDB; empty when InfluxDB cannot be read."""
    from gridwatch.storage._reader import InfluxReader, ReadError

    if not ws.settings.influx.enabled or not meter_ids:
        return [], []
    end = ws.clock()
    start = end - timedelta(days=days)
    daily: dict[str, float] = {}
    curve: list[float] = []
    try:
        with InfluxReader(ws.settings.influx) as reader:
            for m in meter_ids[:20]:
                profiles = reader.profiles(m, start, end)
                for p in profiles:
                    key = p.day.strftime("%Y-%m-%d")
                    daily[key] = daily.get(key, 0.0) + p.daily_kwh
                if profiles and profiles[-1].curve:
                    last = list(profiles[-1].curve)
                    curve = [a + b for a, b in zip(curve, last, strict=False)] if curve else last
    except (ReadError, ValueError) as exc:
        log.warning("load profiles unavailable: %s", exc)
    return sorted(daily.items()), curve
