"""A small, scriptable news web site for tests (stdlib only, 127.0.0.1 only).

Tests change what the site serves while it runs::

    with NewsSite() as site:
        site.set_page("/a", site.article_html("Title", ["One.", "Two."]))
        site.set_feed("/feed.xml", [{"title": "Hello", ...}], kind="atom")
        site.set_redirect("/old", "/a")
        site.set_hang("/slow", 5)
        ...
        policy = UrlPolicy(allowed_hosts=frozenset({site.netloc}))

Static resources (pages, feeds, malformed) get a strong ETag and a
Last-Modified header and answer 304 to matching conditional requests.
Every request is recorded in ``site.requests``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from tests.servers.lifecycle import ServerLifecycle

__all__ = ["NewsSite", "RecordedRequest", "render_atom", "render_rss"]

HugeMode = Literal["length", "chunked", "eof", "stall"]
_CHUNK = 64 * 1024


class RecordedRequest(NamedTuple):
    path: str  # as sent, query string included
    headers: dict[str, str]  # header names lower-cased


@dataclass(frozen=True)
class _Static:
    body: bytes
    content_type: str
    status: int
    etag: str
    last_modified: datetime
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


@dataclass(frozen=True)
class _Hang:
    seconds: float


@dataclass(frozen=True)
class _Huge:
    n_bytes: int
    mode: HugeMode


_Resource = _Static | _Redirect | _Hang | _Huge


# --------------------------------------------------------------------------
# Feed rendering
# --------------------------------------------------------------------------


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside CDATA: split it across two sections.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render_rss(
    items: Iterable[Mapping[str, Any]], *, title: str, link: str, full_content: bool = False
) -> bytes:
    """RSS 2.0 with dc:creator and, when ``full_content``, content:encoded.

    Item keys (all optional except title): guid, title, link, published
    (aware datetime), summary (HTML), content (HTML), author.
    """
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">',
        "<channel>",
        f"<title>{xml_escape(title)}</title>",
        f"<link>{xml_escape(link)}</link>",
        f"<description>{xml_escape(title)} test feed</description>",
    ]
    for item in items:
        out.append("<item>")
        out.append(f"<title>{xml_escape(item['title'])}</title>")
        if item.get("link"):
            out.append(f"<link>{xml_escape(item['link'])}</link>")
        if item.get("guid"):
            out.append(f'<guid isPermaLink="false">{xml_escape(item["guid"])}</guid>')
        if item.get("published"):
            out.append(f"<pubDate>{format_datetime(item['published'])}</pubDate>")
        if item.get("author"):
            out.append(f"<dc:creator>{xml_escape(item['author'])}</dc:creator>")
        if item.get("summary"):
            out.append(f"<description>{xml_escape(item['summary'])}</description>")
        if full_content and item.get("content"):
            out.append(f"<content:encoded>{_cdata(item['content'])}</content:encoded>")
        out.append("</item>")
    out += ["</channel>", "</rss>"]
    return "\n".join(out).encode("utf-8")


def render_atom(
    items: Iterable[Mapping[str, Any]], *, title: str, link: str, full_content: bool = False
) -> bytes:
    """Atom 1.0; same item keys as ``render_rss`` (content only if ``full_content``)."""
    items = list(items)
    dates = [i["published"] for i in items if i.get("published")]
    updated = max(dates) if dates else datetime(2024, 1, 1, tzinfo=UTC)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{xml_escape(title)}</title>",
        f"<id>{xml_escape(link)}</id>",
        f'<link rel="alternate" href={quoteattr(link)}/>',
        f"<updated>{_rfc3339(updated)}</updated>",
    ]
    for item in items:
        out.append("<entry>")
        out.append(f"<title>{xml_escape(item['title'])}</title>")
        if item.get("guid"):
            out.append(f"<id>{xml_escape(item['guid'])}</id>")
        if item.get("link"):
            out.append(f'<link rel="alternate" href={quoteattr(item["link"])}/>')
        if item.get("published"):
            stamp = _rfc3339(item["published"])
            out.append(f"<published>{stamp}</published><updated>{stamp}</updated>")
        if item.get("author"):
            out.append(f"<author><name>{xml_escape(item['author'])}</name></author>")
        if item.get("summary"):
            out.append(f'<summary type="html">{xml_escape(item["summary"])}</summary>')
        if full_content and item.get("content"):
            out.append(f'<content type="html">{xml_escape(item["content"])}</content>')
        out.append("</entry>")
    out.append("</feed>")
    return "\n".join(out).encode("utf-8")


# --------------------------------------------------------------------------
# HTTP handling
# --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # never let a hanging handler block interpreter exit
    site: NewsSite


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked encoding
    timeout = 10  # idle keep-alive connections end on their own
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean

    def do_GET(self) -> None:
        site = self.server.site
        site._record(self.path, {k.lower(): v for k, v in self.headers.items()})
        resource = site._lookup(self.path.split("?", 1)[0])
        try:
            if resource is None:
                self._send_body(404, b"<h1>Not found</h1>", "text/html; charset=utf-8")
            elif isinstance(resource, _Static):
                self._send_static(resource)
            elif isinstance(resource, _Redirect):
                self._send_redirect(resource)
            elif isinstance(resource, _Hang):
                self._send_after_hang(resource)
            else:
                self._send_huge(resource)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. size limit)

    def _send_body(
        self, status: int, body: bytes, content_type: str, extra: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _not_modified(self, resource: _Static) -> bool:
        # RFC 9110: If-None-Match wins; If-Modified-Since only without it.
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or resource.etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is None:
            return False
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return resource.last_modified <= since

    def _send_static(self, resource: _Static) -> None:
        validators = {
            "ETag": resource.etag,
            "Last-Modified": format_datetime(resource.last_modified, usegmt=True),
        }
        extra = {**validators, **dict(resource.headers)}
        if resource.status == 200 and self._not_modified(resource):
            self.send_response(304)
            for name, value in validators.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._send_body(resource.status, resource.body, resource.content_type, extra)

    def _send_redirect(self, resource: _Redirect) -> None:
        self._send_body(
            resource.status, b"", "text/plain; charset=utf-8", {"Location": resource.location}
        )

    def _send_after_hang(self, resource: _Hang) -> None:
        # Wait on the site's stop event, not time.sleep, so stop() wakes us.
        if self.server.site._stopping.wait(resource.seconds):
            self.close_connection = True
            return
        self._send_body(200, b"<p>finally</p>", "text/html; charset=utf-8")

    def _send_huge(self, resource: _Huge) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if resource.mode in ("length", "stall"):
            self.send_header("Content-Length", str(resource.n_bytes))
        elif resource.mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:  # "eof": no length at all, the body ends when we close
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if resource.mode == "stall":
            # Promise n_bytes, deliver a little, then go quiet: only a client
            # that trusts the header fails fast instead of waiting.
            self.wfile.write(b"x" * min(1024, resource.n_bytes))
            self.wfile.flush()
            self.server.site._stopping.wait(60)
            self.close_connection = True
            return
        remaining = resource.n_bytes
        while remaining > 0 and not self.server.site._stopping.is_set():
            block = b"x" * min(_CHUNK, remaining)
            if resource.mode == "chunked":
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                self.wfile.write(block)
            remaining -= len(block)
        if resource.mode == "chunked":
            self.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------
# Public test fixture object
# --------------------------------------------------------------------------


@dataclass
class NewsSite(ServerLifecycle):
    """Threaded HTTP server on 127.0.0.1 with content set at run time."""

    _resources: dict[str, _Resource] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _server: _Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)

    # -- lifecycle ---------------------------------------------------------

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.site = self
        return server

    # -- addresses -----------------------------------------------------------

    @property
    def netloc(self) -> str:
        """Host and port as "127.0.0.1:PORT", the form ``UrlPolicy.allowed_hosts`` expects."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.netloc}{path if path.startswith('/') else '/' + path}"

    # -- content -------------------------------------------------------------

    def set_page(
        self,
        path: str,
        body: str | bytes,
        content_type: str = "text/html; charset=utf-8",
        status: int = 200,
        *,
        last_modified: datetime | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve ``body``; ``headers`` adds raw response headers (e.g. Content-Encoding)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        # Strong validator: changes whenever the bytes change.
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        # HTTP dates have one-second resolution; drop microseconds so that
        # "If-Modified-Since: <our own Last-Modified>" compares equal.
        modified = (last_modified or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        extra = tuple((headers or {}).items())
        self._set(path, _Static(data, content_type, status, etag, modified, extra))

    def set_feed(
        self,
        path: str,
        items: Iterable[Mapping[str, Any]],
        kind: Literal["rss", "atom"] = "rss",
        full_content: bool = False,
        *,
        title: str = "Test News",
    ) -> bytes:
        """Serve a feed built from ``items`` (see ``render_rss``); returns its bytes."""
        render = render_rss if kind == "rss" else render_atom
        body = render(items, title=title, link=self.url("/"), full_content=full_content)
        content_type = f"application/{kind}+xml; charset=utf-8"
        self.set_page(path, body, content_type)
        return body

    def set_redirect(self, path: str, location: str, status: int = 302) -> None:
        self._set(path, _Redirect(location, status))

    def set_hang(self, path: str, seconds: float) -> None:
        """Accept the request, then wait ``seconds`` (or until stop()) before answering."""
        self._set(path, _Hang(seconds))

    def set_malformed(self, path: str) -> None:
        """Serve bytes that are no feed (and no well-formed XML) at all."""
        garbage = b"\x00\x17\xff\xfeGARBAGE <<< {not: a feed} >>> &&& </>\x00"
        self.set_page(path, garbage, "application/rss+xml")

    def set_huge(self, path: str, n_bytes: int, *, mode: HugeMode = "length") -> None:
        """Stream ``n_bytes``: with an honest Content-Length ("length"),
        chunked ("chunked"), no length, ending at close ("eof"), or declare
        ``n_bytes`` but send only 1 KiB and stall until stop() ("stall")."""
        self._set(path, _Huge(n_bytes, mode))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    # -- HTML helper -----------------------------------------------------------

    @staticmethod
    def article_html(
        title: str,
        paragraphs: Iterable[str],
        author: str | None = None,
        published: datetime | None = None,
        site_name: str | None = None,
    ) -> str:
        """A realistic article page: metadata in <head>, boilerplate around <article>."""
        name = escape(site_name or "The Daily Test")
        meta = [
            f'<meta property="og:title" content="{escape(title)}">',
            '<meta property="og:type" content="article">',
            f'<meta property="og:site_name" content="{name}">',
        ]
        byline = ""
        if author:
            meta.append(f'<meta name="author" content="{escape(author)}">')
            byline = f'<p class="byline">By <span class="author">{escape(author)}</span></p>'
        dateline = ""
        if published:
            stamp = published.isoformat()
            meta.append(f'<meta property="article:published_time" content="{stamp}">')
            dateline = f'<time datetime="{stamp}">{published:%B %d, %Y}</time>'
        body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} | {name}</title>
{chr(10).join(meta)}
<link rel="stylesheet" href="/static/site.css">
<script>window.analytics = {{"track": true}};</script>
</head>
<body>
<header class="site-header"><a href="/" class="logo">{name}</a>
<nav><ul><li><a href="/world">World</a></li><li><a href="/politics">Politics</a></li>
<li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li></ul></nav>
</header>
<main>
<article>
<h1>{escape(title)}</h1>
{byline}
{dateline}
{body}
</article>
<aside class="related"><h2>Most read</h2><ul><li><a href="/x">Another story</a></li></ul></aside>
</main>
<footer><p>&copy; {name}. All rights reserved.</p>
<a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>
</body>
</html>
"""

    # -- internals -------------------------------------------------------------

    def _set(self, path: str, resource: _Resource) -> None:
        with self._lock:
            self._resources[path] = resource

    def _lookup(self, path: str) -> _Resource | None:
        with self._lock:
            return self._resources.get(path)

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, headers))
