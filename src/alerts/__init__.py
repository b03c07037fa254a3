"""gridwatch.alerts: the ownership-aware alert router.

Events from the dataflow become alerts with one open alert per meter and type; routes send them
to the grid cell's customer manager (escalated to the backup when not acknowledged) and, for
customers who opted in, to the customer; a durable SQLite outbox delivers them over MQTT,
webhook, email, Prometheus Alertmanager and apprise.
"""

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
