"""Fixtures of the notification tests: a receiver (an HTTP server on 127.0.0.1 that answers what it is told and
records what it got), a resolver that answers for test names without DNS, and webhooks of team acme."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """Answers POSTs with the next of ``statuses`` (then 200), recording path, headers and body of each."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The actors' three users cost ~0.5 s of PBKDF2 per test; these tests are not about passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def allow_private(settings):
    """The setting the tests need to deliver to 127.0.0.1 (off by default)."""
    settings.LTS_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def names(monkeypatch) -> dict[str, list[str]]:
    """Test host names and the addresses they resolve to (fill the dict); IP literals resolve as themselves."""
    from notifications.core import webhooks

    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in table:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                    for a in table[host]]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(webhooks, "getaddrinfo", getaddrinfo)
    return table


class _SentDeliveries:
    """The ids of the deliveries queued so far (a live view of the outbox)."""

    def __init__(self, outbox) -> None:
        self.outbox = outbox

    def _ids(self) -> list[int]:
        from lts_web import queueing

        return [message["args"][0] for message in self.outbox.named(queueing.DELIVER_WEBHOOK)]

    def __len__(self) -> int:
        return len(self._ids())

    def __getitem__(self, index):
        return self._ids()[index]

    def __iter__(self):
        return iter(self._ids())

    def __eq__(self, other) -> bool:
        return self._ids() == list(other)


@pytest.fixture
def sent_deliveries(outbox) -> _SentDeliveries:
    """Delivery tasks are recorded, not sent (tests/conftest.py outbox); the tests run the task themselves."""
    return _SentDeliveries(outbox)


@pytest.fixture
def webhook(actors, receiver, allow_private, names):
    """A webhook of acme (by bob, a member) to the receiver, signed, for every event."""
    from notifications import services

    return services.do_create_webhook(owner=actors.bob, team_id=actors.acme.pk, url=receiver.url,
                                      secret="s3cret-key-of-16+chars")
