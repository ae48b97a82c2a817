"""Readers: every supported format, directories, and every kind of bad input."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from corpus.models import ArticleDraft
from corpus.readers import SUPPORTED_SUFFIXES, ReadFailure, ReadResult, read_path
from corpus.readers.base import DEFAULT_MAX_FILE_BYTES
from corpus.readers.jsonfmt import parse_json
from corpus.readers.seed import looks_like_seed, parse_seed

SEED_NAME = "iran-russia-police-2023-06-29.txt"


@pytest.fixture
def readers_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "readers"


def read_all(path: Path, **kwargs: int) -> list[ReadResult]:
    return list(read_path(path, **kwargs))


def only_draft(path: Path) -> ArticleDraft:
    results = read_all(path)
    assert len(results) == 1, results
    assert isinstance(results[0], ArticleDraft), results[0]
    return results[0]


def only_failure(path: Path, **kwargs: int) -> ReadFailure:
    results = read_all(path, **kwargs)
    assert len(results) == 1, results
    assert isinstance(results[0], ReadFailure), results[0]
    failure = results[0]
    assert_clear_reason(failure)
    return failure


def assert_clear_reason(failure: ReadFailure) -> None:
    assert failure.reason.strip(), "a failure needs a reason"
    assert "\n" not in failure.reason, "the reason must be one line"
    assert len(failure.reason) < 200
    assert "Traceback" not in failure.reason


# -- the seed format ------------------------------------------------------------------------


def test_seed_sample(samples_dir: Path) -> None:
    draft = only_draft(samples_dir / SEED_NAME)
    assert draft.title == (
        "Iran\u2019s police chief inks agreement with Russia\u2019s National Guard on "
        "expansion of security cooperation"
    )
    assert draft.source == "IFP Media Wire"
    assert draft.published_at == date(2023, 6, 29)
    assert draft.text.startswith("Iran's police chief Brigadier General Ahmad Reza Radan")
    assert "By IFP" not in draft.text, "the byline is metadata, not body text"
    assert "date 2023" not in draft.text
    assert draft.origin == str(samples_dir / SEED_NAME)
    # paragraphs are separated by exactly one blank line, no stray white space
    paragraphs = draft.text.split("\n\n")
    assert len(paragraphs) == 9
    assert all(p == p.strip() and p for p in paragraphs)
    assert draft.text.endswith("ties between Tehran and Moscow.")


def test_every_sample_reads(samples_dir: Path) -> None:
    results = read_all(samples_dir)
    assert len(results) == 13
    assert all(isinstance(r, ArticleDraft) for r in results), [
        r for r in results if isinstance(r, ReadFailure)
    ]
    assert all(r.source and r.title and r.published_at for r in results)  # type: ignore[union-attr]


def test_seed_without_byline_and_with_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "no-byline.txt"
    path.write_bytes(
        "\ufeff date 2023-07-01 Saturday, July 1, 2023\r\nA title\r\n\r\n"
        "First paragraph.\r\n\r\nSecond paragraph.\r\n".encode()
    )
    draft = only_draft(path)
    assert draft.title == "A title"
    assert draft.source == ""
    assert draft.published_at == date(2023, 7, 1)
    assert draft.text == "First paragraph.\n\nSecond paragraph."


def test_looks_like_seed() -> None:
    assert looks_like_seed(" date 2023-06-29 Thursday, June 29, 2023\nTitle")
    assert not looks_like_seed("Title\n date 2023-06-29")


def test_seed_without_date_line(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("Just a title\n\nAnd a body.\n", encoding="utf-8")
    failure = only_failure(path)
    assert "date" in failure.reason


def test_seed_with_unparseable_date() -> None:
    result = parse_seed(" date 2023-13-45 Someday\nTitle\n\nBody.", "x.txt")
    assert isinstance(result, ReadFailure)
    assert result.reason == "missing date"


def test_seed_missing_title(tmp_path: Path) -> None:
    path = tmp_path / "no-title.txt"
    path.write_text(" date 2023-06-29 Thursday\n\n", encoding="utf-8")
    failure = only_failure(path)
    assert "missing title" in failure.reason


# -- JSON and JSON Lines ---------------------------------------------------------------------


def test_json_array_with_liberal_field_names(readers_dir: Path) -> None:
    path = readers_dir / "articles.json"
    results = read_all(path)
    assert len(results) == 2
    first, second = results
    assert isinstance(first, ArticleDraft) and isinstance(second, ArticleDraft)
    # headline / body / link / publisher / datePublished / authors as a string
    assert first.title == "Harbour authority in Port Veyra opens a second ferry pier"
    assert first.text.startswith("The Port Veyra harbour authority opened")
    assert "\n\nThe pier can berth" in first.text
    assert first.url == "https://ledger.example/port-veyra-pier"
    assert first.source == "Northern Ledger (fictional)"
    assert first.published_at == date(2023, 3, 14)
    assert first.authors == ("Tomas Reel", "Ana Kovic")
    assert first.origin == f"{path}[1]"
    # title / text / url / source / published_at / authors as a list
    assert second.title == "Lake Orrin rowing club wins the autumn regatta"
    assert second.published_at == date(2023, 10, 7)
    assert second.authors == ("Mira Sand", "J. R. Toller")
    assert second.origin == f"{path}[2]"


def test_json_object_with_articles_list(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(
        json.dumps(
            {
                "generated": "2023-06-30",
                "articles": [
                    {
                        "title": "Quay reopens",
                        "content": "The quay reopened. Boats returned.",
                        "publish_date": "2023/06/28",
                        "source": {"name": "Harbour Notes (fictional)"},
                        "author": [{"name": "Ola Berg"}, "Kim Dale"],
                    },
                    {"title": "No body here", "date": "2023-06-29"},
                ],
            }
        ),
        encoding="utf-8",
    )
    results = read_all(path)
    assert len(results) == 2
    draft, failure = results
    assert isinstance(draft, ArticleDraft)
    assert draft.published_at == date(2023, 6, 28)
    assert draft.source == "Harbour Notes (fictional)"
    assert draft.authors == ("Ola Berg", "Kim Dale")
    assert draft.origin == f"{path}:articles[1]"
    assert isinstance(failure, ReadFailure)
    assert failure.reason == "missing text"
    assert failure.origin == f"{path}:articles[2]"


def test_json_single_object_and_epoch_date(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(
        json.dumps(
            {"name": "Epoch", "description": "A body.", "created_at": 1688040000, "lang": "de"}
        ),
        encoding="utf-8",
    )
    draft = only_draft(path)
    assert draft.title == "Epoch"
    assert draft.language == "de"
    assert draft.published_at in (date(2023, 6, 29), date(2023, 6, 30))  # local time zone


def test_json_non_object_items_fail_alone() -> None:
    results = list(parse_json('[{"title": "T", "text": "B.", "date": "2023-01-02"}, 42]', "x"))
    assert isinstance(results[0], ArticleDraft)
    assert isinstance(results[1], ReadFailure)
    assert results[1].reason == "expected a JSON object, got int"
    assert results[1].origin == "x[2]"


def test_jsonl_with_a_broken_line(readers_dir: Path) -> None:
    path = readers_dir / "articles.jsonl"
    results = read_all(path)
    assert len(results) == 3
    drafts = [r for r in results if isinstance(r, ArticleDraft)]
    failures = [r for r in results if isinstance(r, ReadFailure)]
    assert [d.title for d in drafts] == [
        "Valen city council approves a new tram line",
        "Valen library extends its opening hours",
    ]
    assert drafts[0].authors == ("Petra Holm",)
    assert drafts[1].authors == ("Oskar Lind",), "the 'By ' of a byline is dropped"
    assert drafts[1].published_at == date(2023, 4, 5)  # RFC 2822 pubDate
    assert drafts[1].source == "Valen Gazette (fictional)"
    assert len(failures) == 1
    (failure,) = failures
    assert_clear_reason(failure)
    assert failure.origin == f"{path}:2"
    assert failure.reason.startswith("line 2: invalid JSON")


def test_jsonl_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path: Path) -> None:
    path = tmp_path / "gaps.ndjson"
    good = json.dumps({"title": "T", "text": "Body.", "date": "2023-02-03"})
    path.write_text(f"\n{good}\n\n   \n{{oops\n", encoding="utf-8")
    results = read_all(path)
    assert isinstance(results[0], ArticleDraft)
    assert results[0].origin == f"{path}:2"
    assert isinstance(results[1], ReadFailure)
    assert results[1].reason.startswith("line 5: invalid JSON")


# -- HTML ------------------------------------------------------------------------------------


def test_html_article_with_boilerplate(readers_dir: Path) -> None:
    draft = only_draft(readers_dir / "article.html")
    assert draft.title == "Merrow opens a lighthouse museum"
    assert draft.published_at == date(2023, 9, 12)
    assert draft.authors == ("Helga Brannstrom",)
    assert "museum in its decommissioned lighthouse on Tuesday" in draft.text
    assert '"Every keeper\'s family in Merrow gave us something," she added.' in draft.text
    for boilerplate in ("Subscribe", "Copyright", "Privacy policy", "Cookie", "Sport"):
        assert boilerplate not in draft.text
    assert "<" not in draft.text and ">" not in draft.text
    # paragraphs come out separated by blank lines
    assert "according to the council.\n\nThe restoration" in draft.text


def test_html_site_name_and_url_from_meta_tags(readers_dir: Path) -> None:
    """og:site_name and og:url are the outlet and the address of the article.

    trafilatura's JSON output names them 'source-hostname' and 'source' (not
    'sitename' and 'url'), so the reader must read those keys.
    """
    draft = only_draft(readers_dir / "article.html")
    assert draft.source == "The Coastal Courier"
    assert draft.url == "https://courier.example/merrow-lighthouse-museum"


def test_html_without_article_text(tmp_path: Path) -> None:
    path = tmp_path / "empty-page.html"
    path.write_text(
        "<html><head><title>Nothing</title><script>var x = 1;</script></head>"
        "<body><div><img src='x.png'></div></body></html>",
        encoding="utf-8",
    )
    failure = only_failure(path)
    assert failure.reason == "no article text found in the HTML"


def test_html_without_date_is_not_given_one(tmp_path: Path, readers_dir: Path) -> None:
    """A page without a publication date fails with 'missing date'.

    trafilatura's extensive date search would otherwise take the year of the footer's
    "Copyright 2023" and invent 2023-01-01 as the publication date.
    """
    html = (readers_dir / "article.html").read_text(encoding="utf-8")
    html = re.sub(r'<meta property="article:published_time"[^>]*>', "", html)
    assert "2023-09-12" not in html
    path = tmp_path / "undated.htm"
    path.write_text(html, encoding="utf-8")
    failure = only_failure(path)
    assert failure.reason == "missing date"


def test_html_non_utf8_page_is_decoded(tmp_path: Path, readers_dir: Path) -> None:
    html = (readers_dir / "article.html").read_text(encoding="utf-8")
    html = html.replace('charset="utf-8"', 'charset="iso-8859-1"')
    html = html.replace("Curator Dr. Anneli Voss", "Curator Dr. Anneli V\u00f6ss")
    path = tmp_path / "latin1.html"
    path.write_bytes(html.encode("latin-1"))
    draft = only_draft(path)
    assert "Curator Dr. Anneli V\u00f6ss said" in draft.text


# -- Markdown --------------------------------------------------------------------------------


def test_markdown_with_front_matter(readers_dir: Path) -> None:
    draft = only_draft(readers_dir / "front-matter.md")
    assert draft.title == "Orrin valley farmers form a seed cooperative"
    assert draft.published_at == date(2023, 5, 2)
    assert draft.source == "Valley Post (fictional)"
    assert draft.url == "https://valleypost.example/seed-cooperative"
    assert draft.authors == ("Lena Orr", "Piet Vance")
    assert "---" not in draft.text and "title:" not in draft.text
    # markup is gone from the quoted text
    assert "Farmers in the Orrin valley formed a seed cooperative" in draft.text
    assert "according to its chair, Marta Quill." in draft.text
    assert "*" not in draft.text and "](" not in draft.text and "#" not in draft.text


def test_markdown_heading_in_body_stays_its_own_paragraph(readers_dir: Path) -> None:
    """A '# heading' line followed by a blank line must not be glued to the next paragraph.

    (The heading pattern's ``\\s*$`` also eats the newline after the heading.)
    """
    draft = only_draft(readers_dir / "front-matter.md")
    assert draft.text.split("\n\n")[0] == "A heading inside the body"


def test_markdown_title_from_heading(readers_dir: Path) -> None:
    draft = only_draft(readers_dir / "heading.md")
    assert draft.title == "Orrin valley bridge reopens after repairs"
    assert draft.published_at == date(2023, 5, 9)
    assert draft.text.startswith("The old stone bridge over the Orrin reopened")
    assert "Orrin valley bridge reopens" not in draft.text, "the title is not repeated"
    assert draft.text.count("\n\n") == 1


def test_markdown_without_date(readers_dir: Path) -> None:
    failure = only_failure(readers_dir / "no-date.md")
    assert failure.reason == "missing date"
    assert failure.origin == str(readers_dir / "no-date.md")


def test_markdown_heading_not_first_is_not_the_title(tmp_path: Path) -> None:
    path = tmp_path / "late-heading.markdown"
    path.write_text("---\ndate: 2023-01-01\n---\nIntro line.\n\n# Later heading\n\nMore.\n")
    failure = only_failure(path)
    assert failure.reason == "missing title"


# -- directories ----------------------------------------------------------------------------


def test_directory_is_read_recursively_by_extension(
    tmp_path: Path, readers_dir: Path, samples_dir: Path
) -> None:
    root = tmp_path / "inbox"
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(samples_dir / SEED_NAME, root / "nested" / "deeper" / "seed.TXT")
    shutil.copy(readers_dir / "articles.json", root / "a.json")
    shutil.copy(readers_dir / "heading.md", root / "nested" / "b.md")
    shutil.copy(readers_dir / "article.html", root / "c.html")
    # skipped: hidden files, files in hidden directories, unsupported extensions
    (root / ".hidden.txt").write_text("not read", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "notes.txt").write_text("not read", encoding="utf-8")
    (root / "nested" / "scan.pdf").write_bytes(b"%PDF-1.7 binary")
    (root / "README").write_text("no suffix", encoding="utf-8")
    (root / "nested" / "dir.json").mkdir()  # a directory with a supported suffix

    results = read_all(root)
    assert all(isinstance(r, ArticleDraft) for r in results), results
    origins = [r.origin for r in results]
    assert origins == [
        f"{root / 'a.json'}[1]",
        f"{root / 'a.json'}[2]",
        str(root / "c.html"),
        str(root / "nested" / "b.md"),
        str(root / "nested" / "deeper" / "seed.TXT"),
    ]


def test_supported_suffixes() -> None:
    assert {".txt", ".json", ".jsonl", ".ndjson", ".html", ".htm", ".md", ".markdown"} <= set(
        SUPPORTED_SUFFIXES
    )


def test_empty_directory(tmp_path: Path) -> None:
    assert read_all(tmp_path) == []


# -- bad inputs: each is one failure with a clear, one-line reason --------------------------


def test_missing_path(tmp_path: Path) -> None:
    failure = only_failure(tmp_path / "nope.txt")
    assert failure.reason == "no such file or directory"


def test_unsupported_file_named_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7")
    assert only_failure(path).reason == "unsupported file type '.pdf'"
    bare = tmp_path / "NOTES"
    bare.write_text("hello", encoding="utf-8")
    assert only_failure(bare).reason == "unsupported file type '(none)'"


@pytest.mark.parametrize("suffix", [".txt", ".json", ".jsonl", ".md", ".html"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert only_failure(path).reason == "empty file"


@pytest.mark.parametrize("suffix", [".txt", ".json", ".md"])
def test_white_space_only_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"blank{suffix}"
    path.write_text(" \n\t\n  \r\n", encoding="utf-8")
    assert only_failure(path).reason == "empty file"


@pytest.mark.parametrize("suffix", [".txt", ".json", ".md", ".html"])
def test_binary_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"image{suffix}"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert only_failure(path).reason == "binary file, not text"


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    text = " date 2023-06-29 Thursday\nCaf\u00e9 opens\n\nThe caf\u00e9 opened.\n"
    path.write_bytes(text.encode("latin-1"))
    failure = only_failure(path)
    offset = text.encode("latin-1").index(b"\xe9")
    assert failure.reason == f"not UTF-8 text (invalid byte at offset {offset})"


def test_non_utf8_json(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.json"
    path.write_bytes('{"title": "\u201cQuoted\u201d", "text": "x"}'.encode("cp1252"))
    assert only_failure(path).reason.startswith("not UTF-8 text")


def test_utf8_with_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    payload = json.dumps({"title": "T", "text": "B.", "date": "2023-01-02"})
    path.write_bytes(b"\xef\xbb\xbf" + payload.encode())
    assert only_draft(path).title == "T"


def test_oversized_file(tmp_path: Path, samples_dir: Path) -> None:
    path = tmp_path / "big.txt"
    shutil.copy(samples_dir / SEED_NAME, path)
    failure = only_failure(path, max_bytes=100)
    assert failure.reason.startswith("file too large")
    # the same file under the limit reads fine
    assert isinstance(read_all(path, max_bytes=path.stat().st_size)[0], ArticleDraft)


def test_oversized_file_reason_states_the_configured_limit(tmp_path: Path) -> None:
    """With the default 20 MB limit (NEWSBOT_MAX_FILE_MB=20, turned into bytes as
    20 * 1024 * 1024), the reason must say the limit is 20 MB, not 21.0 MB."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:  # sparse: nothing is written or read
        f.truncate(DEFAULT_MAX_FILE_BYTES + 1024 * 1024)
    failure = only_failure(path)
    assert failure.reason.startswith("file too large")
    assert "limit is 20.0 MB" in failure.reason, failure.reason


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('{"title": "T", "text": ', 1),
        ('[\n  {"title": "T"},\n  {"title": "U",,}\n]', 3),
        ("not json at all", 1),
    ],
)
def test_broken_json(tmp_path: Path, content: str, line: int) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    failure = only_failure(path)
    assert failure.reason.startswith("invalid JSON: ")
    assert failure.reason.endswith(f"at line {line}")


def test_missing_title(tmp_path: Path) -> None:
    path = tmp_path / "untitled.json"
    path.write_text(json.dumps({"text": "A body.", "date": "2023-01-02"}), encoding="utf-8")
    assert only_failure(path).reason == "missing title"


def test_missing_date(tmp_path: Path) -> None:
    path = tmp_path / "undated.json"
    path.write_text(json.dumps({"title": "T", "text": "A body."}), encoding="utf-8")
    assert only_failure(path).reason == "missing date"


def test_missing_several_fields(tmp_path: Path) -> None:
    path = tmp_path / "bare.json"
    path.write_text(json.dumps({"text": "A body.", "date": "not a date"}), encoding="utf-8")
    assert only_failure(path).reason == "missing title and date"


def test_bad_files_in_a_directory_fail_one_by_one(tmp_path: Path, samples_dir: Path) -> None:
    shutil.copy(samples_dir / SEED_NAME, tmp_path / "good.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.md").write_bytes(b"\x00\x01\x02")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    results = read_all(tmp_path)
    by_name = {Path(r.origin).name: r for r in results}
    assert isinstance(by_name["good.txt"], ArticleDraft)
    reasons = {name: r.reason for name, r in by_name.items() if isinstance(r, ReadFailure)}
    assert reasons == {
        "binary.md": "binary file, not text",
        "broken.json": "invalid JSON: Expecting property name enclosed in double quotes at line 1",
        "empty.txt": "empty file",
        "latin1.txt": "not UTF-8 text (invalid byte at offset 3)",
    }
