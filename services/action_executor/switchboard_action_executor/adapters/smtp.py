"""Sending mail over SMTP (aiosmtplib). The Message-ID is derived from the action id, so a
mail that was sent can be recognised in the recipient's (or the sink's) mailbox."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from switchboard_action_executor.domain.registry import ToolError, TransientToolError


class Mailer:
    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 timeout_s: float = 10.0) -> None:
        self._host, self._port, self.sender = host, port, sender
        self._username, self._password = username, password
        self._starttls = starttls
        self._timeout = timeout_s

    async def send(self, message_id: str, to: list[str], cc: list[str], subject: str,
                   body: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        msg["Subject"] = subject
        msg["Message-ID"] = message_id
        msg.set_content(body)
        try:
            await aiosmtplib.send(
                msg, hostname=self._host, port=self._port, username=self._username,
                password=self._password, start_tls=self._starttls, timeout=self._timeout)
        except aiosmtplib.SMTPConnectError as exc:
            # Nothing was handed over: safe to try again.
            raise TransientToolError("mail server unreachable") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ToolError("the mail server refused the recipients") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500 and not isinstance(exc, aiosmtplib.SMTPDataError):
                raise TransientToolError(f"mail server busy ({exc.code})") from exc
            raise ToolError(f"the mail server refused the message ({exc.code})") from exc
        except aiosmtplib.SMTPException as exc:
            raise ToolError(f"sending failed ({type(exc).__name__})") from exc
