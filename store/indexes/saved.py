"""The indexes saved in a folder per store generation, swapped in atomically; loaded
memory-mapped, read into memory behind a long-running process's first questions, and
rebuilt from SQLite whenever they are missing, stale (the store changed since) or unreadable.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from store.indexes.bm25 import BM25, Rows
from store.indexes.build import (
    UNITS,
    Indexes,
    UnitIndex,
    build_from_snapshot,
    build_indexes,
    sample_vectors,
)
from store.indexes.spill import Spill, file_of
from store.indexes.texts import TextTable
from store.indexes.tokens import RESIDENT_TOKENS_MAX, TokenTable
from store.indexes.vectors import dense_kind, read_dense, write_dense
from store.seams import Store

log = logging.getLogger(__name__)

INDEX_VERSION = 8  # 5: BM25 heads carry their weights; 6: sentence texts and spans; 7-8: tokens

# Which engine searched the indexes a folder was saved for: "local" saves them whole (FAISS,
# BM25 and the tables an answer reads), "qdrant" only the tables (`save_tables`). Manifests
# from before the field are local.
Backend = Literal["local", "qdrant"]


# A `.building-*` folder with no lock file beside it (saved by a qabot from before they had
# one) is only taken for abandoned once this old.
_ABANDONED_AFTER_S = 3600


def _new_building(folder: Path) -> tuple[Path, int]:
    """A new temporary folder to write indexes in, and the exclusive lock held beside it: a
    process killed halfway drops the lock, so the next save knows the folder is abandoned
    (`remove_abandoned_builds`). The lock is taken before the folder exists, so there is no
    moment at which a killed save leaves a folder without a free lock beside it."""
    fd, name = tempfile.mkstemp(prefix=".building-", suffix=".lock", dir=folder)
    fcntl.flock(fd, fcntl.LOCK_EX)
    tmp = Path(name).with_suffix("")
    try:
        tmp.mkdir(mode=0o700)
    except BaseException:
        _unlock_building(tmp, fd)
        raise
    return tmp, fd


def _unlock_building(tmp: Path, fd: int) -> None:
    tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)  # before the lock is let go
    os.close(fd)


def remove_abandoned_builds(folder: Path) -> None:
    """Remove the temporary folders of saves killed halfway (each up to a whole copy of the
    indexes), never one a live process is writing: its lock is held, or it has no lock
    file yet and is younger than _ABANDONED_AFTER_S."""
    try:
        leftovers = [p for p in folder.glob(".building-*") if not p.name.endswith(".lock")]
    except OSError:
        return
    for tmp in leftovers:
        lock = tmp.with_name(tmp.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            try:
                if time.time() - tmp.stat().st_mtime < _ABANDONED_AFTER_S:
                    continue
            except OSError:
                continue
            log.info("removing %s, abandoned by an earlier save", tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live save is writing it
            os.close(fd)
            continue
        log.info("removing %s, left by a save that was killed", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)
    for lock in folder.glob(".building-*.lock"):  # whose folder is gone
        if not lock.with_suffix("").exists():
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock.unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                os.close(fd)


def start_building(folder: Path) -> tuple[Path, int]:
    """A folder in `folder` to build and save a generation's indexes in (`save_indexes`),
    and its lock: what a killed build leaves there is removed by the next."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(folder)
    return _new_building(folder)


def save_indexes(
    indexes: Indexes, folder: Path, model: str, building: tuple[Path, int] | None = None
) -> None:
    """Write the indexes to `folder/gen-N` and point `folder/CURRENT` at it atomically.

    `building` (`start_building`) is the folder they were built in, holding the arrays
    spilled there (store/indexes/spill.py), which stay as they are; it is moved into place
    or removed, and its lock let go, either way."""
    tmp, lock = start_building(folder) if building is None else building
    try:
        _save_tables(indexes, tmp)
        for name in ("sentences", "passages"):
            unit: UnitIndex = getattr(indexes, name)
            if file_of(unit.vectors) != tmp / f"{name}.vectors.npy":  # else built there
                np.save(tmp / f"{name}.vectors.npy", unit.vectors)
            assert unit.bm25 is not None, "only indexes searched here are saved here"
            unit.bm25.save(tmp / f"{name}.bm25")
            # A flat index is the vectors themselves, rebuilt on load in milliseconds.
            if dense_kind(len(unit.rowids)) != "flat":
                write_dense(unit.dense(), tmp / f"{name}.faiss")
        # After the dense indexes exist: the sample is decoded from them as asks decode it.
        indexes.sample_vectors = sample_vectors(indexes)
        for name, vectors in zip(UNITS, indexes.sample_vectors, strict=True):
            np.save(tmp / f"sample.{name}.vectors.npy", vectors)
        assert indexes.sample_rows is not None
        from scipy import sparse

        for name, rows in zip(UNITS, indexes.sample_rows, strict=True):
            assert isinstance(rows, Rows)
            sparse.save_npz(tmp / f"sample.{name}.npz", rows.weights, compressed=False)
        manifest = _manifest(indexes, model, "local") | {
            "dense": {
                name: getattr(indexes, name).dense_info for name in ("sentences", "passages")
            },
        }
        _commit(tmp, folder, indexes.generation, manifest)
    finally:
        _end_building(tmp, lock)
    _remove_other_generations(folder, indexes.generation)


def save_tables(
    indexes: Indexes, folder: Path, model: str, dim: int, building: tuple[Path, int]
) -> None:
    """Write the tables an answer reads (built with `local=False`: their vectors and words
    are searched in another engine) to `folder/gen-N`, as `save_indexes` writes the rest."""
    tmp, lock = building
    try:
        _save_tables(indexes, tmp)
        _commit(tmp, folder, indexes.generation, _manifest(indexes, model, "qdrant", dim))
    finally:
        _end_building(tmp, lock)
    _remove_other_generations(folder, indexes.generation)


def _save_tables(indexes: Indexes, tmp: Path) -> None:
    """What every saved generation holds, whichever engine searches it: positions, texts,
    spans, token vectors (kept where they were built, `TokenTable.save`) and sources."""
    for name in UNITS:
        unit: UnitIndex = getattr(indexes, name)
        np.save(tmp / f"{name}.rowids.npy", unit.rowids)
        np.save(tmp / f"{name}.article.npy", unit.article)
        np.save(tmp / f"{name}.position.npy", unit.position)
        if unit.texts is not None and unit.start is not None and unit.end is not None:
            unit.texts.save(tmp / name)
            np.save(tmp / f"{name}.start.npy", unit.start)
            np.save(tmp / f"{name}.end.npy", unit.end)
        if unit.tokens is not None:
            unit.tokens.save(tmp)
    np.save(tmp / "article_collection.npy", indexes.article_collection)
    assert indexes.article_sources is not None
    indexes.article_sources.save(tmp / "articles")
    np.save(tmp / "sentence_passage.npy", indexes.sentence_passage)


def _manifest(
    indexes: Indexes, model: str, backend: Backend, dim: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": INDEX_VERSION,
        "backend": backend,
        "generation": indexes.generation,
        "model": model,
        "article_ids": indexes.article_ids,
        "collections": indexes.collections,
    }
    if dim is not None:
        out["dim"] = dim
    return out


def _commit(tmp: Path, folder: Path, generation: int, manifest: dict[str, Any]) -> None:
    """The built folder moved into place as `folder/gen-N`, then `CURRENT` pointed at it."""
    (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    final = folder / f"gen-{generation}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = folder / "CURRENT.tmp"
    pointer.write_text(final.name, encoding="utf-8")
    os.replace(pointer, folder / "CURRENT")


def _end_building(tmp: Path, lock: int) -> None:
    """A build's folder removed (unless moved into place) and its lock let go."""
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    _unlock_building(tmp, lock)


def _remove_other_generations(folder: Path, generation: int) -> None:
    for old in folder.glob("gen-*"):
        if old.name != f"gen-{generation}":
            shutil.rmtree(old, ignore_errors=True)


_READ_PIECE = 4 << 20  # ~30 ms of this disk: the longest a question waits behind the read


def _read_through(path: Path, pause: Callable[[], None] | None) -> None:
    """Bring a file (or a folder's files) into the page cache, a piece at a time."""
    if path.is_dir():
        for part in sorted(path.iterdir()):
            _read_through(part, pause)
        return
    piece = bytearray(_READ_PIECE)
    with open(path, "rb", buffering=0) as f:
        while True:
            if pause is not None:
                pause()
            if not f.readinto(piece):
                return


def _current_manifest(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The folder of the saved generation `CURRENT` points at, and its manifest."""
    gen_dir = folder / (folder / "CURRENT").read_text(encoding="utf-8").strip()
    return gen_dir, json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))


def describe_indexes(folder: Path, generation: int) -> dict[str, str]:
    """What the saved indexes for this generation are, for `qabot stats`: per unit, the
    dense index and its measured recall, or why there is none yet."""
    try:
        _, manifest = _current_manifest(folder)
    except (OSError, ValueError):
        return {"index": "not built yet (built by the next ask)"}
    if (manifest.get("generation"), manifest.get("version"), _backend(manifest)) != (
        generation,
        INDEX_VERSION,
        "local",
    ):
        return {"index": "out of date (rebuilt by the next ask)"}
    out = {}
    for name, info in manifest.get("dense", {}).items():
        if info.get("kind") == "ivf":
            out[f"{name}_index"] = (
                f"IVF-SQ8 over {info['n']:,} vectors, {info['nlist']} lists, "
                f"{info['nprobe']} probed, recall@10 {info['recall10_check']} vs exact"
            )
        else:
            out[f"{name}_index"] = f"exact over {info.get('n', 0):,} vectors"
    return out


def _backend(manifest: dict[str, Any]) -> str:
    return str(manifest.get("backend", "local"))


def load_indexes(folder: Path, generation: int, model: str) -> Indexes | None:
    """The saved indexes for this generation, memory-mapped, or None when missing, stale or
    unreadable.

    Mapped, not read: at a million passages the indexes are 3.5 GB, which took 12-46 s to
    read whenever the page cache had let the files go (this disk reads ~130 MB/s), and a
    one-off `qabot ask` needs only a few of their pages. A process that stays up calls
    `make_resident` to read them into memory behind its first questions (see there).
    """
    return _load(folder, generation, model, "local", quiet=True)


def load_tables(folder: Path, generation: int, model: str) -> Indexes | None:
    """The tables an answer reads saved for this generation by `save_tables`, memory-mapped
    (`load_indexes`), or None, saying why in the log, when missing, stale or unreadable.
    Their search is another engine's to attach (`qdrant.QdrantIndexes`)."""
    return _load(folder, generation, model, "qdrant", quiet=False)


def _load(
    folder: Path, generation: int, model: str, backend: Backend, *, quiet: bool
) -> Indexes | None:
    remove_abandoned_builds(folder)
    try:
        gen_dir, manifest = _current_manifest(folder)
    except FileNotFoundError:
        if not quiet:
            log.info("no indexes saved in %s yet; building them", folder)
        return None
    except (OSError, ValueError) as exc:
        log.warning("saved indexes in %s are unreadable (%s); rebuilding them", folder, exc)
        return None
    wanted = (INDEX_VERSION, backend, generation, model)
    found = (
        manifest.get("version"),
        _backend(manifest),
        manifest.get("generation"),
        manifest.get("model"),
    )
    if found != wanted:
        if not quiet:
            log.info(
                "indexes saved in %s are of (version, backend, generation, model) %s, not %s;"
                " rebuilding them",
                folder,
                found,
                wanted,
            )
        return None
    try:
        units = {name: _load_unit(gen_dir, name, manifest, mapped=True) for name in UNITS}
        indexes = Indexes(
            generation=generation,
            article_ids=list(manifest["article_ids"]),
            article_collection=np.load(gen_dir / "article_collection.npy"),
            collections=list(manifest["collections"]),
            sentences=units["sentences"],
            passages=units["passages"],
            sentence_passage=np.load(gen_dir / "sentence_passage.npy", mmap_mode="r"),
            article_sources=TextTable.load(gen_dir / "articles", mapped=True),
            mapped_from=gen_dir,
        )
        if backend == "local":
            # Every folder of this INDEX_VERSION holds these; one missing is a broken
            # folder, rebuilt like any other (FileNotFoundError below).
            from scipy import sparse

            indexes.sample_rows = (
                Rows(sparse.load_npz(gen_dir / "sample.sentences.npz").tocsc()),
                Rows(sparse.load_npz(gen_dir / "sample.passages.npz").tocsc()),
            )
            indexes.sample_vectors = (
                np.load(gen_dir / "sample.sentences.vectors.npy"),
                np.load(gen_dir / "sample.passages.vectors.npy"),
            )
        return indexes
    except FileNotFoundError as exc:
        if not quiet:
            log.warning("saved indexes in %s are incomplete (%s); rebuilding them", folder, exc)
        return None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("saved indexes in %s are unreadable (%s); rebuilding them", folder, exc)
        return None


def _load_unit(gen_dir: Path, name: str, manifest: dict[str, Any], *, mapped: bool) -> UnitIndex:
    """One unit's saved index, memory-mapped or read into memory (the float32 vectors are
    mapped either way: only exact search of small stores and rebuilds read them). Of a
    folder of the tables alone (`save_tables`), without vectors, BM25 or FAISS."""
    mode: Literal["r"] | None = "r" if mapped else None
    unit = UnitIndex(
        rowids=np.load(gen_dir / f"{name}.rowids.npy", mmap_mode=mode),
        article=np.load(gen_dir / f"{name}.article.npy", mmap_mode=mode),
        position=np.load(gen_dir / f"{name}.position.npy", mmap_mode=mode),
        vectors=np.zeros((0, int(manifest.get("dim", 0))), dtype=np.float32),
        bm25=None,
    )
    if _backend(manifest) == "local":
        faiss_file = gen_dir / f"{name}.faiss"
        if faiss_file.exists():
            unit.faiss_index = read_dense(faiss_file, mapped=mapped)
        unit.vectors = np.load(gen_dir / f"{name}.vectors.npy", mmap_mode="r")
        unit.bm25 = BM25.load(gen_dir / f"{name}.bm25", mapped=mapped)
        unit.dense_info = dict(manifest.get("dense", {}).get(name, {}))
    if name == "sentences":
        unit.texts = TextTable.load(gen_dir / name, mapped=mapped)
        unit.start = np.load(gen_dir / f"{name}.start.npy", mmap_mode=mode)
        unit.end = np.load(gen_dir / f"{name}.end.npy", mmap_mode=mode)
        unit.tokens = TokenTable.load(gen_dir, mapped=mapped)
    return unit


def make_resident(indexes: Indexes, pause: Callable[[], None] | None = None) -> float:
    """Read memory-mapped indexes into memory, part by part, swapping each in as it is read;
    the seconds it took (0 when they were built or read in memory already).

    For processes that stay up (the bot, `qabot serve`, the bench's ask probe): a FAISS
    index searched through its mapping costs twice the time (1M passages: 2.2 ms against
    1.1 ms a search, the lists' pages faulted in one by one), and mapped pages are the first
    this VM hands back when idle, so a question after a quiet hour would wait on the disk;
    memory the process owns stays (no swap). Questions go on meanwhile, answered from the
    mappings: each part is swapped for an identical copy, so no answer changes.

    The files are first read through the page cache in small pieces, calling `pause` before
    each: the retriever's waits while a question is being answered, whose own reads would
    otherwise queue behind these (measured cold at 1M: asks of 0.3-1.2 s during the read).
    """
    gen_dir = indexes.mapped_from
    if gen_dir is None:
        return 0.0
    started = time.perf_counter()
    manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    for name in UNITS:
        mapped: UnitIndex = getattr(indexes, name)
        for part in sorted(gen_dir.glob(f"{name}.*")):
            # The float32 vectors and large token vectors stay mapped (see `_load_unit`).
            big = part.name.endswith(".tokens.npy") and part.stat().st_size > RESIDENT_TOKENS_MAX
            if not part.name.endswith(".vectors.npy") and not big:
                _read_through(part, pause)
        unit = _load_unit(gen_dir, name, manifest, mapped=False)
        if mapped.faiss_index is not None and unit.faiss_index is not None:
            unit.faiss_index.nprobe = mapped.faiss_index.nprobe  # type: ignore[attr-defined]
        # Field by field, searches first: each swap is one attribute store, atomic under
        # the GIL, and a question that holds the old object reads the same values.
        for field_name in ("faiss_index", "bm25", "rowids", "article", "position"):
            setattr(mapped, field_name, getattr(unit, field_name))
        mapped.texts, mapped.start, mapped.end = unit.texts, unit.start, unit.end
        mapped.tokens = unit.tokens
    _read_through(gen_dir / "sentence_passage.npy", pause)
    indexes.sentence_passage = np.load(gen_dir / "sentence_passage.npy")
    if indexes.article_sources is not None:
        for part in sorted(gen_dir.glob("articles.*")):
            _read_through(part, pause)
        indexes.article_sources = TextTable.load(gen_dir / "articles")
    _cache_tokens(gen_dir / "sentences.tokens.npy", pause)
    indexes.mapped_from = None
    took = time.perf_counter() - started
    log.info("indexes of generation %d read into memory in %.1fs", indexes.generation, took)
    return took


# Memory left to everything else when a large token file is brought into the page cache.
_CACHE_MARGIN = 2 << 30


def _cache_tokens(path: Path, pause: Callable[[], None] | None) -> bool:
    """Bring a token vector file too large to hold in process memory into the page cache,
    when the machine has the memory for it (and `_CACHE_MARGIN` more); whether it did.

    A question reranks ~150 sentences by their token vectors, scattered over the file: at
    a million passages (13 GB) asks took 191 ms at p50 with the file on disk against 26 ms
    with it in the page cache. The pages stay the kernel's to drop under pressure."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= RESIDENT_TOKENS_MAX:
        return False  # read into memory with the rest
    available = _available_memory()
    if available is None or available < size + _CACHE_MARGIN:
        log.info(
            "token vectors (%.1f GB) left on disk: %s GB of memory available",
            size / 1e9,
            "unknown" if available is None else f"{available / 1e9:.1f}",
        )
        return False
    _read_through(path, pause)
    return True


def _available_memory() -> int | None:
    """MemAvailable in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def open_indexes(store: Store, folder: Path) -> Indexes:
    """The current indexes: loaded when saved for this generation, else rebuilt and saved."""
    loaded = load_indexes(folder, store.generation, store.model)
    if loaded is not None:
        return loaded
    return build_saved(folder, store.model, lambda spill: build_indexes(store, spill))


def _as_saved(indexes: Indexes, folder: Path, model: str, backend: Backend = "local") -> Indexes:
    """The indexes just saved; read back from their folder when arrays were spilled into
    it, so that they are mapped and read in as every saved generation is."""
    spilled = (indexes.sentences.vectors, indexes.passages.vectors)
    tokens = indexes.sentences.tokens
    if not any(file_of(a) for a in spilled) and (tokens is None or tokens.file is None):
        return indexes
    return _load(folder, indexes.generation, model, backend, quiet=False) or indexes


def build_saved(
    folder: Path,
    model: str,
    build: Callable[[Spill | None], Indexes],
    backend: Backend = "local",
    dim: int | None = None,
) -> Indexes:
    """The indexes made by `build` with `folder` to spill their largest arrays into, then
    saved there: whole (`save_indexes`), or for "qdrant" the tables an answer reads
    (`build_from_snapshot(local=False)`, `save_tables`, which records `dim`); read back
    mapped when spilled. A folder that cannot be written still gives them, built in memory,
    with a warning: the next process builds them again."""
    try:
        building: tuple[Path, int] | None = start_building(folder)
    except OSError as exc:  # a read-only disk still answers
        log.warning("could not save indexes to %s: %s", folder, exc)
        building = None
    try:
        indexes = build(None if building is None else Spill(building[0]))
    except BaseException:
        if building is not None:
            _end_building(*building)
        raise
    if building is None:
        return indexes
    try:
        if backend == "local":
            save_indexes(indexes, folder, model, building)
        else:
            assert dim is not None
            save_tables(indexes, folder, model, dim, building)
    except OSError as exc:  # a full disk still answers, just slower next time
        log.warning("could not save indexes to %s: %s", folder, exc)
        return indexes
    return _as_saved(indexes, folder, model, backend)


class LocalIndexes:
    """The indexes searched in this process (FAISS and qabot's BM25), saved in the data
    folder per generation: the single-machine default."""

    name = "local"

    def open(self, store: Store, folder: Path) -> Indexes:
        return open_indexes(store, folder)

    def rebuild(
        self, store: Store, folder: Path, progress: Callable[[], None] | None = None
    ) -> Indexes:
        visit = None if progress is None else (lambda _unit, _row: progress())
        building = start_building(folder)
        try:
            with store.snapshot() as snapshot:
                indexes = build_from_snapshot(snapshot, visit=visit, spill=Spill(building[0]))
        except BaseException:
            _end_building(*building)
            raise
        # Replaces the generation's folder whole.
        save_indexes(indexes, folder, store.model, building)
        return _as_saved(indexes, folder, store.model)

    def describe(self, store: Store, folder: Path) -> dict[str, str]:
        return {"search": "local (FAISS + BM25 in the data folder)"} | describe_indexes(
            folder, store.generation
        )

    def close(self) -> None:
        pass
