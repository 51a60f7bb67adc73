"""Arrays too large to build in memory, filled straight into the `.npy` files they are saved as.

At a million passages a build gathers 6.9 GB of sentence vectors and 14 GB of token vectors
(store/indexes/tokens.py) on a machine of 24 GB: held in memory, they and the rest of the
build were killed for want of it at 22.5 GB. Written into files of the folder the indexes are
being saved in (`saved.save_indexes`), they are pages of the page cache that the kernel can
write out and drop, and the save only has to keep the files where they are.

A file whose row count is known up front is a `numpy.lib.format.open_memmap`; one appended to
(the token vectors: their count is known only at the end) is written after a header of fixed
length, rewritten with the real shape once the last row is in. Both read back as memory maps.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.format import dtype_to_descr, open_memmap

# Units with at least this many rows are built into files when the build has a folder to
# spill to: ~0.4 GB of float32 sentence vectors and ~0.8 GB of token vectors.
SPILL_ROWS = 1 << 18

_MAGIC = b"\x93NUMPY\x01\x00"
_HEADER_BYTES = 128  # the header an appended file starts with (a multiple of 64)


def file_of(array: np.ndarray) -> Path | None:
    """The file a memory-mapped array (or a view of one) maps, else None."""
    name = getattr(array, "filename", None)
    return Path(name) if name else None


class Spill:
    """The folder a build writes its largest arrays into, as `.npy` files named as saved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def matrix(self, name: str, rows: int, cols: int, dtype: type[np.generic]) -> np.memmap:
        """A (rows, cols) array to fill, backed by `folder/name`."""
        return open_memmap(self.folder / name, mode="w+", dtype=dtype, shape=(rows, cols))

    def appender(self, name: str, dtype: type[np.generic], cols: int) -> Appender:
        """Rows of `cols` values appended as bytes to `folder/name`."""
        return Appender(self.folder / name, np.dtype(dtype), cols)


def shrink(array: np.memmap, rows: int) -> np.memmap:
    """The first `rows` rows of a spilled (n, cols) array, the file cut to them."""
    path = file_of(array)
    assert path is not None
    if rows == len(array):
        return array
    cols, dtype = array.shape[1], array.dtype
    array.flush()
    del array
    with path.open("r+b") as f:
        length = _header_length(f.read(10))
        _write_header(f, length, dtype, (rows, cols))
        f.truncate(length + rows * cols * dtype.itemsize)
    return np.load(path, mmap_mode="r+")


class Appender:
    """Bytes of an (n, cols) array appended to a `.npy` file whose header gives n at the end."""

    def __init__(self, path: Path, dtype: np.dtype, cols: int) -> None:
        self.path, self.dtype, self.cols = path, dtype, cols
        self._file = path.open("wb")
        self._file.write(b"\0" * _HEADER_BYTES)
        self._bytes = 0

    def add(self, data: bytes) -> None:
        self._file.write(data)
        self._bytes += len(data)

    def finish(self) -> np.ndarray:
        """The array written, memory-mapped read-only."""
        rows = self._bytes // (self.dtype.itemsize * self.cols)
        assert rows * self.dtype.itemsize * self.cols == self._bytes, "a partial row"
        self._file.seek(0)
        _write_header(self._file, _HEADER_BYTES, self.dtype, (rows, self.cols))
        self._file.close()
        return np.load(self.path, mmap_mode="r")


def _header_length(prefix: bytes) -> int:
    """The bytes before the data of a version 1.0 `.npy` file, from its first ten."""
    if prefix[:8] != _MAGIC:
        raise ValueError("not a version 1.0 .npy file")
    return 10 + struct.unpack("<H", prefix[8:10])[0]


def _write_header(f: BinaryIO, length: int, dtype: np.dtype, shape: tuple[int, int]) -> None:
    """A version 1.0 header of exactly `length` bytes (padded with spaces, as numpy pads)."""
    text = repr({"descr": dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    body = text.encode("latin1")
    pad = length - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f"a .npy header of {length} bytes cannot hold shape {shape}")
    header = _MAGIC + struct.pack("<H", length - 10) + body + b" " * pad + b"\n"
    f.seek(0)
    f.write(header)
    f.flush()
