"""The workspace's ASGI app: the auth routes of :mod:`gridwatch.web._app`, the pages of
:mod:`gridwatch.web._views`, the static files and the security headers, in one Starlette app.
It sits above both, so the two import each other in one direction only."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridwatch.web._app import CSP, EXPORT_EVERY_S, STATIC, Workspace, _session, auth_routes
from gridwatch.web._views import view_routes

__all__ = ["SecurityHeaders", "create_app"]

log = logging.getLogger("gridwatch.web")


class SecurityHeaders:
    """Adds a strict Content-Security-Policy (nothing but this server may be loaded) and
    no-store caching of pages to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin")]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(ws: Workspace) -> Starlette:
    """The ASGI app of the workspace ``ws``."""
    async def home(request: Request) -> Response:
        sess = _session(ws, request)
        if sess is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/portal" if sess.user.role == "customer" else "/alerts",
                                status_code=303)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        from starlette.concurrency import run_in_threadpool

        async def export_loop() -> None:
            # Verdicts given while InfluxDB was away go out once it is back.
            while True:
                await run_in_threadpool(ws.export_verdicts)
                await asyncio.sleep(EXPORT_EVERY_S)

        async def digest_loop() -> None:
            # The weekly digest, sent by the running workspace (at most once per week).
            from gridwatch.web._digest_schedule import DIGEST_EVERY_S, DigestScheduler

            sched = DigestScheduler(ws.settings, clock=ws.clock, registry=lambda: ws.registry,
                                    db_path=ws.db_path)
            try:
                while True:
                    try:
                        await run_in_threadpool(sched.run_once)
                    except Exception:  # a bad registry, a locked database: try next time
                        log.exception("weekly digest round failed")
                    await asyncio.sleep(DIGEST_EVERY_S)
            finally:
                sched.close()

        tasks = [asyncio.create_task(export_loop())]
        if ws.settings.web.digest_enabled:
            tasks.append(asyncio.create_task(digest_loop()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            ws.close()

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        *auth_routes(ws),
        *view_routes(ws),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(SecurityHeaders)])
    app.state.workspace = ws
    return app
