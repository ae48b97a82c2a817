"""Where newsbot may fetch from: the URL policy, its errors, and the address checks.

The SSRF rules of ``corpus.fetch`` live here: only ``http``/``https`` without credentials;
every address a request may go to must be public (IPv4 embedded in IPv6 unwrapped first),
checked for IP literals before any DNS and for host names after resolving them.
``UrlPolicy.allowed_hosts`` is the single, explicit escape hatch (tests, self-hosting).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 6052 well-known NAT64 prefix: the last 32 bits are an IPv4 address.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")

# --------------------------------------------------------------------------
# Policy and errors
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
class Target:
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


def parse_target(url: str | httpx.URL, policy: UrlPolicy) -> Target:
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
    target = Target(parsed, host, port, _is_allowlisted(host, port, policy.allowed_hosts))
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
    parse_target(url, policy)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """Resolve ``host`` to address strings (module-level so tests can fake DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [
        str(sockaddr[0])
        for family, _type, _proto, _canon, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


async def resolve_checked(target: Target) -> list[IPAddress]:
    """Addresses to connect to; every one of them must pass the policy.

    All addresses are checked, not just the first: the OS or a retry could
    otherwise end up on a private one that hid behind a public one.
    """
    literal = target.literal_ip
    if literal is not None:
        return [literal]  # already checked in parse_target
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
