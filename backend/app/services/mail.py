"""Outgoing mail: SMTP when configured, otherwise the message is logged for the operator."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from app.config import settings

logger = logging.getLogger(__name__)


def send_password_reset(to_address: str, reset_url: str, expires_minutes: int) -> None:
    """Deliver a reset link; without SMTP the link goes to the log at WARNING."""
    if not settings.smtp_configured:
        logger.warning(
            "SMTP is not configured; password reset link for %s (valid %d min): %s",
            to_address,
            expires_minutes,
            reset_url,
        )
        return
    message = EmailMessage()
    message["Subject"] = f"{settings.APP_NAME}: reset your password / 重置密码"
    message["From"] = settings.SMTP_FROM
    message["To"] = to_address
    message.set_content(
        f"Open this link to choose a new password (valid for {expires_minutes} minutes):\n"
        f"{reset_url}\n\n"
        f"请在 {expires_minutes} 分钟内打开以下链接设置新密码：\n{reset_url}\n\n"
        "If you did not ask for this, ignore this message. / 如非本人操作，请忽略本邮件。\n"
    )
    try:
        _deliver(message)
    except (OSError, smtplib.SMTPException) as exc:
        # Never log the link here: the mail server may be reachable to others.
        logger.error("Could not send the password reset mail to %s: %s", to_address, exc)


def _deliver(message: EmailMessage) -> None:
    host, port, timeout = (
        settings.SMTP_HOST or "",
        settings.SMTP_PORT,
        settings.SMTP_TIMEOUT_SECONDS,
    )
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.SMTP_SSL:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if settings.SMTP_STARTTLS and not settings.SMTP_SSL:
            smtp.starttls(context=context)
        if settings.SMTP_USERNAME:
            smtp.login(settings.SMTP_USERNAME, settings.SMTP_PASSWORD or "")
        smtp.send_message(message)
