"""gridwatch.alerts: the ownership-aware alert router.

Events from the dataflow become alerts with one open alert per meter and type; routes send them
to the grid cell's customer manager (escalated to the backup when not acknowledged) and, for
customers who opted in, to the customer; a durable SQLite outbox delivers them over MQTT,
webhook, email, Prometheus Alertmanager and apprise.

Names are imported on first use (PEP 562), so loading the settings, which imports this package
for its settings section, does not pull in jinja2, requests, paho or apprise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridwatch._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AclFiles": "_acl",
    "write_acl": "_acl",
    "AlertmanagerNotifier": "_channels",
    "AppriseNotifier": "_channels",
    "Delivery": "_channels",
    "EmailNotifier": "_channels",
    "MqttNotifier": "_channels",
    "Notification": "_channels",
    "Notifier": "_channels",
    "WebhookNotifier": "_channels",
    "alertmanager_webhook_payload": "_channels",
    "AlertSettings": "_config",
    "Registry": "_registry",
    "RegistryError": "_registry",
    "Router": "_router",
    "UnknownAlert": "_router",
    "RouteTree": "_routes",
    "RoutesError": "_routes",
    "CommandListener": "_service",
    "RouterService": "_service",
    "build_notifiers": "_service",
    "build_router": "_service",
    "TemplateError": "_templates",
    "Templates": "_templates",
}

__all__ = [
    "AclFiles",
    "AlertSettings",
    "AlertmanagerNotifier",
    "AppriseNotifier",
    "CommandListener",
    "Delivery",
    "EmailNotifier",
    "MqttNotifier",
    "Notification",
    "Notifier",
    "Registry",
    "RegistryError",
    "RouteTree",
    "Router",
    "RouterService",
    "RoutesError",
    "TemplateError",
    "Templates",
    "UnknownAlert",
    "WebhookNotifier",
    "alertmanager_webhook_payload",
    "build_notifiers",
    "build_router",
    "write_acl",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from gridwatch.alerts._acl import AclFiles, write_acl
    from gridwatch.alerts._channels import (
        AlertmanagerNotifier,
        AppriseNotifier,
        Delivery,
        EmailNotifier,
        MqttNotifier,
        Notification,
        Notifier,
        WebhookNotifier,
        alertmanager_webhook_payload,
    )
    from gridwatch.alerts._config import AlertSettings
    from gridwatch.alerts._registry import Registry, RegistryError
    from gridwatch.alerts._router import Router, UnknownAlert
    from gridwatch.alerts._routes import RoutesError, RouteTree
    from gridwatch.alerts._service import (
        CommandListener,
        RouterService,
        build_notifiers,
        build_router,
    )
    from gridwatch.alerts._templates import TemplateError, Templates
