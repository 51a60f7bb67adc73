"""Token vectors: stored at ingest beside each sentence (store/indexes/tokens.py); the
rerank that uses them is tested in tests/retriever/test_rerank.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from store.indexes import build as build_module
from store.indexes import tokens as tokens_module
from store.indexes.saved import open_indexes
from store.indexes.tokens import fit_projection, quantize
from store.ingest import Ingestor
from store.models import RawArticle
from store.seams import Store
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore

BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The work cost 48 million dollars, more than the city had planned.\n\n"
    "Mayor Lena Ortiz was the first to cross the bridge on a bicycle."
)


def article(text: str = BODY, key: str = "bridge", title: str = "Harbour crossing") -> RawArticle:
    return RawArticle(key=key, text=text, title=title, pre_cleaned=True)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """The test's store, on SQLite and on PostgreSQL."""
    return open_store()


def token_rows(store: Store) -> dict[str, int]:
    """Each sentence's text and how many token vectors are stored for it."""
    rows = store.execute(
        "SELECT s.text, t.ids FROM sentences s JOIN token_vectors t ON t.hash = s.vec_hash"
    ).fetchall()
    return {text: len(np.frombuffer(ids, np.int32)) for text, ids in rows}


def test_each_sentence_keeps_its_own_words_token_vectors_not_the_titles(store: Store) -> None:
    Ingestor(store, HashingEmbedder()).ingest([article()])
    stored = token_rows(store)
    # Every sentence has them, one per word of the sentence: the title's two words, which
    # the sentence was embedded under, are left out.
    assert stored == {
        "The bridge reopened on Monday after a two-year repair of all its cables.": 14,
        "The work cost 48 million dollars, more than the city had planned.": 12,
        "Mayor Lena Ortiz was the first to cross the bridge on a bicycle.": 13,
    }
    assert store.stats()["token_vectors"] == 3


def test_the_projection_is_fitted_once_and_forgetting_drops_token_vectors(store: Store) -> None:
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([article()])
    first = store.token_projection()
    assert first is not None and first.shape == (64, 64)
    np.testing.assert_allclose(first.T @ first, np.eye(64), atol=1e-4)  # orthonormal
    ingest.ingest([article("An orchard of apple trees was planted.", key="orchard")])
    second = store.token_projection()
    assert second is not None and np.array_equal(first, second)
    [orchard] = store.find("orchard")
    store.forget(orchard.id)
    assert store.stats()["token_vectors"] == 3


def test_indexes_carry_the_token_table_and_reload_it(store: Store, tmp_path: Path) -> None:
    Ingestor(store, HashingEmbedder()).ingest([article()])
    built = open_indexes(store, tmp_path / "index")
    loaded = open_indexes(store, tmp_path / "index")  # from the saved files this time
    assert built.sentences.tokens is not None and loaded.sentences.tokens is not None
    assert len(loaded.sentences.tokens) == 3
    np.testing.assert_array_equal(
        np.asarray(built.sentences.tokens.tokens), np.asarray(loaded.sentences.tokens.tokens)
    )


def test_quantized_tokens_keep_their_directions() -> None:
    rng = np.random.default_rng(3)
    tokens = rng.standard_normal((500, 64)).astype(np.float32)
    projection = fit_projection([tokens], 64, 32)
    codes = quantize(tokens[:20], projection)
    assert codes.dtype == np.int8 and codes.shape == (20, 32)
    exact = tokens[:20] @ projection
    got = codes.astype(np.float32)
    cosine = (exact * got).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.999


def test_the_token_table_is_built_in_pieces_as_one_concatenation_of_the_stored_rows(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces of 100 bytes: rows straddle them, as 64 MB pieces do at a million passages.
    monkeypatch.setattr(tokens_module, "_PIECE_BYTES", 100)
    Ingestor(store, HashingEmbedder()).ingest(
        [
            article(),
            article("An orchard of apple trees was planted. It gave fruit.", key="orchard"),
            article("The ferry sails at dawn. Gulls follow it.", key="ferry", title="Port"),
        ]
    )
    built = open_indexes(store, tmp_path / "index").sentences
    table = built.tokens
    assert table is not None and len(table) == len(built.rowids) == 7
    # The table as it was made before: every sentence's stored rows, in index order,
    # concatenated, and the IDF of their word pieces over the sentences.
    stored = {
        int(rowid): (bytes(ids), bytes(vecs))
        for rowid, ids, vecs in store.execute(
            "SELECT s.id, t.ids, t.vecs FROM sentences s"
            " JOIN token_vectors t ON t.hash = s.vec_hash"
        ).fetchall()
    }
    assert len(stored) == 7
    rows = [stored[int(rowid)] for rowid in built.rowids]
    ids = np.concatenate([np.frombuffer(i, np.int32) for i, _ in rows])
    vecs = np.concatenate([np.frombuffer(v, np.int8) for _, v in rows]).reshape(-1, 64)
    counts = [len(i) // 4 for i, _ in rows]
    assert table.tokens.dtype == np.int8 and table.tokens.tobytes() == vecs.tobytes()
    assert table.offsets.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    assert table.idf.tobytes() == tokens_module._idf(ids, 7).tobytes()
    assert table.inverse_norms.tobytes() == tokens_module._inverse_norms(vecs).tobytes()


def test_a_large_build_fills_its_files_as_it_goes_and_saves_what_a_build_in_memory_saves(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At a million passages the vectors and token vectors (21 GB) were held in memory and
    # the build was killed for want of it; past SPILL_ROWS they are written into the files
    # they are saved as. Here every unit counts as large.
    Ingestor(store, HashingEmbedder()).ingest(
        [
            article(),
            article("An orchard of apple trees was planted. It gave fruit.", key="orchard"),
            article("The ferry sails at dawn. Gulls follow it.", key="ferry", title="Port"),
        ]
    )
    in_memory = open_indexes(store, tmp_path / "memory")
    assert in_memory.mapped_from is None  # built here, not read back
    monkeypatch.setattr(build_module, "SPILL_ROWS", 1)
    spilled = open_indexes(store, tmp_path / "spilled")
    assert spilled.mapped_from is not None  # read back from the files it was built into
    memory_files = sorted((tmp_path / "memory").glob("gen-*/*"))
    spilled_files = sorted((tmp_path / "spilled").glob("gen-*/*"))
    assert [p.name for p in memory_files] == [p.name for p in spilled_files]
    for a, b in zip(memory_files, spilled_files, strict=True):
        if a.suffix == ".npy":
            np.testing.assert_array_equal(np.load(a), np.load(b), err_msg=a.name)
    assert not list((tmp_path / "spilled").glob(".building-*"))
    again = open_indexes(store, tmp_path / "spilled")  # and it loads as any saved generation
    assert again.sentences.tokens is not None
    assert (
        np.asarray(again.sentences.tokens.tokens).tobytes()
        == np.asarray(
            in_memory.sentences.tokens.tokens  # type: ignore[union-attr]
        ).tobytes()
    )


def _cached_share(path: Path) -> float:
    """The share of a file's pages in the page cache (Linux mincore)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    page = mmap.PAGESIZE
    with path.open("rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        try:
            buf = (ctypes.c_char * size).from_buffer(mm)
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            assert libc.mincore(ctypes.c_void_p(ctypes.addressof(buf)), size, vec) == 0
            del buf
            return sum(v & 1 for v in vec) / len(vec)
        finally:
            mm.close()


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux page cache")
def test_a_process_that_stays_up_brings_large_token_vectors_into_the_page_cache(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At a million passages the 13 GB token file stays mapped; read from the disk, the
    # rerank's scattered reads made asks 191 ms at p50 against 26 ms from the page cache.
    import os
    import random

    from store.indexes import saved

    rng = random.Random(0)
    vocabulary = [f"{a}{b}" for a in ("bri", "fer", "orch", "mar", "tol") for b in "aeiouxyz"]
    text = " ".join(
        " ".join(rng.choice(vocabulary) for _ in range(14)).capitalize() + "." for _ in range(300)
    )
    Ingestor(store, HashingEmbedder()).ingest([article(text)])
    open_indexes(store, tmp_path / "index")
    # Every token file counts as large.
    monkeypatch.setattr(saved, "RESIDENT_TOKENS_MAX", 1)
    monkeypatch.setattr(tokens_module, "RESIDENT_TOKENS_MAX", 1)
    [path] = (tmp_path / "index").glob("gen-*/sentences.tokens.npy")

    def evicted() -> float:
        with path.open("rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return _cached_share(path)

    monkeypatch.setattr(saved, "_available_memory", lambda: 1 << 20)  # too little memory
    assert evicted() < 0.5
    saved.make_resident(open_indexes(store, tmp_path / "index"))
    assert _cached_share(path) < 0.5  # left on the disk
    monkeypatch.setattr(saved, "_available_memory", lambda: 1 << 40)
    assert evicted() < 0.5
    indexes = open_indexes(store, tmp_path / "index")
    saved.make_resident(indexes)
    assert _cached_share(path) == 1.0
    # Still mapped: the pages are the kernel's to drop, not the process's memory.
    assert indexes.sentences.tokens is not None and indexes.sentences.tokens.file == path
