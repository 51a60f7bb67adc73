"""Texts by position, saved beside the indexes so that quoting and citing read no SQLite."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np


class TextTable:
    """Texts by position: one UTF-8 file and the offsets into it.

    An answer's sentences are read from here instead of from SQLite rows: at a million
    passages those rows sit in a 14 GB file that the page cache cannot hold, and an ask that
    read its few dozen candidates' rows waited ~7 ms on the disk. This file is ~130 bytes a
    sentence (0.7 GB at 4.5M sentences), small enough to hold in memory (`make_resident`):
    read through a mapping with its pages on disk, an ask's ~44 texts cost 50-150 ms.
    """

    def __init__(self, data: bytes | mmap.mmap, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets  # int64, len(texts) + 1

    @classmethod
    def of(cls, texts: list[str]) -> TextTable:
        encoded = [t.encode("utf-8") for t in texts]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    def get(self, positions: list[int]) -> list[str]:
        """The texts at these positions, in order."""
        at = np.asarray(positions, dtype=np.int64)
        data = self.data
        return [
            data[lo:hi].decode("utf-8")
            for lo, hi in zip(self.offsets[at].tolist(), self.offsets[at + 1].tolist(), strict=True)
        ]

    def save(self, stem: Path) -> None:
        stem.with_name(stem.name + ".text").write_bytes(self.data)
        np.save(stem.with_name(stem.name + ".text_offsets.npy"), self.offsets)

    @classmethod
    def load(cls, stem: Path, *, mapped: bool = False) -> TextTable:
        """The saved texts, read into memory or (`mapped`) memory-mapped."""
        offsets = np.load(
            stem.with_name(stem.name + ".text_offsets.npy"), mmap_mode="r" if mapped else None
        )
        with open(stem.with_name(stem.name + ".text"), "rb") as f:
            if int(offsets[-1]) == 0:
                return cls(b"", offsets)
            # Mapped without MADV_WILLNEED: reading the whole file ahead held up the first
            # asks' own reads (1M passages, page cache dropped: ask ratio 1.99 against 1.69).
            if mapped:
                return cls(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), offsets)
            return cls(f.read(), offsets)
