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
* a total time budget and a byte budget bound what one fetch can cost.  The
  byte budget counts decoded bytes: the body is decompressed here, from the
  raw stream, in steps of at most ``_STEP`` bytes (see ``_Inflater``), so a
  compression bomb stops at the budget instead of filling memory first.  A
  body compressed more than once (``Content-Encoding: gzip, gzip``) or in a
  coding we did not ask for is refused.

``UrlPolicy.allowed_hosts`` is the single escape hatch: explicitly listed
``host`` / ``host:port`` entries may resolve to non-public addresses.  It
exists for tests and self-hosted setups that must reach a known local
server; everything else follows the rules.

All exceptions derive from ``FetchError`` and ``str(exc)`` is a short
message that is safe to show to end users (no internals, no resolved IPs).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from corpus.url_rules import (
    FetchError,
    FetchTimeout,
    HttpStatusError,
    IPAddress,
    ResponseTooLarge,
    Target,
    TooManyRedirects,
    UnreachableHost,
    UrlNotAllowed,
    UrlPolicy,
    check_url_allowed,
    is_public_address,
    parse_target,
    resolve_checked,
)

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


_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,"
    "application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.5"
)
# Only encodings the stdlib can decode.  httpx would also offer br/zstd when
# those optional packages happen to be installed; being explicit keeps the
# behaviour identical everywhere.
_ACCEPT_ENCODING = "gzip, deflate"
# Most bytes one decompression step may produce.  httpx's own decoders inflate a
# whole network read at once: with gzip inside gzip, 590 bytes on the wire became
# 256 MB in one step, long before any size check could see it.
_STEP = 64 * 1024
# zlib window sizes: gzip framing, zlib framing, and raw deflate (no framing).
_GZIP_WBITS = zlib.MAX_WBITS | 16
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


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


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


def _pinned_request(
    client: httpx.AsyncClient, target: Target, ip: IPAddress, headers: dict[str, str]
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
    client: httpx.AsyncClient, target: Target, addresses: list[IPAddress], headers: dict[str, str]
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


class _Identity:
    """The body as sent: no content coding."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data


class _Inflater:
    """Decode one gzip or deflate stream in pieces of at most ``_STEP`` bytes.

    ``zlib``'s ``max_length`` stops a step once that much output exists and
    keeps the input it has not used in ``unconsumed_tail``, so however far a
    chunk would inflate, only one step's output exists at a time.
    """

    def __init__(self, coding: str) -> None:
        gzip = coding in ("gzip", "x-gzip")
        self._decoder = zlib.decompressobj(_GZIP_WBITS if gzip else _ZLIB_WBITS)
        # "deflate" should carry zlib framing, but some servers send raw deflate;
        # like browsers (and httpx), try zlib first and fall back on the first step.
        # That step needs the two header bytes zlib checks, hence ``_head``.
        self._may_be_raw = not gzip
        self._started = False
        self._head = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, one bounded step after another."""
        if not self._started and self._may_be_raw:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
        pending = data
        while not self._decoder.eof:
            out = self._step(pending)
            pending = self._decoder.unconsumed_tail
            if out:
                yield out
            # A full step may leave output inside zlib: ask again, even without input.
            if not pending and len(out) < _STEP:
                return
        # Anything after the end of the stream is ignored, as httpx does.

    def _step(self, data: bytes) -> bytes:
        try:
            out = self._decoder.decompress(data, _STEP)
        except zlib.error:
            if not (self._may_be_raw and not self._started):
                raise
            self._may_be_raw = False
            self._decoder = zlib.decompressobj(_RAW_DEFLATE_WBITS)
            out = self._decoder.decompress(data, _STEP)
        self._started = True
        return out


_BodyDecoder = _Identity | _Inflater


def _body_decoder(response: httpx.Response) -> _BodyDecoder:
    """A decoder for the response's Content-Encoding, or a ``FetchError``.

    One gzip or deflate layer is decoded.  Stacked codings are refused rather
    than decoded: no real site sends them, and each layer would multiply what a
    few hundred bytes can expand to.  So are codings we never offered.
    """
    header = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1:
        raise FetchError("The site sent the page compressed more than once; I don't read that.")
    if not codings:
        return _Identity()
    if codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise FetchError("The site sent the page in a compression I can't read.")
    return _Inflater(codings[0])


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    """Read and decode the body, stopping as soon as it exceeds ``max_bytes``.

    Content-Length is checked first so an honest huge response is refused
    without reading it; the running count catches servers that omit or
    understate it (chunked, read-until-close) and compressed bodies that
    inflate.  The raw stream is decoded here rather than by httpx, one bounded
    step at a time, so peak memory stays within ``max_bytes`` plus one step
    (``_STEP``) plus one network read, whatever the compression ratio.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge()
    decoder = _body_decoder(response)
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            for piece in decoder.feed(chunk):
                body += piece
                if len(body) > max_bytes:
                    raise ResponseTooLarge()  # the caller closes the stream: we stop reading
    except zlib.error as exc:
        log.info("undecodable %s body: %r", response.headers.get("content-encoding"), exc)
        raise FetchError("The site sent a response I couldn't read.") from None
    return bytes(body)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _result_from_response(
    response: httpx.Response,
    requested_url: str,
    target: Target,
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
    target: Target,
    policy: UrlPolicy,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    """Follow redirects by hand so every hop passes the full policy check."""
    headers = _request_headers(policy, etag, last_modified)
    for _hop in range(policy.max_redirects + 1):
        addresses = await resolve_checked(target)
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
            target = parse_target(next_url, policy)
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
    target = parse_target(url, policy)  # refuse before touching the network
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
        # Protocol errors, dropped connections...: the details go to the
        # log, the user gets a plain sentence.
        log.info("fetch of %s failed: %r", url, exc)
        raise FetchError("The site sent a response I couldn't read.") from exc
