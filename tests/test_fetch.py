"""Tests for corpus.fetch against a real local HTTP server.

Workplace rule: tests may only talk to 127.0.0.0/8.  The autouse
``network_guard`` enforces it at the socket level (connect + DNS) and
records every connection attempt, which is also how the refusal tests
prove that a forbidden target was never even dialled.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from corpus import url_rules
from corpus.fetch import (
    FetchError,
    FetchResult,
    FetchTimeout,
    HttpStatusError,
    ResponseTooLarge,
    TooManyRedirects,
    UnreachableHost,
    UrlNotAllowed,
    UrlPolicy,
    check_url_allowed,
    fetch_url,
    is_public_address,
)
from tests.servers.news_site import NewsSite

_LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@dataclass
class NetworkGuard:
    connects: list[Any] = field(default_factory=list)  # every attempted address
    blocked: list[Any] = field(default_factory=list)  # attempts outside 127/8
    lookups: list[str] = field(default_factory=list)  # names given to the OS resolver

    def tcp_connects(self) -> list[tuple[str, int]]:
        return [(a[0], a[1]) for a in self.connects if isinstance(a, tuple)]


def _is_loopback_v4(address: Any) -> bool:
    try:
        return ipaddress.ip_address(address[0]) in _LOOPBACK_V4
    except (ValueError, TypeError, IndexError):
        return False


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        guard.connects.append(address)
        if isinstance(address, tuple) and not _is_loopback_v4(address):
            guard.blocked.append(address)
            raise PermissionError(f"test network guard: connect to {address!r} blocked")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        guard.lookups.append(name)
        # Real DNS would send packets to a resolver: only names answered
        # from /etc/hosts and IP literals are let through.
        if name != "localhost" and url_rules._ip_or_none(name) is None:
            raise socket.gaierror(socket.EAI_NONAME, "test network guard: DNS blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield guard
    assert not guard.blocked, f"connection attempts outside 127.0.0.0/8: {guard.blocked}"


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as s:
        yield s


@pytest.fixture
def policy(site: NewsSite) -> UrlPolicy:
    return UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=5.0)


@dataclass
class FakeDns:
    answers: dict[str, list[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Replace the fetcher's resolver with a table (unknown names fail)."""
    dns = FakeDns()

    async def fake_getaddrinfo(host: str, port: int) -> list[str]:
        dns.calls.append(host)
        if host not in dns.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return dns.answers[host]

    monkeypatch.setattr(url_rules, "_getaddrinfo", fake_getaddrinfo)
    return dns


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_friendly(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text
    for internal in ("httpx", "httpcore", "Traceback", "Errno", "Error(", "10.0.0.5"):
        assert internal not in text


# --------------------------------------------------------------------------
# Success paths
# --------------------------------------------------------------------------


async def test_fetch_ok_reports_charset_from_header(
    site: NewsSite, policy: UrlPolicy, network_guard: NetworkGuard
) -> None:
    body = "<p>Café in Zürich</p>".encode("iso-8859-1")
    site.set_page("/a", body, content_type="text/html; charset=ISO-8859-1")

    result = await fetch_url(site.url("/a"), policy)

    assert isinstance(result, FetchResult)
    assert result.status == 200
    assert result.url == result.final_url == site.url("/a")
    assert result.content_type == "text/html"
    assert result.charset == "iso-8859-1"
    assert result.body.decode(result.charset) == "<p>Café in Zürich</p>"
    assert result.etag and result.etag.startswith('"')
    assert result.last_modified and result.last_modified.endswith("GMT")
    assert result.not_modified is False
    assert site.requests[-1].headers["user-agent"] == policy.user_agent
    # The guard really sees the fetcher's sockets (so its silence elsewhere means something).
    assert ("127.0.0.1", site.port) in network_guard.tcp_connects()


async def test_fetch_without_charset_parameter(site: NewsSite, policy: UrlPolicy) -> None:
    site.set_page("/feed", b"<rss/>", content_type="application/rss+xml")
    result = await fetch_url(site.url("/feed"), policy)
    assert result.content_type == "application/rss+xml"
    assert result.charset is None


async def test_caller_supplied_client_is_used_and_left_open(
    site: NewsSite, policy: UrlPolicy
) -> None:
    site.set_page("/a", "<p>hi</p>")
    async with httpx.AsyncClient(trust_env=False) as client:
        first = await fetch_url(site.url("/a"), policy, client=client)
        second = await fetch_url(site.url("/a"), policy, client=client)
        assert not client.is_closed
    assert first.body == second.body == b"<p>hi</p>"


async def test_allowlist_entry_without_port_allows_any_port(site: NewsSite) -> None:
    site.set_page("/a", "ok")
    result = await fetch_url(site.url("/a"), UrlPolicy(allowed_hosts=frozenset({"127.0.0.1"})))
    assert result.body == b"ok"


# --------------------------------------------------------------------------
# Conditional GET
# --------------------------------------------------------------------------


async def test_not_modified_with_etag(site: NewsSite, policy: UrlPolicy) -> None:
    site.set_page("/a", "<p>v1</p>")
    first = await fetch_url(site.url("/a"), policy)

    second = await fetch_url(site.url("/a"), policy, etag=first.etag)

    assert second.not_modified is True
    assert second.status == 304
    assert second.body == b""
    assert second.etag == first.etag
    assert site.requests_for("/a")[-1].headers["if-none-match"] == first.etag


async def test_not_modified_with_last_modified(site: NewsSite, policy: UrlPolicy) -> None:
    site.set_page("/a", "<p>v1</p>")
    first = await fetch_url(site.url("/a"), policy)
    assert first.last_modified is not None

    second = await fetch_url(site.url("/a"), policy, last_modified=first.last_modified)

    assert second.not_modified is True
    assert second.body == b""
    assert second.last_modified == first.last_modified
    sent = site.requests_for("/a")[-1].headers
    assert sent["if-modified-since"] == first.last_modified
    assert "if-none-match" not in sent


async def test_changed_resource_is_fetched_again(site: NewsSite, policy: UrlPolicy) -> None:
    site.set_page("/a", "<p>v1</p>")
    first = await fetch_url(site.url("/a"), policy)
    site.set_page("/a", "<p>v2</p>")

    second = await fetch_url(site.url("/a"), policy, etag=first.etag)

    assert second.not_modified is False
    assert second.body == b"<p>v2</p>"
    assert second.etag != first.etag


# --------------------------------------------------------------------------
# Size limits
# --------------------------------------------------------------------------


async def test_body_exactly_at_limit_is_accepted(site: NewsSite) -> None:
    site.set_page("/a", b"x" * 1000, content_type="text/plain")
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_bytes=1000)
    assert len((await fetch_url(site.url("/a"), policy)).body) == 1000


async def test_too_large_by_content_length(site: NewsSite) -> None:
    site.set_huge("/huge", 50_000_000, mode="length")
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_bytes=100_000, timeout=5)

    started = time.monotonic()
    with pytest.raises(ResponseTooLarge) as info:
        await fetch_url(site.url("/huge"), policy)

    assert time.monotonic() - started < 3  # refused from the header, not after 50 MB
    _assert_friendly(info.value)


async def test_declared_length_alone_is_refused(site: NewsSite) -> None:
    # The server promises 50 MB, sends 1 KiB and stalls: only the header
    # check can answer quickly (a reader would wait for the timeout).
    site.set_huge("/huge", 50_000_000, mode="stall")
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_bytes=100_000, timeout=3)
    with pytest.raises(ResponseTooLarge):
        await fetch_url(site.url("/huge"), policy)


@pytest.mark.parametrize("mode", ["chunked", "eof"])
async def test_too_large_while_streaming(site: NewsSite, mode: str) -> None:
    # No usable Content-Length: the running byte count must stop the read.
    site.set_huge("/huge", 20_000_000, mode=mode)  # type: ignore[arg-type]
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_bytes=100_000, timeout=5)

    started = time.monotonic()
    with pytest.raises(ResponseTooLarge):
        await fetch_url(site.url("/huge"), policy)
    assert time.monotonic() - started < 3


async def test_too_large_after_decompression(site: NewsSite) -> None:
    # Small on the wire, big once decoded: the limit applies to what we keep.
    compressed = gzip.compress(b"\0" * 2_000_000)
    assert len(compressed) < 100_000
    site.set_page(
        "/bomb", compressed, content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_bytes=100_000)

    with pytest.raises(ResponseTooLarge):
        await fetch_url(site.url("/bomb"), policy)


# --------------------------------------------------------------------------
# Timeouts and errors
# --------------------------------------------------------------------------


async def test_timeout_on_hanging_server(site: NewsSite) -> None:
    site.set_hang("/slow", 10)
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=0.5)

    started = time.monotonic()
    with pytest.raises(FetchTimeout) as info:
        await fetch_url(site.url("/slow"), policy)

    assert time.monotonic() - started < 2
    _assert_friendly(info.value)


async def test_timeout_covers_the_whole_redirect_chain(site: NewsSite) -> None:
    site.set_redirect("/start", "/slow")
    site.set_hang("/slow", 10)
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=0.5)
    with pytest.raises(FetchTimeout):
        await fetch_url(site.url("/start"), policy)


async def test_hanging_site_stops_promptly(site: NewsSite) -> None:
    site.set_hang("/slow", 30)
    with pytest.raises(FetchTimeout):
        await fetch_url(
            site.url("/slow"), UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=0.3)
        )
    started = time.monotonic()
    site.stop()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_http_error_status(site: NewsSite, policy: UrlPolicy, status: int) -> None:
    if status != 404:  # 404 is what the site answers for unknown paths
        site.set_page("/err", "<h1>nope</h1>", status=status)
    with pytest.raises(HttpStatusError) as info:
        await fetch_url(site.url("/err"), policy)
    assert info.value.status == status
    assert str(status) in str(info.value)
    _assert_friendly(info.value)


async def test_closed_port_is_unreachable(network_guard: NetworkGuard) -> None:
    port = _closed_port()
    policy = UrlPolicy(allowed_hosts=frozenset({f"127.0.0.1:{port}"}), timeout=5)
    with pytest.raises(UnreachableHost) as info:
        await fetch_url(f"http://127.0.0.1:{port}/", policy)
    assert ("127.0.0.1", port) in network_guard.tcp_connects()
    _assert_friendly(info.value)


async def test_dns_failure_is_unreachable(fake_dns: FakeDns, network_guard: NetworkGuard) -> None:
    with pytest.raises(UnreachableHost) as info:
        await fetch_url("https://no-such-site.example/", UrlPolicy())
    assert "no-such-site.example" in str(info.value)
    assert network_guard.connects == []
    _assert_friendly(info.value)


# --------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_chain_is_followed(site: NewsSite, policy: UrlPolicy, status: int) -> None:
    site.set_redirect("/r1", "/r2", status=status)  # relative
    site.set_redirect("/r2", site.url("/final"), status=status)  # absolute
    site.set_page("/final", "<p>here</p>")

    result = await fetch_url(site.url("/r1"), policy)

    assert result.url == site.url("/r1")
    assert result.final_url == site.url("/final")
    assert result.body == b"<p>here</p>"
    assert [r.path for r in site.requests] == ["/r1", "/r2", "/final"]


async def test_too_many_redirects(site: NewsSite) -> None:
    site.set_redirect("/loop", "/loop")
    policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}), max_redirects=3)
    with pytest.raises(TooManyRedirects) as info:
        await fetch_url(site.url("/loop"), policy)
    assert isinstance(info.value, FetchError)
    assert len(site.requests_for("/loop")) == 4  # the first request + 3 redirects


async def test_redirect_without_location(site: NewsSite, policy: UrlPolicy) -> None:
    site.set_page("/odd", "", status=302)
    with pytest.raises(FetchError):
        await fetch_url(site.url("/odd"), policy)


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.5/",
        "http://169.254.169.254/latest",
        "http://192.168.1.1/admin",
        "http://[::1]:1/",
        "http://[::ffff:10.0.0.5]/",
        "http://127.0.0.2:{port}/",  # loopback, but only 127.0.0.1:{port} is allowlisted
        "http://127.0.0.1:{other_port}/",  # allowlisted host, other port
        "file:///etc/passwd",
        "ftp://127.0.0.1/pub/file",
        "http://user:pw@{netloc}/page",  # credentials, even on the allowlisted host
        "http://user:pw@example.com/",
    ],
)
async def test_redirect_to_forbidden_target_is_refused_before_connecting(
    site: NewsSite, policy: UrlPolicy, network_guard: NetworkGuard, location: str
) -> None:
    target = location.format(port=site.port, other_port=_closed_port(), netloc=site.netloc)
    site.set_redirect("/start", target)

    with pytest.raises(UrlNotAllowed) as info:
        await fetch_url(site.url("/start"), policy)

    _assert_friendly(info.value)
    assert [r.path for r in site.requests] == ["/start"]
    # Proof that nothing but the allowlisted server was dialled:
    assert set(network_guard.tcp_connects()) == {("127.0.0.1", site.port)}
    assert all(name == "127.0.0.1" for name in network_guard.lookups)  # no DNS for the targets


# --------------------------------------------------------------------------
# Direct URL checks
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://127.0.0.1/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.1/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fec0::1]/",  # site-local
        "http://[fc00::1]/",  # unique local
        "http://[ff0e::1]/",  # global-scope multicast
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:5]/",  # NAT64 of 10.0.0.5
        "http://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
        "http://[::a00:5]/",  # deprecated IPv4-compatible
        "file:///etc/passwd",
        "ftp://example.com/file",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://user:pw@example.com/",
        "https://user@example.com/",
        "/relative/path",
        "",
        "http:///nohost",
    ],
)
def test_check_url_allowed_refuses(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        check_url_allowed(url, UrlPolicy())
    _assert_friendly(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/news",
        "http://93.184.216.34/",
        "https://[2606:4700:4700::1111]/",
        "http://[::ffff:93.184.216.34]/",
        "https://EXAMPLE.com./a?b=c#d",
        "https://münchen.example/",
    ],
)
def test_check_url_allowed_accepts_public_targets(url: str) -> None:
    check_url_allowed(url, UrlPolicy())  # sync: no DNS, no connection


def test_allowlist_exempts_only_the_listed_host(site: NewsSite) -> None:
    policy = UrlPolicy(allowed_hosts=frozenset({"127.0.0.1:8080", "[::1]:9000", "intranet.local"}))
    check_url_allowed("http://127.0.0.1:8080/", policy)
    check_url_allowed("http://[::1]:9000/", policy)
    check_url_allowed("http://intranet.local:1234/", policy)
    for url in (
        "http://127.0.0.1:8081/",
        "http://127.0.0.1/",
        "http://[::1]:9001/",
        "file:///etc/passwd",
    ):
        with pytest.raises(UrlNotAllowed):
            check_url_allowed(url, policy)


@pytest.mark.parametrize("entry", ["host:port", "host:0", "[::1", "a:b:c", ""])
def test_malformed_allowlist_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError):
        UrlPolicy(allowed_hosts=frozenset({entry}))


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"max_bytes": 0}, {"max_redirects": -1}])
def test_policy_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        UrlPolicy(**kwargs)


def test_is_public_address() -> None:
    assert is_public_address(ipaddress.ip_address("93.184.216.34"))
    assert is_public_address(ipaddress.ip_address("2606:4700:4700::1111"))
    assert not is_public_address(ipaddress.ip_address("::ffff:10.0.0.5"))


# --------------------------------------------------------------------------
# DNS checks and pinning
# --------------------------------------------------------------------------


async def test_localhost_refused_when_not_allowlisted(
    site: NewsSite, network_guard: NetworkGuard
) -> None:
    site.set_page("/a", "secret")
    with pytest.raises(UrlNotAllowed):
        await fetch_url(f"http://localhost:{site.port}/a", UrlPolicy())
    assert network_guard.lookups == ["localhost"]  # resolved from /etc/hosts...
    assert network_guard.connects == []  # ...and refused before connecting
    assert site.requests == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::ffff:192.168.1.1"],
        ["fe80::1%eth0"],
        ["93.184.216.34", "127.0.0.1"],  # one bad address spoils the lot
    ],
)
async def test_hostname_resolving_to_non_public_address_is_refused(
    fake_dns: FakeDns, network_guard: NetworkGuard, addresses: list[str]
) -> None:
    fake_dns.answers["news.example"] = addresses
    with pytest.raises(UrlNotAllowed) as info:
        await fetch_url("https://news.example/story", UrlPolicy())
    assert fake_dns.calls == ["news.example"]
    assert network_guard.connects == []
    _assert_friendly(info.value)


async def test_redirect_to_hostname_resolving_to_private_address_is_refused(
    site: NewsSite, policy: UrlPolicy, fake_dns: FakeDns, network_guard: NetworkGuard
) -> None:
    fake_dns.answers["evil.example"] = ["10.0.0.5"]
    site.set_redirect("/start", "http://evil.example/")
    with pytest.raises(UrlNotAllowed):
        await fetch_url(site.url("/start"), policy)
    assert fake_dns.calls == ["evil.example"]
    assert set(network_guard.tcp_connects()) == {("127.0.0.1", site.port)}


async def test_connection_is_pinned_to_the_checked_address(
    site: NewsSite, fake_dns: FakeDns, network_guard: NetworkGuard
) -> None:
    # The name resolves (once, via our checked resolver) to the test server;
    # httpx must connect to that IP without resolving the name again, while
    # the server still sees the real name in the Host header.
    fake_dns.answers["news.test"] = ["127.0.0.1"]
    site.set_page("/a", "<p>pinned</p>")
    policy = UrlPolicy(allowed_hosts=frozenset({f"news.test:{site.port}"}))

    result = await fetch_url(f"http://news.test:{site.port}/a", policy)

    assert result.body == b"<p>pinned</p>"
    assert result.final_url == f"http://news.test:{site.port}/a"
    assert site.requests[-1].headers["host"] == f"news.test:{site.port}"
    assert fake_dns.calls == ["news.test"]
    assert "news.test" not in network_guard.lookups  # no second, unchecked resolution
    assert network_guard.tcp_connects() == [("127.0.0.1", site.port)]


async def test_next_checked_address_is_tried_when_connect_fails(
    site: NewsSite, fake_dns: FakeDns, network_guard: NetworkGuard
) -> None:
    # 127.0.0.2 has nothing listening on the site's port (the server is bound
    # to 127.0.0.1 only), like a dual-stack host whose first address is down.
    fake_dns.answers["news.test"] = ["127.0.0.2", "127.0.0.1"]
    site.set_page("/a", "ok")
    policy = UrlPolicy(allowed_hosts=frozenset({f"news.test:{site.port}"}))

    result = await fetch_url(f"http://news.test:{site.port}/a", policy)

    assert result.body == b"ok"
    assert network_guard.tcp_connects() == [("127.0.0.2", site.port), ("127.0.0.1", site.port)]


def test_every_error_is_a_fetch_error() -> None:
    errors: list[Callable[[], FetchError]] = [
        UrlNotAllowed,
        FetchTimeout,
        ResponseTooLarge,
        UnreachableHost,
        TooManyRedirects,
        lambda: HttpStatusError(404),
    ]
    for make in errors:
        exc = make()
        assert isinstance(exc, FetchError)
        _assert_friendly(exc)
