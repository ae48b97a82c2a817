"""Random texts for updates: the text pools (emoji, RTL, special characters, HTML and
Markdown debris, hostile runs) and ``TextFuzz``, which mixes them with the sample corpus and
sample questions."""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable

from benchmarks.fuzzing.world import (
    BOT_USERNAME,
    COMMANDS,
    FORBIDDEN_RE,
    SAMPLE_QUESTIONS,
    SAMPLES,
)

# ------------------------------------------------------------------------------ text pools
EMOJI = "😀 👨‍👩‍👧‍👦 🇺🇦 🏳️‍🌈 👍🏽 🫠 ©️ 1️⃣ 𝕳𝖊𝖑𝖑𝖔 🧑🏿‍🚀 \U0001f9ea".split()
RTL = [
    "مرحبا بالعالم",
    "שלום עולם",
    "\u202eevil\u202c",
    "\u200f",
    "\u061c",
    "أخبار روسيا وإيران",
    "\u2067isolate\u2069",
]
SPECIAL = [
    "\x00",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\u200b",
    "\u200d",
    "\ufffd",
    "\uffff",
    "\ufffe",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\U000e0041",
    "\ufe0f",
    "\u00ad",
    "\u3000",
    "\u00a0",
    "\U0010ffff",
    "\x85",
]
LONE_SURROGATES = ["\ud800", "\udfff", "\udc00\ud800", "\ud83d"]
HTML_DEBRIS = [
    "<b>",
    "</b>",
    "<i>x",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    '<a href="javascript:alert(1)">x</a>',
    "<blockquote expandable>",
    "</blockquote>",
    '<pre><code class="language-py">',
    "<tg-spoiler>",
    "<script>",
    "<!-- -->",
    "<",
    ">",
    "\"'",
    "<br/>",
    "</>",
    '<a href="tg://user?id=1">',
]
MARKDOWN_DEBRIS = ["*bold*", "_it_", "`code`", "```", "[x](http://127.0.0.1:1/)", "~~", "||s||"]
# Units whose long repetitions make naive regexes backtrack or tokenizers choke.
HOSTILE_UNITS = [
    "a",
    ".",
    "!",
    " ",
    "\n",
    "(",
    "[",
    "@",
    "/",
    "http://",
    "1",
    "-",
    "'",
    ",",
    "?",
    "aa.",
    "a ",
    "2023-",
    "who ",
    "Mr. ",
    "«",
    "…",
    "—",
    "__",
    "**",
    "\\",
    "\u00a0",
    "@a",
    "1.",
    "x=",
    "&#",
    "<a ",
    "0:",
]


# ------------------------------------------------------------------------------ texts
class TextFuzz:
    """Random texts: questions and corpus words, unicode, debris, hostile runs, up to 100 KB."""

    def __init__(self, rng: random.Random, max_chars: int = 100_000) -> None:
        self.rng = rng
        self.max_chars = max_chars
        words: list[str] = []
        for path in sorted(SAMPLES.glob("*.txt")):
            words.extend(path.read_text(encoding="utf-8").split())
        self.words = words or ["news"]
        rows = [
            json.loads(line)
            for line in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        self.questions = [r["question"] for r in rows]
        self.quotes = [r["quote"] for r in rows if r.get("quote")] or self.questions
        # Made-up words put in padded posts; questions name them, so answers quote the posts.
        self.nonces: deque[str] = deque(maxlen=40)

    def length(self) -> int:
        """Mostly chat-sized; sometimes long; 3% up to ``max_chars``."""
        r = self.rng.random()
        if r < 0.70:
            top = 80
        elif r < 0.90:
            top = 600
        elif r < 0.97:
            top = 5000
        else:
            top = self.max_chars
        return self.rng.randint(1, min(top, self.max_chars))

    def question(self) -> str:
        """A sample question, sometimes decorated."""
        q = self.rng.choice(self.questions)
        if self.nonces and self.rng.random() < 0.3:
            nonce = self.rng.choice(self.nonces)
            q = self.rng.choice([f"Who is {nonce}?", f"What did {nonce} sign?", f"{nonce} {q}"])
        r = self.rng.random()
        if r < 0.2:
            q = q.upper()
        elif r < 0.35:
            q = f"{self.rng.choice(EMOJI)} {q} {self.rng.choice(RTL)}"
        elif r < 0.45:
            q = q + self.rng.choice(HOSTILE_UNITS) * self.rng.randint(1, 400)
        return q

    def piece(self, allow_surrogates: bool = False) -> str:
        """One short random piece."""
        pools: list[tuple[float, Callable[[], str]]] = [
            (4, lambda: " ".join(self.rng.choices(self.words, k=self.rng.randint(1, 8)))),
            (2, lambda: self.rng.choice(EMOJI)),
            (1.5, lambda: self.rng.choice(RTL)),
            (
                1,
                lambda: (
                    "e"
                    + "".join(
                        chr(self.rng.randint(0x300, 0x36F)) for _ in range(self.rng.randint(1, 30))
                    )
                ),
            ),
            (1.5, lambda: self.rng.choice(SPECIAL)),
            (1.5, lambda: self.rng.choice(HTML_DEBRIS)),
            (0.7, lambda: self.rng.choice(MARKDOWN_DEBRIS)),
            (
                1,
                lambda: chr(
                    self.rng.choice(
                        [self.rng.randint(0x20, 0xD7FF), self.rng.randint(0xE000, 0x10FFFF)]
                    )
                ),
            ),
            (0.5, lambda: f"@{BOT_USERNAME}"),
            (0.5, lambda: "/" + self.rng.choice(COMMANDS)),
        ]
        if allow_surrogates:
            pools.append((1, lambda: self.rng.choice(LONE_SURROGATES)))
        weights = [w for w, _ in pools]
        return self.rng.choices([f for _, f in pools], weights=weights)[0]()

    def text(self, *, allow_surrogates: bool = True, min_chars: int = 0) -> str:
        """A random message text."""
        n = max(min_chars, self.length())
        r = self.rng.random()
        if r < 0.30:
            out = self.question()
        elif r < 0.42:
            out = " ".join(self.rng.choices(self.words, k=max(1, n // 7)))
        elif r < 0.72:
            parts: list[str] = []
            size = 0
            surrogates = allow_surrogates and self.rng.random() < 0.1
            while size < n:
                part = self.piece(surrogates)
                parts.append(part)
                size += len(part) + 1
            out = " ".join(parts)
        elif r < 0.84:
            unit = self.rng.choice(HOSTILE_UNITS)
            prefix = self.question() + " " if self.rng.random() < 0.5 else ""
            out = prefix + unit * max(1, n // len(unit))
        elif r < 0.94:
            out = "".join(
                self.rng.choice(HTML_DEBRIS + MARKDOWN_DEBRIS + self.words[:50])
                for _ in range(max(1, n // 6))
            )
        else:
            out = self.rng.choice(["", " ", "\u200b", "\n\n", "\x00", "\ufeff", "ㅤ", "."])
        out = out[: self.max_chars]
        return FORBIDDEN_RE.sub("x", out)  # a user's own word echoed back is no finding

    def quotable(self) -> str:
        """A sample article's sentence padded with emoji, CJK, RTL and HTML debris.

        The sample questions retrieve it, so answers quote it back: long in UTF-16 units
        (an emoji counts two), full of things to escape, with few places to split.
        """
        rng = self.rng
        words = rng.choice(self.quotes).split()
        nonce = f"Velmora{rng.randint(0, 10**6)}"
        self.nonces.append(nonce)
        words.insert(rng.randint(0, len(words)), nonce)
        quote = " ".join(words)
        pad = rng.choice(["😀", "👨‍👩‍👧‍👦", "𝕳", "中文", "مرحبا", "<b>&amp;", "&", "\u0301", "🇺🇦 "])
        n = rng.randint(100, 2500)
        layout = rng.random()
        if layout < 0.4:  # one endless sentence holding the quote
            text = f"{quote.rstrip('.')} {pad * n}."
        elif layout < 0.7:  # the quote's words spread out between padding
            text = f" {pad * rng.randint(1, 40)} ".join(quote.split())
        else:  # paragraphs of padding around the quote
            text = f"{pad * n}\n\n{quote}\n\n{pad * n}"
        title = self.short(rng.choice([20, 200]))
        return FORBIDDEN_RE.sub("x", f"{title}\n{text}")[: self.max_chars]

    def short(self, max_chars: int = 64, *, allow_surrogates: bool = False) -> str:
        """A short hostile string: names, titles, arguments."""
        parts = [self.piece(allow_surrogates) for _ in range(self.rng.randint(1, 4))]
        return FORBIDDEN_RE.sub("x", " ".join(parts))[:max_chars] or "x"
