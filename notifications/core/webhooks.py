"""Webhooks: URL checks, the address guard (no loopback, private, link-local, multicast or reserved addresses, after
DNS resolution), HMAC-SHA256 signatures, and one POST to the checked address with no redirect followed."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "EVENTS",
    "MAX_EVENTS",
    "MAX_SECRET_LENGTH",
    "MAX_URL_LENGTH",
    "MIN_SECRET_LENGTH",
    "SIGNATURE_HEADER",
    "DeliveryError",
    "Response",
    "check_reachable",
    "check_secret",
    "check_url",
    "post",
    "refused_reason",
    "resolve",
    "sign",
    "verify",
]

EVENTS = ("search.finished", "search.failed", "training.finished", "training.failed", "proxy_check.finished")
MAX_EVENTS = len(EVENTS)
# Browsers and most servers stop at about 8 KB; 2,000 characters is the length every client and proxy passes.
MAX_URL_LENGTH = 2000
# 16 characters of a random key are 80+ bits; 256 covers any generated key (Slack's are 32, GitHub's up to 64+).
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
SIGNATURE_HEADER = "X-LTS-Signature"
# What is read of a receiver's answer: enough for an error message, never a download.
_MAX_ANSWER_BYTES = 4096

# The resolver: a module attribute so that tests can answer for names without a DNS server.
getaddrinfo: Callable[..., list] = socket.getaddrinfo


class DeliveryError(Exception):
    """A delivery attempt that did not reach a 2xx answer. ``transient``: worth another attempt later (a timeout,
    a refused connection, a name that did not resolve, 408, 425, 429, 5xx); otherwise trying again cannot help (an
    address the guard refuses, a redirect, another 4xx)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class Response:
    status: int
    address: str  # the IP address the request went to


def check_url(url: object) -> str | None:
    """The message for a URL a webhook cannot have (syntax only: ``resolve`` checks where it points), or None."""
    if not isinstance(url, str) or not url:
        return "give the receiver's URL (http:// or https://)"
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters, got {len(url)}"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "no spaces or control characters in a URL"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "no user name or password in the URL: use a secret to prove who sends"
    if port == 0:
        return "port 0 is not a port"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"{parts.hostname!r} is not a valid host name"
    return None


def check_secret(secret: object) -> str | None:
    """The message for a signing secret a webhook cannot have, or None ("" means: no signature)."""
    if not isinstance(secret, str):
        return "must be a string"
    if secret and not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        return f"{MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters, got {len(secret)} (or none, unsigned)"
    if any(ord(c) < 32 or ord(c) == 127 for c in secret):
        return "no control characters in a secret"
    return None


def refused_reason(address: str) -> str | None:
    """Why a webhook may not be sent to this IP address ("loopback", "private" ...), or None for a public one.
    An IPv4 address inside IPv6 (::ffff:10.0.0.1, 6to4, Teredo) is judged as that IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return refused_reason(str(embedded))
    for reason, test in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                         ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                         ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if test:
            return reason
    if not ip.is_global:  # shared address space 100.64/10, benchmarking 198.18/15, NAT64 ...: not the internet
        return "not a public address"
    return None


def resolve(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Every address ``host`` resolves to, each checked: DeliveryError if any is refused (a name with one public and
    one private answer could be pointed at either), transient if the name does not resolve now."""
    try:
        infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"{host} does not resolve: {exc}", transient=True) from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise DeliveryError(f"{host} does not resolve to any address", transient=True)
    if not allow_private:
        for address in addresses:
            reason = refused_reason(address)
            if reason:
                shown = host if host == address else f"{host} resolves to {address}, which"
                raise DeliveryError(f"{shown} is a {reason} address: webhooks may only reach public addresses",
                                    transient=False)
    return addresses


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def check_reachable(url: object, *, allow_private: bool = False) -> str | None:
    """``check_url``, then where its host points now (``resolve``): the message for a URL a webhook may not have, or
    None. Each delivery checks again: DNS answers change."""
    message = check_url(url)
    if message or not isinstance(url, str):  # a non-string has check_url's message
        return message
    try:
        resolve(*_host_port(url), allow_private=allow_private)
    except DeliveryError as exc:
        return str(exc)
    return None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body, keyed by secret>``.
    The timestamp inside the signed bytes lets a receiver refuse an old message replayed."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300, now: float | None = None) -> bool:
    """What a receiver does: True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s``
    old."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def _connection(scheme: str, host: str, port: int, address: str, timeout_s: float) -> http.client.HTTPConnection:
    """A connection to ``address`` (already checked) that still speaks to ``host``: its Host header, and on HTTPS
    its SNI and certificate check. http.client follows no redirects."""
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = cls(host, port, timeout=timeout_s)
    connection._create_connection = (  # type: ignore[attr-defined]  # http.client's private seam for the socket
        lambda _addr, timeout, source=None: socket.create_connection((address, port), timeout, source))
    return connection


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float = 5.0,
         allow_private: bool = False) -> Response:
    """POST ``body`` (JSON) to ``url``: resolve the host now, refuse it if any address is not public (unless
    ``allow_private``), connect to the checked address, follow no redirect, read at most 4 KiB of the answer; each
    network step waits at most ``timeout_s`` and reading the answer stops after it. Returns the 2xx Response;
    raises DeliveryError otherwise."""
    message = check_url(url)
    if message:
        raise DeliveryError(message, transient=False)
    parts = urlsplit(url)
    host, port = _host_port(url)
    address = resolve(host, port, allow_private=allow_private)[0]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout_s
    connection = _connection(parts.scheme, host, port, address, timeout_s)
    try:
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": "LTS-Studio-Webhook/1", **headers})
        answer = connection.getresponse()
        text = b""
        while len(text) < _MAX_ANSWER_BYTES and time.monotonic() < deadline:  # one recv each: a slow drip stops
            chunk = answer.read1(_MAX_ANSWER_BYTES - len(text))
            if not chunk:
                break
            text += chunk
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc or 'no answer'}", transient=True) from None
    finally:
        connection.close()
    status = answer.status
    if 200 <= status < 300:
        return Response(status=status, address=address)
    excerpt = text.decode("utf-8", "replace").strip()[:200]
    if 300 <= status < 400:
        location = answer.getheader("Location", "")[:200]
        raise DeliveryError(f"HTTP {status} redirect to {location!r}: redirects are not followed", transient=False,
                            status=status)
    transient = status in (408, 425, 429) or status >= 500
    raise DeliveryError(f"HTTP {status}{': ' + excerpt if excerpt else ''}", transient=transient, status=status)
