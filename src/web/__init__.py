"""gridwatch.web: the manager's workspace.

A server-rendered web app (Starlette under uvicorn, Jinja2, htmx served by gridwatch itself)
where grid customer managers see the open alerts of their cells, the load around each alert,
and acknowledge, resolve and judge them; industrial customers' contacts see their own notices
and load. Verdicts are stored with the alert, exported to InfluxDB and handed back to detection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

if TYPE_CHECKING:
    from gridwatch.web._app import Workspace
    from gridwatch.web._asgi import create_app
    from gridwatch.web._config import WebSettings
    from gridwatch.web._digest import Digest, build_digest, send_digests
    from gridwatch.web._server import WebServer, demo_login
    from gridwatch.web._verdicts import (
        VERDICTS,
        VerdictFeed,
        VerdictScore,
        false_alarm_weights,
        score_verdicts,
        verdicts_for_detection,
    )

_LAZY = {
    "WebSettings": "_config",
    "Workspace": "_app",
    "create_app": "_asgi",
    "Digest": "_digest",
    "build_digest": "_digest",
    "send_digests": "_digest",
    "WebServer": "_server",
    "demo_login": "_server",
    "VERDICTS": "_verdicts",
    "VerdictFeed": "_verdicts",
    "VerdictScore": "_verdicts",
    "false_alarm_weights": "_verdicts",
    "score_verdicts": "_verdicts",
    "verdicts_for_detection": "_verdicts",
}

__all__ = [
    "VERDICTS",
    "Digest",
    "VerdictFeed",
    "VerdictScore",
    "WebServer",
    "WebSettings",
    "Workspace",
    "build_digest",
    "create_app",
    "demo_login",
    "false_alarm_weights",
    "score_verdicts",
    "send_digests",
    "verdicts_for_detection",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
