"""The index directory: a ``current`` symlink to one built directory with a manifest.

A build writes a fresh directory and then swaps the symlink atomically (``os.replace``),
so a reader (another process, or this one after a restart) always sees a whole index.

Several processes share the directory (the bot, and ``newsbot ingest`` or ``poll`` from
cron), and a process can die in the middle of a save, leaving its ``.tmp-build-*``
directory or ``.link-*`` symlink behind. So every writer holds ``root/.lock`` exclusively
(``fcntl.flock``) while it saves, and readers hold it shared while they load: whoever holds
it exclusively knows that every ``.tmp-*``/``.link-*`` entry, and every build other than
the current one, belongs to no live writer or reader, and removes them. A save does that,
and so does a load when nobody else holds the lock (it does not wait for it). ``flock``
locks die with their process, so a killed writer never leaves the lock held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from embeddings.dense_index import DenseIndex
from embeddings.keyword_index import KeywordIndex

MANIFEST_FORMAT = 1
LOCK_NAME = ".lock"
STALE_PREFIXES = (".tmp-", ".link-")  # a save's work in progress

log = logging.getLogger(__name__)


class IndexMismatch(Exception):
    """The index on disk was built for another model, dimension or format."""


@dataclass(frozen=True)
class Manifest:
    """What an index directory holds and what it was built from."""

    model: str
    dimension: int
    metric: str
    kind: str
    count: int
    corpus_version: int
    built_at: str
    removed: tuple[int, ...] = ()
    format: int = MANIFEST_FORMAT

    def check(self, model: str, dimension: int) -> None:
        """Refuse an index built for another model or format."""
        if self.format != MANIFEST_FORMAT:
            raise IndexMismatch(f"index format {self.format}, expected {MANIFEST_FORMAT}")
        # Indexes of earlier versions name "model@precision"; any precision will do.
        if self.model.split("@")[0] != model or self.dimension != dimension:
            raise IndexMismatch(
                f"index built for {self.model} (dim {self.dimension}), "
                f"configured {model} (dim {dimension})"
            )


@dataclass
class LoadedIndex:
    """A loaded pair of indexes with their manifest."""

    manifest: Manifest
    dense: DenseIndex
    keyword: KeywordIndex


class IndexDirectory:
    """``root/current`` -> ``root/build-<time>``; old builds are removed after a swap."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def current(self) -> Path:
        """The symlink readers follow."""
        return self.root / "current"

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[bool]:
        """Hold ``root/.lock`` (``fcntl.LOCK_EX`` or ``LOCK_SH``, optionally ``| LOCK_NB``);
        yields whether it is held (False only when non-blocking and someone else holds it).
        A new open file each time: flock locks of two opens conflict even in one process,
        so threads of this process exclude each other as other processes do."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            yield True  # closing the file releases the lock
        finally:
            os.close(fd)

    def read_manifest(self) -> Manifest | None:
        """The current manifest, or None when there is no index yet (or it is unreadable)."""
        return _read_manifest(self.current)

    def load(self) -> LoadedIndex | None:
        """The current index, or None when there is none. Then leftovers of killed saves
        are removed, unless another process is using the directory right now. (After, not
        before: a writer this load waited for may have been killed meanwhile.)"""
        if not self.root.is_dir():
            return None
        with self._locked(fcntl.LOCK_SH):  # no writer removes the build while it is read
            target = self.current.resolve()
            manifest = _read_manifest(target)
            loaded = None
            if manifest is not None:
                dense = DenseIndex.load(
                    target / "dense.faiss", manifest.kind, set(manifest.removed)
                )
                loaded = LoadedIndex(manifest, dense, KeywordIndex.load(target / "keyword"))
        self.clean()
        return loaded

    def clean(self) -> list[str]:
        """Remove what killed saves left behind, if nobody else holds the lock now (then
        they are busy, and the next save or load cleans). Returns the names removed."""
        if not self.root.is_dir():
            return []
        with self._locked(fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
            return self._remove_stale() if held else []

    def save(self, index: LoadedIndex) -> Path:
        """Write a new build directory and swap ``current`` to it atomically.

        Another process may have saved an index of a newer corpus meanwhile: that one is
        kept (this one is live in memory, and the next update catches up with the store).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(fcntl.LOCK_EX):
            self._remove_stale()
            on_disk = _read_manifest(self.current)
            if (
                on_disk is not None
                and on_disk.model == index.manifest.model
                and on_disk.corpus_version > index.manifest.corpus_version
            ):
                log.info(
                    "kept the saved index of corpus version %d over this one of %d",
                    on_disk.corpus_version,
                    index.manifest.corpus_version,
                )
                return self.current.resolve()
            build = self.root / f"build-{time.time_ns()}"
            tmp = self.root / f".tmp-{build.name}"
            tmp.mkdir()
            index.dense.save(tmp / "dense.faiss")
            index.keyword.save(tmp / "keyword")
            (tmp / "manifest.json").write_text(json.dumps(asdict(index.manifest), indent=2))
            tmp.rename(build)
            link_tmp = self.root / f".link-{build.name}"
            link_tmp.symlink_to(build.name)
            os.replace(link_tmp, self.current)
            self._remove_stale()  # the build just replaced, among others
        return build

    def _remove_stale(self) -> list[str]:
        """Remove ``.tmp-*``/``.link-*`` entries and builds other than the current one.
        Only with the lock held exclusively: no live writer or reader then uses them."""
        try:
            keep: str | None = Path(os.readlink(self.current)).name
        except OSError:
            keep = None  # no index yet: every build is a leftover
        removed: list[str] = []
        for path in self.root.iterdir():
            name = path.name
            if name.startswith(STALE_PREFIXES) or (name.startswith("build-") and name != keep):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(name)
        # Builds replaced by a save are routine; work in progress was left by a killed save.
        if any(n.startswith(STALE_PREFIXES) for n in removed):
            log.info("removed leftovers of killed index saves: %s", removed)
        return removed


def _read_manifest(build: Path) -> Manifest | None:
    """The manifest of ``build`` (or of what the ``current`` link points to), or None."""
    try:
        data = json.loads((build / "manifest.json").read_text())
        data["removed"] = tuple(data.get("removed", ()))
        return Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None
