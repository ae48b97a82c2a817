"""The feed poller (corpus.feed_poller) and its CLI (bot.commands.feed_cmds).

Everything runs against NewsSite on 127.0.0.1; the autouse ``network_guard`` fails
any test that tries to connect anywhere else, which is also how the refusal tests
show that a private address was never dialled.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import time
import types
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.commands import feed_cmds, search_cmds
from bot.settings import Settings
from corpus.feed_poller import PollResult, poll_due, poll_feed, validate_feed_url
from corpus.feed_repo import Feed, FeedRepo, utcnow
from corpus.fetch import UrlNotAllowed, UrlPolicy
from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo
from tests.servers.news_site import NewsSite

PRIVATE = "http://10.0.0.5"

# --------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse (and remember) every connection outside 127.0.0.0/8."""
    blocked: list[Any] = []
    real_connect = socket.socket.connect
    loopback = ipaddress.ip_network("127.0.0.0/8")

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):
            try:
                allowed = ipaddress.ip_address(address[0]) in loopback
            except ValueError:
                allowed = False
            if not allowed:
                blocked.append(address)
                raise PermissionError(f"test network guard: connect to {address!r} blocked")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield blocked
    assert not blocked, f"connection attempts outside 127.0.0.0/8: {blocked}"


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as s:
        yield s


@pytest.fixture
def policy(site: NewsSite) -> UrlPolicy:
    return UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=5.0)


def paragraphs(topic: str, n: int = 4) -> list[str]:
    """Distinct, article-like paragraphs about ``topic`` (long enough for trafilatura)."""
    return [
        f"Paragraph {i} on {topic}: officials said on Tuesday that the plan for {topic} "
        f"would go ahead, and that about {i * 1000 + 500} people were expected to take part "
        f"in the first phase, according to a statement published by the regional authority."
        for i in range(1, n + 1)
    ]


def html(paras: list[str]) -> str:
    return "".join(f"<p>{p}</p>" for p in paras)


def when(day: int, hour: int = 9) -> datetime:
    return datetime(2024, 5, day, hour, 0, tzinfo=UTC)


def full_item(site: NewsSite, slug: str, day: int, **extra: Any) -> dict[str, Any]:
    """An RSS item carrying its whole article (content:encoded)."""
    return {
        "guid": f"guid-{slug}",
        "title": f"Story {slug}",
        "link": site.url(f"/news/{slug}"),
        "published": when(day),
        "author": "Ann Writer",
        "summary": f"Teaser for {slug}.",
        "content": html(paragraphs(slug)),
        **extra,
    }


def linked_item(site: NewsSite, slug: str, day: int, *, summary: str = "", **extra: Any):
    """An entry with only a short summary and a link to its page."""
    return {
        "guid": f"guid-{slug}",
        "title": f"Story {slug}",
        "link": site.url(f"/news/{slug}"),
        "published": when(day),
        "summary": summary or f"Teaser for {slug}.",
        **extra,
    }


def serve_page(site: NewsSite, slug: str, day: int, paras: list[str] | None = None) -> None:
    site.set_page(
        f"/news/{slug}",
        site.article_html(
            f"Story {slug}", paras or paragraphs(slug), author="Bo Reporter", published=when(day)
        ),
    )


async def add_feed(store: Store, site: NewsSite, path: str, minutes: int = 30) -> int:
    return (await FeedRepo(store).add(site.url(path), minutes)).id


async def current(store: Store, feed_id: int) -> Feed:
    feed = await FeedRepo(store).get(feed_id)
    assert feed is not None
    return feed


async def poll(store: Store, feed_id: int, policy: UrlPolicy, **kwargs: Any) -> PollResult:
    """Poll a feed as stored now (validators, failures), like the scheduler does."""
    return await poll_feed(store, await current(store, feed_id), policy, **kwargs)


async def article_count(store: Store) -> int:
    return (await store.stats()).articles


def near(actual: datetime, expected: datetime, slack: timedelta = timedelta(minutes=1)) -> bool:
    return abs(actual - expected) <= slack


# --------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------


async def test_rss_full_content_then_not_modified_then_one_new_item(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    items = [full_item(site, "alpha", 2), full_item(site, "beta", 3)]
    site.set_feed("/feed.xml", items, full_content=True, title="Harbour Gazette")
    feed_id = await add_feed(store, site, "/feed.xml")

    first = await poll(store, feed_id, policy)
    assert first.error is None and not first.not_modified and not first.failed_entries
    assert len(first.new_article_ids) == 2
    articles = await store.get_articles(first.new_article_ids)
    by_title = {a.title: a for a in articles.values()}
    beta = by_title["Story beta"]
    assert beta.published_at == date(2024, 5, 3)
    assert beta.url == site.url("/news/beta")
    assert beta.source == "Harbour Gazette"
    assert beta.authors == ("Ann Writer",)
    assert beta.text == "\n\n".join(paragraphs("beta"))
    assert not site.requests_for("/news/beta")  # full content: no page fetch
    assert (await current(store, feed_id)).title == "Harbour Gazette"

    second = await poll(store, feed_id, policy)
    assert second.not_modified and not second.new_article_ids and second.error is None
    etag = (await current(store, feed_id)).etag
    assert etag and site.requests_for("/feed.xml")[-1].headers.get("if-none-match") == etag

    site.set_feed(
        "/feed.xml",
        [full_item(site, "gamma", 4), *items],
        full_content=True,
        title="Harbour Gazette",
    )
    third = await poll(store, feed_id, policy)
    assert not third.not_modified and third.duplicates == 0 and not third.updated_article_ids
    assert len(third.new_article_ids) == 1
    assert (await store.get_article(third.new_article_ids[0])).title == "Story gamma"  # type: ignore[union-attr]
    assert await article_count(store) == 3


async def test_atom_summary_only_fetches_and_reads_pages(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    for slug, day in (("delta", 5), ("echo", 6)):
        serve_page(site, slug, day)
    site.set_feed(
        "/atom.xml", [linked_item(site, "delta", 5), linked_item(site, "echo", 6)], kind="atom"
    )
    feed_id = await add_feed(store, site, "/atom.xml")

    result = await poll(store, feed_id, policy)

    assert result.error is None and not result.failed_entries
    assert len(result.new_article_ids) == 2
    assert len(site.requests_for("/news/delta")) == 1
    articles = list((await store.get_articles(result.new_article_ids)).values())
    delta = next(a for a in articles if a.title == "Story delta")
    assert delta.text == "\n\n".join(paragraphs("delta"))  # boilerplate and <h1> gone
    assert delta.source == "The Daily Test"
    assert delta.authors == ("Bo Reporter",)
    assert delta.published_at == date(2024, 5, 5)
    assert delta.url == site.url("/news/delta")


async def test_changed_page_with_new_guid_updates_the_article(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    serve_page(site, "story", 7)
    site.set_feed("/feed.xml", [linked_item(site, "story", 7, guid="v1")])
    feed_id = await add_feed(store, site, "/feed.xml")
    first = await poll(store, feed_id, policy)
    assert len(first.new_article_ids) == 1
    article_id = first.new_article_ids[0]

    corrected = paragraphs("story")[:2] + ["Correction: the plan was approved on Wednesday."]
    serve_page(site, "story", 7, corrected)
    site.set_feed("/feed.xml", [linked_item(site, "story", 7, guid="v2")])
    second = await poll(store, feed_id, policy)

    assert second.updated_article_ids == [article_id]
    assert not second.new_article_ids and second.duplicates == 0
    assert await article_count(store) == 1
    article = await store.get_article(article_id)
    assert article is not None and "Correction:" in article.text


async def test_malformed_feed_backs_off_and_a_good_poll_resets(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    site.set_malformed("/feed.xml")
    feed_id = await add_feed(store, site, "/feed.xml", minutes=30)

    result = await poll(store, feed_id, policy)

    assert result.error and "feed" in result.error
    feed = await current(store, feed_id)
    assert feed.failures == 1 and feed.last_error == result.error
    assert near(feed.next_run_at, utcnow() + timedelta(minutes=60))  # backoff(30, 1)
    assert not await FeedRepo(store).due()

    site.set_feed("/feed.xml", [full_item(site, "fixed", 8)], full_content=True)
    again = await poll(store, feed_id, policy)

    assert again.error is None and len(again.new_article_ids) == 1
    feed = await current(store, feed_id)
    assert feed.failures == 0 and feed.last_error is None
    assert near(feed.next_run_at, utcnow() + timedelta(minutes=30))


async def test_hanging_feed_times_out_quickly(store: Store, site: NewsSite) -> None:
    site.set_hang("/slow.xml", 10)
    feed_id = await add_feed(store, site, "/slow.xml")
    quick = UrlPolicy(allowed_hosts=frozenset({site.netloc}), timeout=0.5)

    started = time.monotonic()
    result = await poll(store, feed_id, quick)

    assert time.monotonic() - started < 3
    assert result.error and "too long" in result.error
    assert (await current(store, feed_id)).failures == 1


async def test_feed_redirecting_to_private_address_is_refused(
    store: Store, site: NewsSite, policy: UrlPolicy, network_guard: list[Any]
) -> None:
    site.set_redirect("/moved.xml", f"{PRIVATE}/feed.xml")
    feed_id = await add_feed(store, site, "/moved.xml")

    result = await poll(store, feed_id, policy)

    assert result.error and "private network" in result.error
    assert not network_guard  # refused before connecting
    assert (await current(store, feed_id)).last_error == result.error


async def test_entry_linking_to_private_address_fails_alone(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    serve_page(site, "fine", 9)
    long_summary = "A summary long enough to stand in for the article. " * 6
    items = [
        linked_item(site, "fine", 9),
        linked_item(site, "sneaky", 10, link=f"{PRIVATE}/admin", summary=long_summary),
    ]
    site.set_feed("/feed.xml", items)
    feed_id = await add_feed(store, site, "/feed.xml")

    result = await poll(store, feed_id, policy)

    assert result.error is None and len(result.new_article_ids) == 1
    assert len(result.failed_entries) == 1
    label, reason = result.failed_entries[0]
    assert label == f"{PRIVATE}/admin" and "private network" in reason
    assert await store.article_by_url(f"{PRIVATE}/admin") is None  # no summary stand-in
    assert await FeedRepo(store).seen_guids(feed_id, ["guid-sneaky"]) == {"guid-sneaky"}


async def test_missing_article_page_fails_and_the_rest_land(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    serve_page(site, "here", 11)
    site.set_feed("/feed.xml", [linked_item(site, "gone", 12), linked_item(site, "here", 11)])
    feed_id = await add_feed(store, site, "/feed.xml")

    result = await poll(store, feed_id, policy)

    assert len(result.new_article_ids) == 1
    assert [(label, "404" in reason) for label, reason in result.failed_entries] == [
        (site.url("/news/gone"), True)
    ]
    # A 404 is final: the entry is not fetched again.
    assert await FeedRepo(store).seen_guids(feed_id, ["guid-gone"]) == {"guid-gone"}


async def test_failed_page_falls_back_to_a_long_summary(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    summary = " ".join(paragraphs("summit", 2))
    site.set_feed("/feed.xml", [linked_item(site, "summit", 13, summary=summary)])
    feed_id = await add_feed(store, site, "/feed.xml")

    result = await poll(store, feed_id, policy)

    assert not result.failed_entries and len(result.new_article_ids) == 1
    article = await store.get_article(result.new_article_ids[0])
    assert article is not None
    assert article.text == summary and article.url == site.url("/news/summit")
    assert article.published_at == date(2024, 5, 13)


async def test_server_error_is_retried_on_the_next_poll(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    site.set_page("/news/later", "<p>busy</p>", status=503)
    site.set_feed("/feed.xml", [linked_item(site, "later", 14)])
    feed_id = await add_feed(store, site, "/feed.xml")

    first = await poll(store, feed_id, policy)
    assert not first.new_article_ids and "503" in first.failed_entries[0][1]
    assert not await FeedRepo(store).seen_guids(feed_id, ["guid-later"])

    serve_page(site, "later", 14)
    second = await poll(store, feed_id, policy)

    assert not second.not_modified  # validators were not kept while work remained
    assert len(second.new_article_ids) == 1 and not second.failed_entries


async def test_empty_feed_is_no_error(store: Store, site: NewsSite, policy: UrlPolicy) -> None:
    site.set_feed("/feed.xml", [], title="Quiet News")
    feed_id = await add_feed(store, site, "/feed.xml")

    result = await poll(store, feed_id, policy)

    assert result == PollResult(feed_id, site.url("/feed.xml"))
    assert (await current(store, feed_id)).title == "Quiet News"


async def test_same_link_in_two_feeds_is_one_article(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    shared = full_item(site, "shared", 15)
    site.set_feed("/one.xml", [shared], full_content=True)
    site.set_feed("/two.xml", [{**shared, "guid": "other-guid"}], full_content=True)
    one = await add_feed(store, site, "/one.xml")
    two = await add_feed(store, site, "/two.xml")

    first = await poll(store, one, policy)
    second = await poll(store, two, policy)

    assert len(first.new_article_ids) == 1
    assert not second.new_article_ids and second.duplicates == 1
    assert await article_count(store) == 1


async def test_max_entries_takes_the_newest_and_leaves_the_rest_for_later(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    items = [full_item(site, slug, day) for slug, day in (("old", 1), ("new", 20), ("mid", 10))]
    site.set_feed("/feed.xml", items, full_content=True)
    feed_id = await add_feed(store, site, "/feed.xml")

    first = await poll(store, feed_id, policy, max_entries=2)
    titles = [(await store.get_article(i)).title for i in first.new_article_ids]  # type: ignore[union-attr]
    assert titles == ["Story new", "Story mid"]

    second = await poll(store, feed_id, policy, max_entries=2)
    assert len(second.new_article_ids) == 1 and not second.not_modified


async def test_poll_due_polls_only_due_feeds(
    store: Store, site: NewsSite, policy: UrlPolicy
) -> None:
    site.set_feed("/a.xml", [full_item(site, "due", 16)], full_content=True)
    site.set_feed("/b.xml", [full_item(site, "later", 17)], full_content=True)
    due_id = await add_feed(store, site, "/a.xml")
    later_id = await add_feed(store, site, "/b.xml")
    await FeedRepo(store).record_success(
        await current(store, later_id), title=None, etag=None, last_modified=None
    )

    results = await poll_due(store, policy)

    assert [r.feed_id for r in results] == [due_id]
    assert not site.requests_for("/b.xml")


def test_validate_feed_url() -> None:
    policy = UrlPolicy()
    validate_feed_url("https://example.org/rss", policy)
    for bad in (f"{PRIVATE}/rss", "ftp://example.org/rss", "http://user:pw@example.org/"):
        with pytest.raises(UrlNotAllowed):
            validate_feed_url(bad, policy)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_data_dir: Path, site: NewsSite) -> Settings:
    return Settings(
        data_dir=tmp_data_dir, url_allowlist=frozenset({site.netloc}), fetch_timeout=5.0
    )


def parse(*argv: str) -> argparse.Namespace:
    """Parse argv with only the feed commands registered."""
    parser = argparse.ArgumentParser(prog="newsbot")
    feed_cmds.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def run(settings: Settings, *argv: str) -> int:
    args = parse(*argv)
    return int(await args.handler(settings, args))


async def test_cli_add_list_remove(
    settings: Settings, site: NewsSite, capsys: pytest.CaptureFixture[str]
) -> None:
    url = site.url("/feed.xml")
    assert await run(settings, "feeds", "add", url, "--minutes", "15") == 0
    assert await run(settings, "feeds", "add", url) == 0
    out = capsys.readouterr().out
    assert f"added feed 1: {url} (every 15 min)" in out and "feed 1 already exists" in out

    assert await run(settings, "feeds", "list") == 0
    listing = capsys.readouterr().out
    assert url in listing and "every 15 min" in listing and "failures 0" in listing

    assert await run(settings, "feeds", "remove", "1") == 0
    assert await run(settings, "feeds", "remove", "1") == 1
    assert await run(settings, "feeds", "list") == 0
    assert "no feeds" in capsys.readouterr().out


async def test_cli_add_uses_default_interval_and_refuses_private_urls(
    settings: Settings, site: NewsSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(settings, "feeds", "add", f"{PRIVATE}/rss") == 2
    assert "private network" in capsys.readouterr().err
    assert await run(settings, "feeds", "add", site.url("/rss")) == 0
    assert f"(every {settings.feed_poll_minutes} min)" in capsys.readouterr().out


class FakeServices:
    """Stands in for ``Services`` so that polling loads no model (no topic matcher: feed
    subscriptions are routed without one)."""

    opened: list[FakeServices] = []

    def __init__(self, store: Store) -> None:
        self.store = store
        self.search = types.SimpleNamespace(count=0)
        self.closed = False

    @classmethod
    async def open(cls, settings: Settings, progress: Any = None) -> FakeServices:
        services = cls(await Store.open(settings.db_path))
        cls.opened.append(services)
        return services

    async def topic_matcher(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True
        await self.store.close()


@pytest.fixture
def fake_services(monkeypatch: pytest.MonkeyPatch) -> list[FakeServices]:
    monkeypatch.setattr(FakeServices, "opened", [])
    monkeypatch.setattr(search_cmds, "Services", FakeServices)
    return FakeServices.opened


async def _deliveries(settings: Settings) -> list[tuple[int, int]]:
    async with await Store.open(settings.db_path) as store:
        rows = await store.fetchall("SELECT chat_id, article_id FROM deliveries ORDER BY id")
        return [tuple(r) for r in rows]


async def test_cli_poll_prints_results_indexes_and_routes(
    settings: Settings,
    site: NewsSite,
    fake_services: list[FakeServices],
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.set_feed("/full.xml", [full_item(site, "cli", 18)], full_content=True)
    site.set_malformed("/bad.xml")
    for path in ("/full.xml", "/bad.xml"):
        assert await run(settings, "feeds", "add", site.url(path)) == 0
    async with await Store.open(settings.db_path) as store:
        subs = SubscriptionRepo(store)
        await subs.upsert_chat(77, "private")
        await subs.add(77, "feed", feed_id=1)
    capsys.readouterr()

    assert await run(settings, "poll") == 1  # a feed failed
    out = capsys.readouterr().out
    assert "feed 1 (" in out and "new 1, updated 0, duplicates 0, failed 0" in out
    assert "feed 2 (" in out and "error: " in out
    assert "queued 1 pushes" in out
    assert await _deliveries(settings) == [(77, 1)]
    assert len(fake_services) == 1 and fake_services[0].closed

    site.set_feed("/bad.xml", [], title="Fixed")
    assert await run(settings, "poll") == 0
    out = capsys.readouterr().out
    assert "feed 1 (" in out and "not modified" in out
    assert "feed 2 (" in out and "new 0" in out
    assert len(fake_services) == 1  # nothing changed: no index, no routing
    assert await _deliveries(settings) == [(77, 1)]


async def test_cli_poll_due_only(
    settings: Settings,
    site: NewsSite,
    fake_services: list[FakeServices],
    capsys: pytest.CaptureFixture[str],
) -> None:
    site.set_feed("/feed.xml", [full_item(site, "solo", 21)], full_content=True)
    assert await run(settings, "feeds", "add", site.url("/feed.xml")) == 0

    assert await run(settings, "poll", "--due-only") == 0
    assert "new 1" in capsys.readouterr().out
    assert len(fake_services) == 1 and fake_services[0].closed

    assert await run(settings, "poll", "--due-only") == 0  # not due for 30 minutes
    assert "no feeds to poll" in capsys.readouterr().out
