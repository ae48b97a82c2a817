"""Safe HTTP fetching for the news corpus.

Anything a Telegram user types can end up here as a URL, so this module is
the SSRF boundary of the project.  The rules:

* only ``http``/``https``, never credentials in the URL;
* every address the request may go to must be public (not private,
  loopback, link-local, multicast, reserved, unspecified, site-local;
  IPv4 embedded in IPv6 is unwrapped first).  This is checked for IP
  literals before any DNS, for host names after resolving them, and again
  for every redirect hop (redirects are followed manually for that reason);
* the connection goes to the address that was checked (DNS pinning, see
  ``_pinned_request``), so DNS rebinding cannot swap in a private address
  between the check and the connect;
* a total time budget and a byte budget bound what one fetch can cost.

``UrlPolicy.allowed_hosts`` is the single escape hatch: explicitly listed
``host`` / ``host:port`` entries may resolve to non-public addresses.  It
exists for tests and self-hosted setups that must reach a known local
server; everything else follows the rules.

All exceptions derive from ``FetchError`` and ``str(exc)`` is a short
message that is safe to show to end users (no internals, no resolved IPs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass

import httpx

__all__ = [
    "FetchError",
    "FetchResult",
    "FetchTimeout",
    "HttpStatusError",
    "ResponseTooLarge",
    "TooManyRedirects",
    "UnreachableHost",
    "UrlNotAllowed",
    "UrlPolicy",
    "check_url_allowed",
    "fetch_url",
    "is_public_address",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,"
    "application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.5"
)
# Only encodings the stdlib can decode.  httpx would also offer br/zstd when
# those optional packages happen to be installed; being explicit keeps the
# behaviour identical everywhere.
_ACCEPT_ENCODING = "gzip, deflate"
# RFC 6052 well-known NAT64 prefix: the last 32 bits are an IPv4 address.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


# --------------------------------------------------------------------------
# Policy, result and errors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UrlPolicy:
    """Limits and permissions for one fetch (shared by all its redirect hops)."""

    max_bytes: int = 5_000_000
    timeout: float = 15.0  # total seconds for the whole fetch, redirects included
    max_redirects: int = 5
    # "host" or "host:port" ("[v6]:port" for IPv6) that may resolve to
    # loopback/private addresses.  Only for tests / known self-hosted servers.
    allowed_hosts: frozenset[str] = frozenset()
    user_agent: str = "newsbot/0.1 (+https://github.com/newsbot)"

    def __post_init__(self) -> None:
        # Fail at construction time: a typo here would otherwise silently
        # turn into "URL refused" much later.
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")
        for entry in self.allowed_hosts:
            _parse_host_entry(entry)  # raises ValueError on malformed entries


@dataclass(frozen=True)
class FetchResult:
    """Outcome of a successful fetch (2xx/3xx-without-redirect, or 304)."""

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content_type: str  # media type only, lower case ("text/html"); "" if absent
    charset: str | None  # from the Content-Type header, lower case
    body: bytes
    etag: str | None
    last_modified: str | None
    not_modified: bool = False  # 304 answer to a conditional GET; body is b""


class FetchError(Exception):
    """Base class; ``str(exc)`` is a user-facing message."""

    default_message = "Sorry, I couldn't fetch that address."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class UrlNotAllowed(FetchError):
    default_message = "Sorry, I can't fetch that address."


class FetchTimeout(FetchError):
    default_message = "The site took too long to answer."


class ResponseTooLarge(FetchError):
    default_message = "That page is too large for me to read."


class UnreachableHost(FetchError):
    default_message = "I couldn't reach that site."


class TooManyRedirects(FetchError):
    default_message = "That address redirects too many times."


class HttpStatusError(FetchError):
    """The server answered with status >= 400 (kept in ``.status``)."""

    def __init__(self, status: int, message: str | None = None) -> None:
        self.status = status
        super().__init__(message or f"The site answered with an error (HTTP {status}).")

    def __reduce__(self) -> tuple[type[HttpStatusError], tuple[int, str]]:
        # Default exception pickling would pass the message as ``status``.
        return (type(self), (self.status, str(self)))


# --------------------------------------------------------------------------
# URL and address checks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A parsed, syntactically allowed URL (addresses not yet checked)."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host, lower case, no brackets, no trailing dot
    port: int
    allowlisted: bool

    @property
    def literal_ip(self) -> IPAddress | None:
        return _ip_or_none(self.host)


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _parse_host_entry(entry: str) -> tuple[str, int | None]:
    """Split an ``allowed_hosts`` entry into (host, port or None)."""
    text = entry.strip().lower()
    port_text: str | None = None
    if text.startswith("["):  # "[::1]" or "[::1]:8080"
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed allowed_hosts entry: {entry!r}")
        port_text = rest[1:] or None
    elif text.count(":") == 1:  # "host:port"
        host, port_text = text.split(":")
    else:  # "host", or a bare IPv6 literal
        host = text
        if ":" in host and _ip_or_none(host) is None:
            raise ValueError(f"malformed allowed_hosts entry: {entry!r}")
    host = host.rstrip(".")
    if not host:
        raise ValueError(f"malformed allowed_hosts entry: {entry!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"malformed port in allowed_hosts entry: {entry!r}")
    return host, int(port_text)


def _is_allowlisted(host: str, port: int, allowed_hosts: frozenset[str]) -> bool:
    for entry in allowed_hosts:
        entry_host, entry_port = _parse_host_entry(entry)
        if entry_host == host and entry_port in (None, port):
            return True
    return False


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """IPv4 address a v6 address really points at (mapped, NAT64, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public_address(ip: IPAddress) -> bool:
    """True if ``ip`` is a globally routable unicast address.

    ``is_global`` alone is not enough on Python 3.11 (e.g. it is True for
    site-local ``fec0::/10``, multicast and the deprecated ``::a.b.c.d``),
    hence the explicit list.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _parse_target(url: str | httpx.URL, policy: UrlPolicy) -> _Target:
    """Syntactic checks that need no network: scheme, credentials, IP literal."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        scheme = parsed.scheme.lower()
        raw_host = parsed.raw_host.decode("ascii")
        port = parsed.port
    except (httpx.InvalidURL, TypeError, ValueError, UnicodeError):
        raise UrlNotAllowed("That doesn't look like a valid web address.") from None
    if scheme not in _ALLOWED_SCHEMES:
        raise UrlNotAllowed("Only http:// and https:// addresses can be fetched.")
    if parsed.userinfo:
        # Credentials would be sent to whatever host a redirect picks and
        # are a classic way to disguise the real host ("https://bank@evil").
        raise UrlNotAllowed("Addresses containing a username or password can't be fetched.")
    host = raw_host.lower().rstrip(".")
    if not host:
        raise UrlNotAllowed("That doesn't look like a valid web address.")
    port = port or _DEFAULT_PORTS[scheme]
    target = _Target(parsed, host, port, _is_allowlisted(host, port, policy.allowed_hosts))
    ip = target.literal_ip
    if ip is not None and not target.allowlisted and not is_public_address(ip):
        log.info("refused non-public literal address in %s", parsed)
        raise UrlNotAllowed("That address points to a private network, so I can't fetch it.")
    return target


def check_url_allowed(url: str, policy: UrlPolicy) -> None:
    """Raise ``UrlNotAllowed`` for URLs refused without any DNS lookup.

    Checks the scheme, credentials and IP-literal hosts.  Host names still
    need the resolution check that ``fetch_url`` performs.
    """
    _parse_target(url, policy)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """Resolve ``host`` to address strings (module-level so tests can fake DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [
        str(sockaddr[0])
        for family, _type, _proto, _canon, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


async def _resolve_checked(target: _Target) -> list[IPAddress]:
    """Addresses to connect to; every one of them must pass the policy.

    All addresses are checked, not just the first: the OS or a retry could
    otherwise end up on a private one that hid behind a public one.
    """
    literal = target.literal_ip
    if literal is not None:
        return [literal]  # already checked in _parse_target
    try:
        raw = await _getaddrinfo(target.host, target.port)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        raise UnreachableHost(f"I couldn't find the site {target.host}.") from None
    addresses: list[IPAddress] = []
    for text in raw:
        ip = _ip_or_none(text.split("%", 1)[0])  # drop an IPv6 zone id
        if ip is not None and ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise UnreachableHost(f"I couldn't find the site {target.host}.")
    if not target.allowlisted and not all(is_public_address(ip) for ip in addresses):
        log.info("refused %s: resolves to a non-public address", target.host)
        raise UrlNotAllowed("That address points to a private network, so I can't fetch it.")
    return addresses


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


def _pinned_request(
    client: httpx.AsyncClient, target: _Target, ip: IPAddress, headers: dict[str, str]
) -> httpx.Request:
    """Build a request that connects to ``ip`` but speaks to ``target.host``.

    DNS rebinding: if httpx resolved the name itself, a malicious DNS server
    could answer with a public address for our check and a private one for
    the connect a few milliseconds later.  Instead the URL's host is
    replaced by the checked IP, so httpx connects to exactly that address
    without resolving anything, while the ``Host`` header carries the real
    name (virtual hosting) and, for https, the ``sni_hostname`` extension
    makes httpcore send SNI for the real name and verify the certificate
    against it.  Remaining gap: a caller-supplied client that routes through
    a proxy lets the proxy resolve the name again; ``fetch_url``'s own
    client ignores proxy environment variables for that reason.
    """
    url = target.url.copy_with(host=str(ip))
    pinned_headers = {**headers, "Host": target.url.netloc.decode("ascii")}
    extensions: dict[str, str] = {}
    if target.url.scheme == "https" and target.literal_ip is None:
        extensions["sni_hostname"] = target.host
    return client.build_request("GET", url, headers=pinned_headers, extensions=extensions)


async def _send_pinned(
    client: httpx.AsyncClient, target: _Target, addresses: list[IPAddress], headers: dict[str, str]
) -> httpx.Response:
    """Send to the first checked address that accepts a connection.

    Returns a streaming response; the caller must close it.  Trying the
    next address on a refused connection mimics what a normal client does
    for dual-stack hosts (e.g. "localhost" -> ::1 and 127.0.0.1).
    """
    for ip in addresses:
        request = _pinned_request(client, target, ip, headers)
        try:
            return await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            log.debug("connection to %s for %s failed", ip, target.host)
    raise UnreachableHost(f"I couldn't connect to {target.host}.")


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """Read the (decoded) body, stopping as soon as it exceeds ``max_bytes``.

    Content-Length is checked first so an honest huge response is refused
    without reading it; the running count catches servers that omit or
    understate it (chunked, read-until-close) and compressed bodies that
    inflate.  Peak memory is bounded by ``max_bytes`` plus one decoded chunk.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge()
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge()  # the caller closes the stream: we stop reading
    return bytes(body)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _result_from_response(
    response: httpx.Response,
    requested_url: str,
    target: _Target,
    policy: UrlPolicy,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    status = response.status_code
    if status >= 400:
        raise HttpStatusError(status)
    not_modified = status == 304
    body = b"" if not_modified else await _read_limited(response, policy.max_bytes)
    charset = response.charset_encoding
    new_etag = response.headers.get("etag")
    new_last_modified = response.headers.get("last-modified")
    if not_modified:
        # Keep the caller's validators when the 304 doesn't repeat them, so
        # they can be stored again unchanged.
        new_etag = new_etag or etag
        new_last_modified = new_last_modified or last_modified
    return FetchResult(
        url=requested_url,
        final_url=str(target.url),
        status=status,
        content_type=_media_type(response),
        charset=charset.lower() if charset else None,
        body=body,
        etag=new_etag,
        last_modified=new_last_modified,
        not_modified=not_modified,
    )


def _request_headers(
    policy: UrlPolicy, etag: str | None, last_modified: str | None
) -> dict[str, str]:
    headers = {
        "User-Agent": policy.user_agent,
        "Accept": _ACCEPT,
        "Accept-Encoding": _ACCEPT_ENCODING,
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


async def _fetch_with_redirects(
    client: httpx.AsyncClient,
    requested_url: str,
    target: _Target,
    policy: UrlPolicy,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    """Follow redirects by hand so every hop passes the full policy check."""
    headers = _request_headers(policy, etag, last_modified)
    for _hop in range(policy.max_redirects + 1):
        addresses = await _resolve_checked(target)
        response = await _send_pinned(client, target, addresses, headers)
        try:
            if response.status_code not in _REDIRECT_STATUSES:
                return await _result_from_response(
                    response, requested_url, target, policy, etag, last_modified
                )
            location = response.headers.get("location")
            if not location:
                raise FetchError("The site sent a redirect without a destination.")
            try:
                next_url = target.url.join(location)
            except (httpx.InvalidURL, ValueError, UnicodeError):
                raise UrlNotAllowed("The site redirected to an invalid address.") from None
            log.debug("redirect %s -> %s", target.url, next_url)
            target = _parse_target(next_url, policy)
        finally:
            await response.aclose()
    raise TooManyRedirects()


async def fetch_url(
    url: str,
    policy: UrlPolicy,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> FetchResult:
    """Fetch ``url`` under ``policy``; raise a ``FetchError`` subclass on failure.

    ``etag`` / ``last_modified`` (from a previous ``FetchResult``) turn the
    request into a conditional GET; an unchanged resource then comes back
    with ``not_modified=True`` and an empty body.

    A caller-supplied ``client`` is used as is and not closed; it should not
    use a proxy (see ``_pinned_request``).  Without one, a short-lived client
    is created that ignores proxy variables and .netrc (``trust_env=False``).
    """
    target = _parse_target(url, policy)  # refuse before touching the network
    try:
        async with asyncio.timeout(policy.timeout):
            if client is not None:
                return await _fetch_with_redirects(client, url, target, policy, etag, last_modified)
            async with httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(policy.timeout),  # backstop per operation
            ) as own_client:
                return await _fetch_with_redirects(
                    own_client, url, target, policy, etag, last_modified
                )
    except FetchError:
        raise
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise FetchTimeout() from exc
    except httpx.HTTPError as exc:
        # Protocol errors, dropped connections, undecodable gzip...: the
        # details go to the log, the user gets a plain sentence.
        log.info("fetch of %s failed: %r", url, exc)
        raise FetchError("The site sent a response I couldn't read.") from exc
