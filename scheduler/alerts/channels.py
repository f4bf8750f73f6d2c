"""Where notifications go: a signed webhook, e-mail over SMTP, and the log.

The webhook body is JSON; ``X-Tunepool-Signature: sha256=<hex>`` is the HMAC-SHA256
of ``<timestamp>.<body>`` under the shared secret, with the timestamp in
``X-Tunepool-Timestamp`` so that a receiver can refuse a replayed message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import requests

from tunepool.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tunepool-Signature"
TIMESTAMP_HEADER = "X-Tunepool-Timestamp"

Channel = Callable[[dict[str, Any]], None]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook(url: str, secret: str, timeout_s: float = 10.0) -> Channel:
    def send(notification: dict[str, Any]) -> None:
        body = json.dumps(notification, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
        response = requests.post(url, data=body, headers=headers, timeout=timeout_s)
        response.raise_for_status()

    return send


def email(host: str, port: int, sender: str, recipients: list[str]) -> Channel:
    def send(notification: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        status = notification["status"].upper()
        message["Subject"] = (
            f"[tunepool {status}] {notification['rule']}: {notification['summary']}"[:200]
        )
        message.set_content(json.dumps(notification, indent=2, sort_keys=True))
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(message)

    return send


def to_log(notification: dict[str, Any]) -> None:
    level = logging.INFO if notification["status"] == "resolved" else logging.WARNING
    log.log(
        level,
        "alert %s %s: %s",
        notification["status"],
        notification["rule"],
        notification["summary"],
    )


def configured(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {"log": to_log}
    if settings.alert_webhook_url:
        channels["webhook"] = webhook(settings.alert_webhook_url, settings.alert_webhook_secret)
    recipients = [r.strip() for r in settings.alert_email_to.split(",") if r.strip()]
    if settings.alert_smtp_host and recipients:
        channels["email"] = email(
            settings.alert_smtp_host,
            settings.alert_smtp_port,
            settings.alert_email_from,
            recipients,
        )
    return channels
