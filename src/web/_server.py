"""Running the workspace: under uvicorn in the foreground (``gridwatch serve``) or in a thread
(tests, the demo, ``gridwatch run`` with ``web.enabled``), and the demo's one-time login."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gridwatch.web import _accounts as acc
from gridwatch.web._store import connect

if TYPE_CHECKING:
    from gridwatch._settings import Settings

__all__ = ["WebServer", "demo_login"]


class WebServer:
    """The workspace under uvicorn in a background thread: ``start()``, ``url``, ``stop()``."""

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        import uvicorn

        from gridwatch.web._app import Workspace
        from gridwatch.web._asgi import create_app

        self.host = host or settings.web.host
        self.port = port if port is not None else settings.web.port
        self.workspace = Workspace(settings, clock=clock)
        config = uvicorn.Config(create_app(self.workspace), host=self.host, port=self.port,
                                log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> WebServer:
        self._thread = threading.Thread(target=self.server.run, name="gridwatch-web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the workspace did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def demo_login(settings: Settings, manager_id: str, base_url: str | None = None) -> str:
    """Create (or reuse) the account ``demo-<manager_id>`` with a random password nobody is
    told, and return a link that logs it in once: what ``make demo`` prints at the end."""
    base = base_url or settings.web.public_url or f"http://{settings.web.host}:{settings.web.port}"
    db = connect(settings.web.db or settings.alerts.state_db)
    try:
        now = datetime.now(UTC)
        username = f"demo-{manager_id}"
        if acc.get_user(db, username) is None:
            acc.add_user(db, username, "manager", manager_id, secrets.token_urlsafe(24), now,
                         display_name=f"demo {manager_id}")
        token = acc.issue_login_token(db, username, now)
    finally:
        db.close()
    return f"{base}/login/once?token={token}"
