"""The store of truth on SQLite and on PostgreSQL, holding the same articles, in one process.

    OMP_NUM_THREADS=1 .venv/bin/python docs/compare_stores.py DATA_DIR DATABASE_URL [N]

DATA_DIR holds the SQLite store (a ReQA one: `qabot eval reqa ... --data-dir DATA_DIR`) and
DATABASE_URL a copy of it (`qabot --data-dir DATA_DIR migrate --to DATABASE_URL`). Prints,
for each store: the full index build from it (read and built, three times, the median),
and the same N ReQA questions (every other article's, from ../shared/data/reqa-squad-dev)
asked of both in turn, question by question, so that a busy machine slows both alike: each
part's p50 (`Answer.timings`) and what reading the generation (once an ask) costs.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.app import App
from bot.settings import load_settings
from retriever.evaluate import load_reqa
from retriever.retriever import Retriever
from store.db import Store as SqliteStore
from store.indexes.build import build_indexes
from store.postgres import PostgresStore
from store.seams import Store


def main() -> None:
    data_dir, url = Path(sys.argv[1]), sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    reqa = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reqa-squad-dev"
    questions = [q.text for q in load_reqa(reqa).split("odd")][:n]
    app = App(load_settings(data_dir=data_dir))
    embedder = app.query_embedder
    stores: dict[str, Store] = {
        "sqlite": SqliteStore(data_dir / "qabot.sqlite3", model=embedder.name, dim=embedder.dim),
        "postgresql": PostgresStore(url, model=embedder.name, dim=embedder.dim),
    }
    out: dict[str, dict[str, object]] = {}
    for name, store in stores.items():
        builds = []
        for _ in range(3):
            started = time.perf_counter()
            build_indexes(store)
            builds.append(time.perf_counter() - started)
        reads = []
        for _ in range(200):
            started = time.perf_counter()
            _ = store.generation
            reads.append(time.perf_counter() - started)
        out[name] = {
            "build_s": round(statistics.median(builds), 2),
            "generation_read_ms": round(statistics.median(reads) * 1000, 3),
        }
    with tempfile.TemporaryDirectory() as folder:
        retrievers = {
            name: Retriever(store, embedder, Path(folder) / name) for name, store in stores.items()
        }
        answers: dict[str, list[object]] = {name: [] for name in stores}
        parts: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
        for retriever in retrievers.values():  # built and warmed before timing
            retriever.ask(questions[0])
        for question in questions:
            for name, retriever in retrievers.items():
                answer = retriever.ask(question)
                answers[name].append([a.text for a in answer.answers])
                for part, ms in answer.timings.items():
                    parts[name].setdefault(part, []).append(ms)
        for name in stores:
            out[name]["ask_p50_ms"] = {
                part: round(statistics.median(v), 1) for part, v in parts[name].items()
            }
        out["same_answers"] = {
            "questions": len(questions),
            "identical": sum(
                a == b for a, b in zip(answers["sqlite"], answers["postgresql"], strict=True)
            ),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
