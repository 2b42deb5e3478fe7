"""Alerts: stored first (so none is lost), then sent by mail and to an outbound webhook.

Who hears about an integration: the addresses in SYNCDESK_ALERT_EMAILS, the customer's account
manager, and the integration's alert webhook (or SYNCDESK_ALERT_WEBHOOK_URL)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from integrations.engine import exactjson
from integrations.models import Alert, Integration
from integrations.transports import http

log = logging.getLogger(__name__)

# At most one alert of a kind per integration in this window (a 10,000-record outage is one
# "records gave up" alert with a count, not 10,000 mails).
THROTTLE = {Alert.Kind.EXHAUSTED: timedelta(minutes=15), Alert.Kind.FAILING: timedelta(minutes=15)}


def recipients_for(integration: Integration | None) -> list[str]:
    people = list(settings.SYNCDESK_ALERT_EMAILS)
    if integration is not None:
        manager = integration.customer.account_manager
        if manager is not None and manager.email:
            people.append(manager.email)
    return sorted(set(people))


def raise_alert(
    *, integration: Integration | None, kind: str, subject: str, message: str, details: dict[str, Any] | None = None
) -> Alert | None:
    """Store an alert (unless throttled) and send it after commit. Returns None when throttled."""
    window = THROTTLE.get(kind)  # type: ignore[call-overload]
    if window and integration is not None:
        recent = Alert.objects.filter(
            integration=integration, kind=kind, created_at__gte=timezone.now() - window
        ).first()
        if recent is not None:
            recent.details = {**recent.details, "repeats": int(recent.details.get("repeats", 0)) + 1}
            recent.save(update_fields=["details"])
            return None
    alert = Alert.objects.create(
        integration=integration,
        kind=kind,
        subject=subject[:300],
        message=message,
        recipients=recipients_for(integration),
        details=details or {},
    )
    transaction.on_commit(lambda: send_alert(alert.pk))
    return alert


def _webhook_url(alert: Alert) -> str:
    if alert.integration is not None and alert.integration.alert_webhook_url:
        return alert.integration.alert_webhook_url
    return settings.SYNCDESK_ALERT_WEBHOOK_URL


def send_alert(alert_id: int) -> bool:
    """Send one stored alert; on failure keep the error, the periodic sender tries again."""
    alert = Alert.objects.select_related("integration__customer").filter(pk=alert_id, sent_at__isnull=True).first()
    if alert is None:
        return False
    errors = []
    if alert.recipients:
        try:
            send_mail(f"[Syncdesk] {alert.subject}", alert.message, None, alert.recipients)
        except Exception as exc:
            errors.append(f"mail: {exc}")
    url = _webhook_url(alert)
    if url:
        body = exactjson.dumps(
            {
                "kind": alert.kind,
                "subject": alert.subject,
                "message": alert.message,
                "integration": alert.integration.slug if alert.integration else None,
                "customer": alert.integration.customer.slug if alert.integration else None,
                "created_at": alert.created_at.isoformat(),
                "details": alert.details,
            }
        ).encode()
        try:
            exchange = http.send(
                "POST", url, content=body, headers={"Content-Type": "application/json"}, timeouts=(5.0, 10.0)
            )
            if exchange.status >= 300:
                errors.append(f"webhook answered {exchange.status}")
        except http.HttpFailure as exc:
            errors.append(f"webhook: {exc.reason}")
    Alert.objects.filter(pk=alert.pk).update(
        sent_at=None if errors else timezone.now(), send_error="; ".join(errors)[:2000]
    )
    if errors:
        log.warning("alert %s not fully sent: %s", alert.pk, errors)
    return not errors


def send_pending(limit: int = 100) -> int:
    """Retry alerts that could not be sent (mail server or webhook down)."""
    sent = 0
    for alert_id in (
        Alert.objects.filter(sent_at__isnull=True).order_by("created_at").values_list("id", flat=True)[:limit]
    ):
        sent += send_alert(alert_id)
    return sent
