"""Synthetic stores of any size for the scale benchmark, and a clean-process load probe.

A store of a million passages cannot be embedded on this machine in a session (MiniLM does
~150 texts/s on 2 cores), so `write_synthetic_store` writes one straight into SQLite: real
text (passages and their sentences copied from a real, embedded seed store) and vectors
near real ones (a seed vector blended with another seed vector and Gaussian noise, cosine
~0.9 to the original), so the vectors spread and cluster like real embeddings instead of
piling up as copies. Everything downstream (index build, save, load, ask) is the product's
own code.

`probe_load` loads saved indexes and reports load time, resident memory, dense-search
latency and recall; `qabot bench` runs it in a fresh process, so the figures are those a
freshly started bot would see, without the benchmark's own model in its memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from store.db import Store

if TYPE_CHECKING:
    from bot.app import App
    from store.indexes.qdrant import QdrantIndexes

log = logging.getLogger(__name__)

PASSAGES_PER_ARTICLE = 20
SYNTHETIC_COLLECTION = "synthetic"


@dataclass
class Seed:
    """Real passages with their sentences and vectors, to copy into synthetic stores."""

    titles: list[str]  # per passage: its article's title
    passage_texts: list[str]
    sentence_texts: list[list[str]]  # per passage
    passage_vectors: np.ndarray  # (P, dim)
    sentence_vectors: list[np.ndarray]  # per passage: (sentences, dim)
    # Per passage, per sentence: its word piece ids and token vectors as stored (or None),
    # copied as they are (a synthetic sentence is a real sentence's text).
    sentence_tokens: list[list[tuple[bytes, bytes] | None]] = field(default_factory=list)
    token_projection: np.ndarray | None = None

    @property
    def all_vectors(self) -> np.ndarray:
        return np.concatenate([self.passage_vectors, *self.sentence_vectors])


def read_seed(store: Store) -> Seed:
    """Every passage of a real store, with its sentences' texts and vectors."""
    dim = store.dim
    rows = store.execute(
        "SELECT p.article_id, p.idx, p.first, p.last, p.text, a.title, v.vec FROM passages p"
        " JOIN articles a ON a.id = p.article_id JOIN vectors v ON v.hash = p.vec_hash"
        " ORDER BY p.article_id, p.idx"
    ).fetchall()
    sents: dict[str, list[tuple[str, bytes, tuple[bytes, bytes] | None]]] = {}
    for article_id, text, vec, ids, toks in store.execute(
        "SELECT s.article_id, s.text, v.vec, t.ids, t.vecs FROM sentences s JOIN vectors v"
        " ON v.hash = s.vec_hash LEFT JOIN token_vectors t ON t.hash = s.vec_hash"
        " ORDER BY s.article_id, s.idx"
    ):
        tokens = None if ids is None else (ids, toks)
        sents.setdefault(article_id, []).append((text, vec, tokens))
    seed = Seed([], [], [], np.zeros((len(rows), dim), np.float32), [])
    seed.token_projection = store.token_projection()
    for i, (article_id, _idx, first, last, text, title, vec) in enumerate(rows):
        members = sents[article_id][first : last + 1]
        seed.titles.append(title)
        seed.passage_texts.append(text)
        seed.sentence_texts.append([t for t, _, _ in members])
        seed.passage_vectors[i] = np.frombuffer(vec, np.float32)
        seed.sentence_vectors.append(
            np.frombuffer(b"".join(v for _, v, _ in members), np.float32).reshape(-1, dim)
        )
        seed.sentence_tokens.append([tok for _, _, tok in members])
    return seed


def _blend(
    vectors: np.ndarray, pool: np.ndarray, rng: np.random.Generator, mix: float = 0.35
) -> np.ndarray:
    """Each row blended with a random pool row and noise, renormalised (cosine ~0.9)."""
    other = pool[rng.integers(0, len(pool), len(vectors))]
    noise = rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(
        0.3 / np.sqrt(vectors.shape[1])
    )
    out = vectors + np.float32(mix) * other + noise
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def write_synthetic_store(
    store: Store,
    seed: Seed,
    passages: int,
    *,
    rng_seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Fill an empty store with `passages` passages in articles of PASSAGES_PER_ARTICLE.

    Each passage copies a random seed passage's text and sentences, with blended vectors;
    the vectors are keyed by a hash of the text and the passage's number, as distinct
    texts would be. One transaction per block of articles keeps memory bounded.
    """
    rng = np.random.default_rng(rng_seed)
    pool = seed.all_vectors
    now = datetime.now(UTC).isoformat(timespec="seconds")
    n_seed = len(seed.passage_texts)
    n_articles = -(-passages // PASSAGES_PER_ARTICLE)
    sentences_written = 0
    block = 500  # articles per transaction
    store.execute("PRAGMA cache_size=-1000000")  # 1 GB: the hash index stays in memory
    if seed.token_projection is not None:
        store.set_token_projection(seed.token_projection)
    for first_article in range(0, n_articles, block):
        articles, passage_rows, sentence_rows, vector_rows = [], [], [], []
        token_rows: list[tuple[bytes, bytes, bytes]] = []
        last_article = min(n_articles, first_article + block)
        for a in range(first_article, last_article):
            count = min(PASSAGES_PER_ARTICLE, passages - a * PASSAGES_PER_ARTICLE)
            picks = rng.integers(0, n_seed, count)
            aid = hashlib.sha256(f"synthetic\x1f{rng_seed}\x1f{a}".encode()).hexdigest()[:16]
            title = f"{seed.titles[int(picks[0])]} ({a})"
            p_vecs = _blend(seed.passage_vectors[picks], pool, rng)
            s_vecs = _blend(np.concatenate([seed.sentence_vectors[p] for p in picks]), pool, rng)
            text_parts: list[str] = []
            offset = 0
            s_idx = 0
            for pi, p in enumerate(picks.tolist()):
                first_sentence = s_idx
                tokens = seed.sentence_tokens[p] if seed.sentence_tokens else []
                for j, sentence in enumerate(seed.sentence_texts[p]):
                    start = offset
                    end = start + len(sentence)
                    h = hashlib.blake2b(f"{sentence}\x1f{aid}\x1f{s_idx}".encode(), digest_size=16)
                    sentence_rows.append((aid, s_idx, start, end, pi, sentence, h.digest()))
                    vector_rows.append((h.digest(), s_vecs[s_idx].tobytes()))
                    if j < len(tokens) and (copied := tokens[j]) is not None:
                        token_rows.append((h.digest(), *copied))
                    text_parts.append(sentence)
                    offset = end + 1
                    s_idx += 1
                body = " ".join(seed.sentence_texts[p])
                h = hashlib.blake2b(f"{body}\x1f{aid}\x1fp{pi}".encode(), digest_size=16)
                passage_rows.append((aid, pi, first_sentence, s_idx - 1, body, h.digest()))
                vector_rows.append((h.digest(), p_vecs[pi].tobytes()))
            articles.append(
                (aid, f"synthetic/{a}", SYNTHETIC_COLLECTION, title, " ".join(text_parts), now)
            )
            sentences_written += s_idx
        with store.transaction() as db:
            db.executemany(
                "INSERT INTO articles (id, key, collection, title, text, ingested_at)"
                " VALUES (?,?,?,?,?,?)",
                articles,
            )
            db.executemany("INSERT INTO vectors (hash, vec) VALUES (?, ?)", vector_rows)
            db.executemany(
                "INSERT INTO token_vectors (hash, ids, vecs) VALUES (?, ?, ?)", token_rows
            )
            db.executemany(
                "INSERT INTO passages (article_id, idx, first, last, text, vec_hash)"
                " VALUES (?,?,?,?,?,?)",
                passage_rows,
            )
            db.executemany(
                "INSERT INTO sentences (article_id, idx, start, end, passage_idx, text, vec_hash)"
                " VALUES (?,?,?,?,?,?,?)",
                sentence_rows,
            )
        if progress:
            progress(len(passage_rows))
    return {"articles": n_articles, "passages": passages, "sentences": sentences_written}


def rss_mb() -> float:
    """Resident memory of this process, in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe_load(index_dir: Path, queries: np.ndarray) -> dict[str, float | int | str]:
    """Load saved indexes as a fresh process would; time dense searches; check recall.

    Recall@10 is measured for each unit's index in use, as the retriever uses it (its best
    30, rescored with the exact vectors), against exact search over the same vectors, with
    the given query vectors (real questions, embedded).
    """
    from store.indexes.saved import load_indexes, make_resident
    from store.indexes.vectors import exact_top, recall_at_k, set_threads

    set_threads()
    import faiss  # noqa: F401  (imported before the baseline, as a running bot has it)
    from scipy import sparse  # noqa: F401

    base = rss_mb()
    current = index_dir / (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    indexes = load_indexes(index_dir, manifest["generation"], manifest["model"])
    load_s = time.perf_counter() - started
    if indexes is None:
        raise RuntimeError(f"no loadable indexes in {index_dir}")
    mapped_mb = rss_mb()
    # What a bot does next, behind its first questions (here with nothing else running).
    resident_s = make_resident(indexes)
    out: dict[str, float | int | str] = {
        "load_s": round(load_s, 3),
        "resident_s": round(resident_s, 2),
        "rss_base_mb": round(base, 1),
        "rss_mapped_mb": round(mapped_mb, 1),
        "rss_loaded_mb": round(rss_mb(), 1),
    }
    q = np.ascontiguousarray(queries, dtype=np.float32)
    for name in ("passages", "sentences"):
        unit = getattr(indexes, name)
        index = unit.dense()
        times = []
        for row in q:
            t = time.perf_counter()
            if unit.dense_info.get("kind") == "flat":
                # What the retriever does for one question over a flat index.
                np.argpartition(-(unit.vectors @ row), 9)[:10]
            else:
                index.search(row[None, :], 10)
            times.append(time.perf_counter() - t)
        out[f"{name}_kind"] = str(unit.dense_info.get("kind", type(index).__name__))
        out[f"{name}_n"] = len(unit.rowids)
        out[f"{name}_nprobe"] = int(getattr(index, "nprobe", 0))
        out[f"{name}_search_p50_ms"] = round(float(np.median(times)) * 1000, 3)
        out[f"{name}_search_p95_ms"] = round(float(np.percentile(times, 95)) * 1000, 3)
    # Before the recall check, which reads every vector once (and so maps them all in).
    out["rss_searched_mb"] = round(rss_mb(), 1)
    for name in ("passages", "sentences"):
        unit = getattr(indexes, name)
        truth = exact_top(unit.vectors, q, 10)
        # As the retriever searches: the index's best 30, rescored with the exact vectors.
        out[f"{name}_recall10"] = round(recall_at_k(unit.dense(), q, truth, unit.vectors), 4)
    return out


# -- the same store on Qdrant's engine in this process (`qabot bench --backend qdrant`) ----


def qdrant_app(data_dir: Path, qdrant_dir: Path) -> App:
    """An `App` on the store in `data_dir` whose search indexes live in Qdrant's in-process
    engine at `qdrant_dir` (as QABOT_QDRANT_URL=edge:///qdrant_dir would make them)."""
    from pydantic import SecretStr

    from bot.app import App
    from bot.settings import load_settings

    url = SecretStr(f"edge://{qdrant_dir.resolve()}")
    return App(load_settings(data_dir=data_dir).model_copy(update={"qdrant_url": url}))


def _qdrant_source(app: App) -> QdrantIndexes:
    from store.indexes.qdrant import QdrantIndexes

    source = app.index_source
    assert isinstance(source, QdrantIndexes)
    return source


def sync_qdrant(
    data_dir: Path, qdrant_dir: Path, progress: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Sync the store in `data_dir` into an empty Qdrant folder as the bot's first ask
    would (`QdrantIndexes.open`): its time (every point written and the engine's indexes
    built), and what it wrote. `progress` is called once a unit row."""
    import qdrant_edge  # noqa: F401  (its import is not the sync's time)

    app = qdrant_app(data_dir, qdrant_dir)
    store = app.store
    started = time.perf_counter()
    source = _qdrant_source(app)
    indexes = source.open(store, app.settings.index_dir, progress)
    seconds = time.perf_counter() - started
    written = dict(source.last_sync)
    counts = {u: len(getattr(indexes, u).rowids) for u in ("passages", "sentences")}
    app.close()
    return {"build_s": round(seconds, 1), "points": written.get("written", 0), **counts}


def probe_qdrant(data_dir: Path, qdrant_dir: Path, queries: np.ndarray) -> dict[str, Any]:
    """`probe_load` for a store synced into Qdrant's in-process engine: open the indexes as
    a fresh bot would (the engine's shards, the tables an answer reads), time dense
    searches, and check recall@10 against exact search over the store's vectors, with the
    retriever's rescoring of the best 30 (`recall_at_k`'s check)."""
    from store.indexes.vectors import RESCORE_DEPTH, exact_top, set_threads

    set_threads()
    import qdrant_edge  # noqa: F401  (imported before the baseline, as a running bot has it)

    base = rss_mb()
    app = qdrant_app(data_dir, qdrant_dir)
    store = app.store
    started = time.perf_counter()
    source = _qdrant_source(app)
    indexes = source.open(store, app.settings.index_dir)
    load_s = time.perf_counter() - started
    if source.last_sync.get("written"):
        raise RuntimeError(f"Qdrant at {qdrant_dir} was not synced before the probe")
    out: dict[str, Any] = {
        "load_s": round(load_s, 3),
        "rss_base_mb": round(base, 1),
        "rss_loaded_mb": round(rss_mb(), 1),
    }
    q = np.ascontiguousarray(queries, dtype=np.float32)
    for name in ("passages", "sentences"):
        index = getattr(indexes, name).dense_index
        times = []
        for row in q:
            t = time.perf_counter()
            index.nearest(row, 10)
            times.append(time.perf_counter() - t)
        out[f"{name}_kind"] = "qdrant-edge"
        out[f"{name}_n"] = len(getattr(indexes, name).rowids)
        out[f"{name}_search_p50_ms"] = round(float(np.median(times)) * 1000, 3)
        out[f"{name}_search_p95_ms"] = round(float(np.percentile(times, 95)) * 1000, 3)
    out["rss_searched_mb"] = round(rss_mb(), 1)  # before the check reads every vector
    for name in ("passages", "sentences"):
        unit = getattr(indexes, name)
        with store.snapshot() as snap:
            # The store's vectors in the indexes' order (both walk `iter_units`).
            vectors = np.stack(
                [np.frombuffer(row[6], dtype=np.float32) for row in snap.iter_units(name)]
            )
        assert len(vectors) == len(unit.rowids)
        truth = exact_top(vectors, q, 10)
        hits = []
        for row, t in zip(q, truth, strict=True):
            found = unit.dense_index.nearest(row, RESCORE_DEPTH)
            found = found[np.argsort(-(vectors[found] @ row), kind="stable")][:10]
            hits.append(len(set(found.tolist()) & set(t.tolist())))
        out[f"{name}_recall10"] = round(float(np.mean(hits)) / 10, 4)
    app.close()
    return out
