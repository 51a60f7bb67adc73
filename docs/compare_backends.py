"""Ask p50 per part on the local indexes and on Qdrant, on one store, in one process.

    OMP_NUM_THREADS=1 .venv/bin/python docs/compare_backends.py DATA_DIR [QDRANT_URL] [N]

The same N questions (ReQA's, from ../shared/data/reqa-squad-dev, every other article)
are asked of both backends in turn, question by question, so that a busy machine slows
both alike; prints each part's p50 (`Answer.timings`: embed, search, select, total) and,
for Qdrant, what the calls cost per ask by kind (each Transport call timed).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bot.app import App
from bot.settings import load_settings
from retriever.evaluate import load_reqa


class Timed:
    """A transport whose calls are timed, by method and by what they ask for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.where = inner.where
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name
            if name == "search":
                first = args[1][0]
                what = "ids" if first.ids is not None else "top"
                label = f"search {first.using} {what}" + (" (idf)" if first.with_words else "")
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.spent[label] += time.perf_counter() - started
                self.calls[label] += 1

        return timed


def main() -> None:
    data_dir = Path(sys.argv[1])
    url = sys.argv[2] if len(sys.argv) > 2 else f"edge://{data_dir / 'qdrant-edge'}"
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    data = load_reqa(Path("../shared/data/reqa-squad-dev"))
    questions = [q.text for q in data.questions if q.doc_position % 2 == 1][:count]
    local = App(load_settings(data_dir=data_dir))
    qdrant = App(load_settings(data_dir=data_dir, qdrant_url=url))
    timed = Timed(qdrant.index_source.transport)  # type: ignore[attr-defined]
    qdrant.index_source.transport = timed  # type: ignore[attr-defined]
    apps = {"local": local, "qdrant": qdrant}
    for app in apps.values():  # indexes opened, warmed once
        app.retriever.ask(questions[0])
        app.retriever.wait_resident()
    timed.spent.clear()
    timed.calls.clear()
    parts: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in apps}
    for q in questions:
        for name, app in apps.items():
            for part, ms in app.retriever.ask(q).timings.items():
                parts[name][part].append(ms)
    out: dict[str, Any] = {
        name: {p: round(statistics.median(v), 2) for p, v in by.items()}
        for name, by in parts.items()
    }
    out["qdrant_calls_per_ask"] = {
        k: {"calls": round(timed.calls[k] / count, 2), "ms": round(v * 1000 / count, 3)}
        for k, v in sorted(timed.spent.items())
    }
    out["questions"] = count
    out["qdrant"]["where"] = timed.where
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
