"""The workspace application: one Starlette app, routes in one table, pages rendered on the
server with Jinja2, htmx fragments for the parts that refresh.

Every request is served by a :class:`Workspace` (settings, database, registry, clock), built
once and passed in; nothing reads settings at import time.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gridwatch.alerts._registry import Registry, RegistryError
from gridwatch.web import _accounts as acc
from gridwatch.web._i18n import advice, reader_terms, translate, type_name
from gridwatch.web._store import connect

if TYPE_CHECKING:
    from gridwatch._settings import Settings
    from gridwatch.alerts._router import Router

__all__ = ["Workspace"]

log = logging.getLogger("gridwatch.web")

SESSION_COOKIE = "gw_session"
LOGIN_COOKIE = "gw_login"
STATIC = Path(__file__).parent / "static"
#: How often pending verdicts are retried towards InfluxDB while the app runs.
EXPORT_EVERY_S = 60.0
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


def utcnow() -> datetime:
    return datetime.now(UTC)


def secret_key(settings: Settings) -> str:
    """The key signing cookies: the configured one, else one kept in ``web.secret_file``
    (created with mode 0600 on first use)."""
    if settings.web.secret_key is not None:
        return settings.web.secret_key.get_secret_value()
    path = settings.web.secret_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError), \
                open(path, "x", encoding="ascii") as fh:
            path.chmod(0o600)
            fh.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()


class Workspace:
    """What every request needs: settings, the database, the registry (reloaded when its file
    changes), the alert router for state changes, the InfluxDB reader and writer, the clock."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None
                 ) -> None:
        self.settings = settings
        self.clock = clock or utcnow
        self.db_path = settings.web.db or settings.alerts.state_db
        self.db: sqlite3.Connection = connect(self.db_path)
        self.lock = threading.RLock()
        self._registry: Registry | None = None
        self._registry_mtime: float | None = None
        self._router: Router | None = None
        self._writer: Any = None
        self.signer = URLSafeTimedSerializer(secret_key(settings), salt="gridwatch-web")
        self.messages = _messages(settings.alerts.templates / "messages.yaml")
        self.env = Environment(loader=PackageLoader("gridwatch.web", "templates"),
                               autoescape=select_autoescape(["html"]))

    @property
    def registry(self) -> Registry:
        """The registry, reloaded when its file changes; a broken new file keeps the old one."""
        path = self.settings.alerts.registry
        try:
            mtime: float | None = path.stat().st_mtime
        except OSError:
            mtime = None
        if self._registry is None:
            self._registry = Registry.load(path)
            self._registry_mtime = mtime
        elif mtime is not None and mtime != self._registry_mtime:
            self._registry_mtime = mtime
            try:
                self._registry = Registry.load(path)
            except RegistryError as exc:
                log.error("registry reload failed, keeping the previous one: %s", exc)
        return self._registry

    @property
    def router(self) -> Router:
        if self._router is None:
            from gridwatch.alerts._service import build_router

            self._router = build_router(self.settings, notifiers={})
        return self._router

    def writer(self) -> Any:
        if self._writer is None:
            from gridwatch.storage._writer import build_writer

            self._writer = build_writer(self.settings.influx)
        return self._writer

    def export_verdicts(self) -> int:
        """Write pending verdicts to InfluxDB; on failure they stay pending for the next try."""
        from gridwatch.web._verdicts import export_pending

        if not self.settings.influx.enabled:
            return 0
        try:
            with self.lock:
                return export_pending(self.db, self.writer())
        except Exception as exc:  # any write error: the verdicts stay pending
            log.warning("verdicts not exported to InfluxDB yet: %s", exc)
            return 0

    def close(self) -> None:
        if self._router is not None:
            self._router.close()
        if self._writer is not None:
            self._writer.close()
        self.db.close()

    # ------------------------------------------------------------------ rendering
    def render(self, request: Request, template: str, status: int = 200,
               **context: Any) -> HTMLResponse:
        sess: acc.Session | None = getattr(request.state, "session", None)
        lang = sess.user.language if sess else request.query_params.get("lang", "zh")
        if lang not in ("zh", "en"):
            lang = "zh"

        def t(key: str) -> str:
            return translate(lang, key)

        def tn(event_type: str) -> str:
            return type_name(lang, event_type, self.messages)

        def tip(event_type: str) -> str:
            return advice(lang, event_type, self.messages)

        html = self.env.get_template(template).render(
            request=request, session=sess, user=sess.user if sess else None,
            csrf=sess.csrf if sess else "", t=t, tn=tn, tip=tip, lang=lang,
            poll_s=self.settings.web.poll_s,
            **reader_terms(lang, getattr(self.settings.alerts, "tags_catalogue", None)),
            **context)
        return HTMLResponse(html, status_code=status)


def _messages(path: Path) -> dict[str, Any]:
    """Names of event types and advice per language, shared with the alert messages; empty
    when the file is missing or unreadable (identifiers are shown then)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        log.warning("event type names unavailable (%s): %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------- middleware-ish
Handler = Callable[[Request], Awaitable[Response]]


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _session(ws: Workspace, request: Request) -> acc.Session | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        sid = ws.signer.loads(raw, max_age=ws.settings.web.session_ttl_s)
    except BadSignature:
        return None
    if not isinstance(sid, str):
        return None
    with ws.lock:
        return acc.session_user(ws.db, sid, ws.clock())


def not_found(ws: Workspace, request: Request) -> HTMLResponse:
    return ws.render(request, "error.html", status=404, message_key="not_found")


def authed(ws: Workspace, role: str | None = None, *, post: bool = False
           ) -> Callable[[Handler], Handler]:
    """Wrap a handler: a live session is required (else to the login page), of ``role`` when
    given (else 404), and for ``post`` a CSRF token matching the session's."""

    def wrap(fn: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            sess = _session(ws, request)
            if sess is None:
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
                return Response("login required", status_code=401)
            request.state.session = sess
            if role is not None and sess.user.role != role:
                return not_found(ws, request)
            if post:
                form = await request.form()
                token = request.headers.get("x-csrf-token") or str(form.get("csrf", ""))
                if not token or not acc.same(token, sess.csrf):
                    with ws.lock:
                        acc.audit(ws.db, ws.clock(), sess.user.username, "csrf_rejected",
                                  request.url.path, client=_client(request))
                    return ws.render(request, "error.html", status=403,
                                     message_key="forbidden")
            return await fn(request)

        return handler

    return wrap


def _set_cookie(ws: Workspace, resp: Response, name: str, value: str, max_age: int) -> None:
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax",
                    secure=ws.settings.web.cookie_secure, path="/")


# ---------------------------------------------------------------------------- auth routes
def auth_routes(ws: Workspace) -> list[Route]:
    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        resp = ws.render(request, "login.html", login_csrf=token,
                         next=request.query_params.get("next", "/"), error=None)
        _set_cookie(ws, resp, LOGIN_COOKIE, ws.signer.dumps(token), 3600)
        return resp

    async def login_post(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username", "")).strip()[:64]
        password = str(form.get("password", ""))
        nxt = str(form.get("next", "/"))
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        client = _client(request)
        now = ws.clock()
        try:
            expected = ws.signer.loads(request.cookies.get(LOGIN_COOKIE, ""), max_age=3600)
        except BadSignature:
            expected = None
        given = str(form.get("csrf", ""))
        if not isinstance(expected, str) or not given or not acc.same(given, expected):
            with ws.lock:
                acc.audit(ws.db, now, username or "-", "csrf_rejected", "/login", client=client)
            return ws.render(request, "error.html", status=403, message_key="forbidden")
        window = timedelta(seconds=ws.settings.web.login_window_s)
        keys = [f"user:{username}", f"client:{client}"]
        with ws.lock:
            allowed = acc.check_rate(ws.db, keys, now, window, ws.settings.web.login_max_failures)
        if not allowed:
            with ws.lock:
                acc.audit(ws.db, now, username or "-", "login_throttled", client=client)
            resp = ws.render(request, "login.html", status=429, login_csrf=given, next=nxt,
                             error="too_many")
            return resp
        user = await _run(acc.login, ws, username, password)
        if user is None:
            with ws.lock:
                acc.record_failure(ws.db, keys, now, window)
                acc.audit(ws.db, now, username or "-", "login_failed", client=client)
            return ws.render(request, "login.html", status=401, login_csrf=given, next=nxt,
                             error="bad_login")
        return _start_session(ws, request, user, nxt)

    async def login_once(request: Request) -> Response:
        token = request.query_params.get("token", "")
        with ws.lock:
            user = acc.consume_login_token(ws.db, token, ws.clock()) if token else None
        if user is None:
            with ws.lock:
                acc.audit(ws.db, ws.clock(), "-", "login_token_rejected",
                          client=_client(request))
            return RedirectResponse("/login", status_code=303)
        return _start_session(ws, request, user, "/")

    @authed(ws, post=True)
    async def logout(request: Request) -> Response:
        sess: acc.Session = request.state.session
        with ws.lock:
            acc.end_session(ws.db, sess.id)
            acc.audit(ws.db, ws.clock(), sess.user.username, "logout", client=_client(request))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @authed(ws, post=True)
    async def language(request: Request) -> Response:
        sess: acc.Session = request.state.session
        form = await request.form()
        lang = str(form.get("language", ""))
        if lang in ("zh", "en"):
            with ws.lock:
                acc.set_language(ws.db, sess.user.username, lang, ws.clock())
                acc.audit(ws.db, ws.clock(), sess.user.username, "language", detail=lang,
                          client=_client(request))
        # back to the page the switch was pressed on (this site's path only, never elsewhere)
        ref = urlsplit(request.headers.get("referer", "/"))
        path = (ref.path or "/") + (f"?{ref.query}" if ref.query else "")
        if not path.startswith("/") or path.startswith("//"):
            path = "/"
        return RedirectResponse(path, status_code=303)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/login/once", login_once, methods=["GET"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/language", language, methods=["POST"]),
    ]


def _start_session(ws: Workspace, request: Request, user: acc.User, nxt: str) -> Response:
    now = ws.clock()
    ttl = timedelta(seconds=ws.settings.web.session_ttl_s)
    with ws.lock:
        sess = acc.new_session(ws.db, user, now, ttl, _client(request))
        acc.audit(ws.db, now, user.username, "login", client=_client(request))
    resp = RedirectResponse(nxt, status_code=303)
    _set_cookie(ws, resp, SESSION_COOKIE, ws.signer.dumps(sess.id), int(ttl.total_seconds()))
    resp.delete_cookie(LOGIN_COOKIE, path="/")
    return resp


async def _run(fn: Callable[..., Any], ws: Workspace, *args: Any) -> Any:
    """A blocking call (argon2, InfluxDB) off the event loop, under the database lock."""
    from starlette.concurrency import run_in_threadpool

    def call() -> Any:
        with ws.lock:
            return fn(ws.db, *args)

    return await run_in_threadpool(call)


# ---------------------------------------------------------------------------- the app
