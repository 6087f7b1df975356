"""URLs that may carry credentials, made fit for logs and messages, and the HTTP client libraries kept from
logging requests themselves.

A URL's user-info (`https://user:password@host`), its query values (`?token=...`) and the secret-looking
segments of its path (Slack's `/services/T0/B0/XXXX`, Discord's `/api/webhooks/ID/TOKEN`) are credentials
often enough that none of them is ever shown. httpx logs every request URL at INFO (and httpcore more at
DEBUG), which bypasses any redaction of ours, so both are held at WARNING. No I/O; stdlib only."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

HIDDEN = "*****"
CLIENT_LOGGERS = ("httpx", "httpcore", "hpack")
# Path segments shown as they are: short lower-case words (services, api, hooks, webhooks) and versions
# (v1); anything with capitals, digits or length (tokens, ids) is hidden.
_WORD = re.compile(r"^[a-z][a-z-]{0,13}$|^v\d{1,2}$")


def quiet_client_logs() -> None:
    """Keeps the HTTP client libraries' own request lines (which carry full URLs) out of every log."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def safe_url(url: str) -> str:
    """`url` without user-info, query values or secret-looking path segments:
    `https://u:p@hooks.slack.com/services/T0AB/B0CD/xyz?token=1` -> `https://hooks.slack.com/services/*****/*****/*****?token=*****`."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return HIDDEN  # not even parseable: nothing of it is shown
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    segments = [s if not s or _WORD.match(s) else HIDDEN for s in parts.path.split("/")]
    shown = f"{parts.scheme}://{netloc}" if parts.scheme else netloc
    shown += "/".join(segments)
    if parts.query:
        names = [item.partition("=")[0] for item in parts.query.split("&") if item]
        shown += "?" + "&".join(f"{n}={HIDDEN}" for n in names)
    return shown


def secret_parts(url: str) -> list[str]:
    """The parts of `url` that `safe_url` hides (user-info, password, secret path segments, query values),
    as they appear in the URL and decoded: what to scrub from any text that might quote the URL."""
    try:
        parts = urlsplit(url)
        found = [parts.username or "", parts.password or ""]
    except ValueError:
        return [url]
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        found.append(userinfo)
    found += [s for s in parts.path.split("/") if s and not _WORD.match(s)]
    found += [item.partition("=")[2] for item in parts.query.split("&")]
    found += [unquote(item) for item in found]
    return [item for item in found if item]


def scrub(text: str, url: str) -> str:
    """`text` (an error message, say) with `url` and every secret part of it replaced."""
    if not url:
        return text
    text = text.replace(url, safe_url(url))
    for part in sorted(set(secret_parts(url)), key=len, reverse=True):
        if len(part) >= 3:  # a one- or two-character value would blank out unrelated text
            text = text.replace(part, HIDDEN)
    return text
