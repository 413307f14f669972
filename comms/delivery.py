"""Notification channels behind one small interface.

A channel takes one ``Outgoing`` message and either returns a ``Receipt`` (the far end took it) or
raises ``DeliveryFailed`` (saying whether trying again could help). Channels know nothing of the
database: the delivery service claims a notification, builds its ``Outgoing``, calls the channel,
and records what happened. Every message carries the notification's idempotency key, so a message
sent twice (a worker killed after the far end accepted it but before the database recorded that)
can be recognised as the same one by whoever receives it.

- e-mail: Django's e-mail backend (SMTP in production, over one connection per worker process
  kept open between messages; the console backend on the embedded default). Idempotency key in
  ``Message-ID`` and ``X-CTPN-Idempotency-Key``.
- SMS: a JSON-over-HTTP provider (``SMS_PROVIDER_URL``), or the console when it is ``console``.
  Idempotency key in the body and the ``Idempotency-Key`` header.
- webhook: JSON POSTed to the contact's URL, signed with HMAC-SHA256 of the exact body bytes in
  ``X-CTPN-Signature: sha256=<hex>``. Idempotency key in the body and ``X-CTPN-Idempotency-Key``.
- in-app: published to the recipient's topic ``user:<id>``; their open pages show it.
"""

import contextlib
import hashlib
import hmac
import json
import logging
import os
import smtplib
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CTPN-Signature"
IDEMPOTENCY_HEADER = "X-CTPN-Idempotency-Key"


@dataclass(frozen=True)
class Outgoing:
    """One message for one recipient through one channel, ready to hand over."""

    idempotency_key: str
    channel: str
    address: str  # e-mail address, phone number, webhook URL, or the user id for in-app
    subject: str
    text: str  # the whole human-readable message, EXERCISE first when it is one, with the link
    alert: dict[str, Any]  # the same alert as structured data (webhook body, in-app push)
    recipient_id: int
    secret: str = ""  # webhook signing secret


@dataclass(frozen=True)
class Receipt:
    """The far end took the message. ``delivered``: it confirmed receipt, not only acceptance."""

    delivered: bool = False
    detail: str = ""


class DeliveryFailed(Exception):
    """The message was not handed over. ``permanent``: trying again will not help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(Protocol):
    name: ClassVar[str]

    def send(self, message: Outgoing) -> Receipt: ...


def signature(secret: str, body: bytes) -> str:
    """The webhook signature header value: ``sha256=`` and the HMAC-SHA256 of the body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does to check a webhook: recompute and compare in constant time."""
    return bool(header) and hmac.compare_digest(signature(secret, body), header or "")


def _message_id(key: str) -> str:
    host = urlsplit(settings.PUBLIC_BASE_URL).hostname or "ctpn.invalid"
    return f"<{key}@{host}>"


SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class _SmtpConnection:
    """One SMTP connection per (worker) process, kept open between messages: opening one per
    message (a TCP connect, EHLO, STARTTLS, AUTH) cost more than the message. A connection that
    fails is closed and forgotten, and the next message opens a new one; a message sent on a
    connection the server dropped while idle is tried once more on a fresh one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.backend: Any = None
        self.key: tuple[Any, ...] = ()

    @staticmethod
    def _settings_key() -> tuple[Any, ...]:
        return (
            settings.EMAIL_HOST,
            settings.EMAIL_PORT,
            settings.EMAIL_HOST_USER,
            settings.EMAIL_USE_TLS,
            settings.EMAIL_USE_SSL,
            os.getpid(),  # never share a socket with a forked child
        )

    def _close(self) -> None:
        if self.backend is not None:
            with contextlib.suppress(Exception):
                self.backend.close()
        self.backend = None

    def send(self, email: EmailMessage) -> int:
        with self.lock:
            key = self._settings_key()
            if self.backend is not None and key != self.key:
                self._close()
            reused = self.backend is not None
            for attempt in (1, 2):
                try:
                    if self.backend is None:
                        self.backend = get_connection(SMTP_BACKEND, fail_silently=False)
                        self.key = key
                        # Opened here, so that sending does not close it again afterwards.
                        self.backend.open()
                    email.connection = self.backend
                    return email.send(fail_silently=False)
                except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    self._close()
                    if not reused or attempt == 2:
                        raise
                    logger.info("SMTP connection dropped (%r); opening a new one", exc)
                except BaseException:
                    self._close()
                    raise
            raise AssertionError("unreachable")


_smtp = _SmtpConnection()


class EmailChannel:
    name: ClassVar[str] = "email"

    def send(self, message: Outgoing) -> Receipt:
        email = EmailMessage(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.address],
            headers={
                "Message-ID": _message_id(message.idempotency_key),
                IDEMPOTENCY_HEADER: message.idempotency_key,
            },
        )
        try:
            if settings.EMAIL_BACKEND == SMTP_BACKEND:
                sent = _smtp.send(email)
            else:  # the console (embedded default) or the tests' backend
                sent = email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(f"address refused: {exc.recipients}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            raise DeliveryFailed(reason, permanent=500 <= exc.smtp_code < 600) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP server unreachable: {exc!r}", permanent=False) from exc
        if not sent:
            raise DeliveryFailed("the e-mail backend sent nothing", permanent=False)
        return Receipt(delivered=False, detail="accepted by the SMTP server")


@dataclass
class HttpAnswer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> HttpAnswer:
    """POST ``body`` and return the answer; a network failure raises a transient failure."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise DeliveryFailed(f"not an http(s) URL: {url!r}", permanent=True)
    request = urllib.request.Request(  # noqa: S310  (scheme checked above)
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return HttpAnswer(response.status, response.read(4096).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(4096).decode("utf-8", "replace"))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryFailed(f"{url} unreachable: {exc!r}", permanent=False) from exc


def answer_check(answer: HttpAnswer, what: str) -> None:
    """2xx is success; 408, 425, 429 and 5xx may pass; any other 4xx will not."""
    if 200 <= answer.status < 300:
        return
    transient = answer.status >= 500 or answer.status in {408, 425, 429}
    raise DeliveryFailed(
        f"{what} answered {answer.status}: {answer.body[:200]}", permanent=not transient
    )


class SmsChannel:
    """A JSON-over-HTTP SMS provider: ``{"to", "text", "idempotency_key"}`` with a bearer token.

    The console provider (the embedded default) prints the message instead.
    """

    name: ClassVar[str] = "sms"

    def send(self, message: Outgoing) -> Receipt:
        if not message.address.strip():
            raise DeliveryFailed("no phone number", permanent=True)
        url = settings.SMS_PROVIDER_URL
        if url == "console":
            sys.stdout.write(
                f"SMS to {message.address} [{message.idempotency_key}]\n{message.text}\n\n"
            )
            sys.stdout.flush()
            return Receipt(delivered=False, detail="written to the console")
        body = json.dumps(
            {
                "to": message.address,
                "text": message.text,
                "idempotency_key": message.idempotency_key,
            }
        ).encode("utf-8")
        headers = {"Idempotency-Key": message.idempotency_key}
        if settings.SMS_PROVIDER_TOKEN:
            headers["Authorization"] = f"Bearer {settings.SMS_PROVIDER_TOKEN}"
        answer = post_json(url, body, headers, settings.ALERT_HTTP_TIMEOUT_SECONDS)
        answer_check(answer, "the SMS provider")
        return Receipt(delivered=False, detail=f"accepted by the SMS provider ({answer.status})")


class WebhookChannel:
    """The alert as JSON, signed so the receiver can tell it came from us, unchanged."""

    name: ClassVar[str] = "webhook"

    def send(self, message: Outgoing) -> Receipt:
        if not message.secret:
            # An unsigned alert could be forged by anyone; refuse rather than send one.
            raise DeliveryFailed("the webhook has no signing secret", permanent=True)
        body = json.dumps(
            {**message.alert, "idempotency_key": message.idempotency_key, "text": message.text},
            sort_keys=True,
        ).encode("utf-8")
        headers = {
            SIGNATURE_HEADER: signature(message.secret, body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        answer = post_json(message.address, body, headers, settings.ALERT_HTTP_TIMEOUT_SECONDS)
        answer_check(answer, "the webhook")
        # The receiving system answered 2xx to the alert itself: that is delivery, not a relay.
        return Receipt(delivered=True, detail=f"webhook answered {answer.status}")


class InAppChannel:
    """Pushed to the recipient's open pages; they confirm display through the API."""

    name: ClassVar[str] = "in_app"

    def send(self, message: Outgoing) -> Receipt:
        alert = {**message.alert, "idempotency_key": message.idempotency_key}
        try:
            from ctpn.realtime import publish

            publish(f"user:{message.recipient_id}", {"type": "alert", "alert": alert})
        except Exception as exc:
            raise DeliveryFailed(f"could not publish: {exc!r}", permanent=False) from exc
        return Receipt(delivered=False, detail="pushed to the recipient's open pages")


CHANNELS: dict[str, Channel] = {
    channel.name: channel
    for channel in (EmailChannel(), SmsChannel(), WebhookChannel(), InAppChannel())
}


def channel_for(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise DeliveryFailed(f"unknown channel {name!r}", permanent=True) from None
