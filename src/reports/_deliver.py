"""Delivery of a rendered report to the customer's contact by e-mail, the PDF and the HTML
attached (the alert router's SMTP settings and mailer, with attachments)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gridwatch.alerts._channels import Delivery, EmailNotifier, Notification
from gridwatch.alerts._config import SmtpSettings

__all__ = ["ReportMailer", "mail_report"]

_TYPES = {".pdf": ("application", "pdf"), ".html": ("text", "html"),
          ".json": ("application", "json"), ".png": ("image", "png")}


class ReportMailer(EmailNotifier):
    """The plain-text mail of :class:`EmailNotifier` with files attached."""

    def __init__(self, smtp: SmtpSettings, attachments: list[Path], **kw: Any) -> None:
        super().__init__(smtp, **kw)
        self.attachments = attachments

    def message(self, n: Notification) -> EmailMessage:
        msg = super().message(n)
        for path in self.attachments:
            main, sub = _TYPES.get(path.suffix.lower(), ("application", "octet-stream"))
            msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub,
                               filename=path.name)
        return msg


def mail_report(smtp: SmtpSettings, to: str, figures: dict[str, Any], files: list[Path],
                now: datetime | None = None) -> Delivery:
    """Mail the report files to ``to`` with a short summary as the text; says whether it went
    (and whether a failure is worth retrying)."""
    now = now or datetime.now(UTC)
    who, period = figures["customer_id"], figures["period"]
    lines = [f"Energy report of {who} for {period}",
             f"Energy: {figures['kwh']:,.0f} kWh, cost {figures['energy_cost']:,.2f} "
             f"{figures['currency']}",
             f"Maximum demand: {figures['max_demand_kw']:,.1f} kW",
             *(f"- {a}" for a in figures.get("advice", ())),
             "The report is attached (PDF and HTML)."]
    n = Notification(key=f"report/{who}/{period}", recipient=who, channel="email", target=to,
                     kind="report", status="firing",
                     subject=f"Energy report {who} {period}", body="\n".join(lines),
                     language="en", created_at=now)
    return ReportMailer(smtp, files).send(n)
