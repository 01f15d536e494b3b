"""notifications.core without a database: which addresses a webhook may reach (after DNS resolution), URL and secret
checks, signatures, and one POST to the checked address with no redirect followed."""
from __future__ import annotations

import hashlib
import hmac
import socket

import pytest

from notifications.core import (
    MAX_URL_LENGTH,
    DeliveryError,
    check_secret,
    check_url,
    post,
    refused_reason,
    resolve,
    sign,
    verify,
)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "not a public address"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"), ("ff02::1", "multicast"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("2002:7f00:1::1", "loopback"), ("fe80::1%eth0", "link-local"),
])
def test_loopback_private_link_local_multicast_and_reserved_addresses_are_refused(address, reason):
    assert refused_reason(address) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address):
    assert refused_reason(address) is None


def test_a_name_is_judged_by_every_address_it_resolves_to(names):
    names.update({"internal.example": ["10.0.0.5"], "v6.example": ["fd00::1"], "mixed.example": ["93.184.216.34",
                  "127.0.0.1"], "public.example": ["93.184.216.34", "2606:4700:4700::1111"]})
    for host, shown in (("internal.example", "10.0.0.5, which is a private"),
                        ("v6.example", "fd00::1, which is a private"),
                        ("mixed.example", "127.0.0.1, which is a loopback")):
        with pytest.raises(DeliveryError, match=shown) as caught:
            resolve(host, 443)
        assert not caught.value.transient
    assert resolve("public.example", 443) == ["93.184.216.34", "2606:4700:4700::1111"]
    assert resolve("internal.example", 443, allow_private=True) == ["10.0.0.5"]
    with pytest.raises(DeliveryError, match="does not resolve") as caught:
        resolve("nowhere.example", 443)
    assert caught.value.transient  # DNS may answer later


@pytest.mark.parametrize("url, message", [
    ("", "give the receiver's URL"), (None, "give the receiver's URL"), ("ftp://example.com/x", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"), ("https:///path", "no host"),
    ("https://user:pw@example.com/", "no user name or password"), ("https://example.com:99999/", "not a valid URL"),
    ("https://exa mple.com/", "no spaces"), ("https://example.com/\x00", "no spaces or control"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH, f"at most {MAX_URL_LENGTH} characters"),
])
def test_bad_urls_get_a_message(url, message):
    assert message in check_url(url)


def test_good_urls_and_secrets_pass():
    assert check_url("https://hooks.slack.com/services/T0/B0/xyz?a=1") is None
    assert check_url("http://[2606:4700:4700::1111]:8080/hook") is None
    assert check_secret("") is None and check_secret("x" * 16) is None and check_secret("x" * 256) is None
    assert "16 to 256 characters" in check_secret("short")
    assert "16 to 256 characters" in check_secret("x" * 257)
    assert "control" in check_secret("x" * 16 + "\n")


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"event":"search.finished"}'
    header = sign("topsecret-topsecret", 1700000000, body)
    expected = hmac.new(b"topsecret-topsecret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify("topsecret-topsecret", header, body, now=1700000100)
    assert not verify("topsecret-topsecret", header, body + b" ", now=1700000100)  # body changed
    assert not verify("another-secret-value", header, body, now=1700000100)
    assert not verify("topsecret-topsecret", header, body, now=1700000000 + 301)  # replayed too late
    assert not verify("topsecret-topsecret", "garbage", body)


def test_post_connects_to_the_checked_address_and_keeps_the_host_name(receiver, names):
    names["hooks.test"] = ["127.0.0.1"]
    url = f"http://hooks.test:{receiver.port}/in?x=1"
    with pytest.raises(DeliveryError, match="hooks.test resolves to 127.0.0.1, which is a loopback"):
        post(url, b"{}", {})
    assert receiver.requests == []  # refused before connecting
    response = post(url, b'{"a":1}', {"X-Test": "1"}, allow_private=True)
    assert response.status == 200 and response.address == "127.0.0.1"
    (request,) = receiver.requests
    assert request["path"] == "/in?x=1" and request["body"] == b'{"a":1}'
    assert request["headers"]["Host"] == f"hooks.test:{receiver.port}" and request["headers"]["X-Test"] == "1"
    assert request["headers"]["Content-Type"] == "application/json"


def test_no_redirect_is_followed_and_answers_are_sorted_into_transient_and_permanent(receiver):
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    receiver.statuses = [302]
    with pytest.raises(DeliveryError, match="redirects are not followed") as caught:
        post(receiver.url, b"{}", {}, allow_private=True)
    assert not caught.value.transient and caught.value.status == 302 and len(receiver.requests) == 1
    receiver.headers = {}
    for status, transient in ((503, True), (500, True), (429, True), (408, True), (404, False), (400, False),
                              (410, False)):
        receiver.statuses = [status]
        with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
            post(receiver.url, b"{}", {}, allow_private=True)
        assert caught.value.transient is transient and caught.value.status == status


def test_a_closed_port_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError) as caught:
        post(f"http://127.0.0.1:{port}/", b"{}", {}, allow_private=True, timeout_s=2)
    assert caught.value.transient and caught.value.status is None
