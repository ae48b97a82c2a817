"""The index directory: a ``current`` symlink to one built directory with a manifest.

A build writes a fresh directory and then swaps the symlink atomically (``os.replace``),
so a reader (another process, or this one after a restart) always sees a whole index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from embeddings.dense_index import DenseIndex
from embeddings.keyword_index import KeywordIndex

MANIFEST_FORMAT = 1


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

    def read_manifest(self) -> Manifest | None:
        """The current manifest, or None when there is no index yet (or it is unreadable)."""
        try:
            data = json.loads((self.current / "manifest.json").read_text())
            data["removed"] = tuple(data.get("removed", ()))
            return Manifest(**data)
        except (OSError, ValueError, TypeError):
            return None

    def load(self) -> LoadedIndex | None:
        """The current index, or None when there is none."""
        manifest = self.read_manifest()
        if manifest is None:
            return None
        target = self.current.resolve()
        dense = DenseIndex.load(target / "dense.faiss", manifest.kind, set(manifest.removed))
        keyword = KeywordIndex.load(target / "keyword")
        return LoadedIndex(manifest, dense, keyword)

    def save(self, index: LoadedIndex) -> Path:
        """Write a new build directory and swap ``current`` to it atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
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
        self._remove_old(keep=build)
        return build

    def _remove_old(self, keep: Path) -> None:
        # Only finished builds older than the one just swapped in: another process may
        # be writing a newer one (its ".tmp-" directory, or a build about to be linked).
        for path in self.root.glob("build-*"):
            if path.name < keep.name and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
