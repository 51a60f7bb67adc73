"""`qabot bench`: speed and scale, measured side by side in one run and printed as ratios.

Its `COMMANDS` join the `qabot` table (bot/cli.py). Steps, each reported:
1. ingest the SQuAD dev articles and the sample articles into a fresh store with the real
   model, against a bare encode of the same texts (`ingest_ratio`);
2. a 10k-passage store (real text, vectors near real ones; see bot/scale.py): asks in a
   fresh process that loads the model and indexes as the bot does, each against a bare
   encode of the same question, and `qabot ask` in fresh processes;
3. the scale store (`--passages`, default 1M): build, size on disk, a fresh process that
   loads its indexes (time, memory, dense-search latency and recall@10), then asks in a
   fresh process as in 2. Fresh processes, because the one that built a million-passage
   store peaks at 15 GB and leaves the page cache emptied: asks timed there (ratio 3.8 on
   2026-12-01) measured the build's aftermath, not what a bot starting on the store sees;
4. with `--backend qdrant` or `both`, the same scale store on Qdrant's engine in process
   (qdrant-edge-py, a folder under the work dir), next to the local figures of 3: the sync
   of the store into it, its size on disk, a fresh process that opens it (time, memory,
   dense-search latency and recall@10 against exact), and asks of the same questions by the
   local and the Qdrant indexes alternated block by block in one process. `qdrant` skips
   the 10k store and the `qabot ask` timings of 2, which Qdrant does not change.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.commands import Command, arg, quiet_openmp
from bot.errors import BotError
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_REQA = Path("../shared/data/reqa-squad-dev")
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "articles"
SMALL = 10_000
MIN_PASSAGES = 100

# (key, what it is, target as text, check) for the table; the JSON carries every figure.
TARGETS: dict[str, tuple[str, Any]] = {
    "ingest_ratio": ("<= 1.3", lambda v: v <= 1.3),
    "ask_ratio_10k": ("<= 1.5", lambda v: v <= 1.5),
    "cold_ask_s": ("<= 3", lambda v: v <= 3.0),
    "warm_cli_ask_s": ("< 1", lambda v: v < 1.0),
}


def size_label(n: int) -> str:
    """1_000_000 -> '1m', 200_000 -> '200k', 1_500 -> '1500'."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Measure ingest, ask and scale; print ratios to the model's own work and the targets.

    Ingest and in-process asks are divided by a bare encode of the same texts in the same
    run, so the ratios hold on a noisy machine. The scale store (--passages) has real text
    and synthetic vectors near real ones. Takes about 6 minutes with --passages 20000 and
    about 30 with the default million on 2 cores.
    """
    if args.passages < MIN_PASSAGES:
        raise BotError(
            f"--passages {args.passages} is too small to measure; use {MIN_PASSAGES} or more"
        )
    if not (args.reqa / "sentences.jsonl").exists():
        raise BotError(
            f"no ReQA data in {args.reqa}; pass --reqa DIR (the shared data folder's "
            "reqa-squad-dev)"
        )
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="qabot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        figures = run_bench(args, settings, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    else:
        print(render_table(figures, args))
    return 0


def _step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_bench(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    import numpy as np

    from bot.app import App
    from bot.scale import read_seed, write_synthetic_store
    from retriever.bench import RecordingEmbedder, measure_ingest
    from retriever.evaluate import load_reqa
    from store.embedding import load_embedder
    from store.indexes.vectors import set_threads
    from store.sources.files import find_files, load_file

    set_threads()
    out: dict[str, Any] = {"cores": len(os.sched_getaffinity(0))}
    started = time.perf_counter()
    _step(f"loading {settings.model}")
    embedder = load_embedder(settings.model, runtime="torch")
    reqa = load_reqa(args.reqa)

    # 1. ingest a real corpus
    items: list[Any] = [a.raw() for a in reqa.articles[: args.articles]]
    for f in find_files(SAMPLES):
        items.extend([f] if not isinstance(f, Path) else load_file(f))
    _step(f"ingesting {len(items)} articles (SQuAD dev + samples) into a fresh store")
    seed_dir = work / "ingest"
    shutil.rmtree(seed_dir, ignore_errors=True)
    recorder = RecordingEmbedder(embedder)
    writer = App.for_data_dir(settings, seed_dir, embedder=recorder)
    try:
        ing = measure_ingest(writer.ingestor, recorder, items, writer.settings.index_dir)
    finally:
        writer.close()
    out.update(
        ingest_ratio=round(ing.ratio, 3),
        ingest_s=round(ing.seconds, 2),
        ingest_encode_s=round(ing.encode_seconds, 2),
        ingest_inside_encode_s=round(ing.encode_inside_seconds, 2),
        ingest_index_s=round(ing.extra["index_s"], 2),
        ingest_articles=ing.articles,
        ingest_sentences=ing.sentences,
        ingest_passages=ing.passages,
        ingest_texts_embedded=ing.embedded,
        ingest_sentences_per_s=round(ing.sentences / ing.seconds, 1),
        ingest_articles_per_s=round(ing.articles / ing.seconds, 2),
    )
    seed_app = App.for_data_dir(settings, seed_dir, embedder=embedder)
    seed = read_seed(seed_app.store)
    seed_app.close()

    rng = np.random.default_rng(0)
    picks = rng.choice(len(reqa.questions), size=min(args.questions, len(reqa.questions)))
    questions = [reqa.questions[int(i)].text for i in picks]

    # 2. the 10k store: asks in process, then `qabot ask` in fresh processes
    sizes = [args.passages] if args.backend == "qdrant" else [SMALL, args.passages]
    for n in dict.fromkeys(sizes):
        label = size_label(n)
        folder = work / f"store-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _step(f"writing a {n:,}-passage store")
        app = App.for_data_dir(settings, folder, embedder=embedder)
        store = app.store  # opened before the clock starts, as before
        t = time.perf_counter()
        counts = write_synthetic_store(store, seed, n, progress=_bar(n, args.json))
        out[f"generate_s_{label}"] = round(time.perf_counter() - t, 1)
        out[f"sentences_{label}"] = counts["sentences"]
        _step(f"building the indexes of {n:,} passages and {counts['sentences']:,} sentences")
        app.close()
        built = _build_indexes(folder)
        out[f"build_s_{label}"] = built["build_s"]
        out[f"dense_{label}"] = built["dense"]
        out[f"disk_mb_{label}"] = round(_size_mb(folder), 1)
        out[f"disk_index_mb_{label}"] = round(_size_mb(folder / "index"), 1)

        _step(f"loading the {label} indexes in a fresh process")
        qfile = work / "questions.npy"
        np.save(qfile, embedder.encode_documents(questions))
        probe = _probe_load(folder / "index", qfile)
        out[f"load_s_{label}"] = probe["load_s"]
        out[f"resident_s_{label}"] = probe["resident_s"]
        out[f"rss_mb_{label}"] = probe["rss_searched_mb"]
        out[f"rss_loaded_mb_{label}"] = probe["rss_loaded_mb"]
        out[f"rss_base_mb_{label}"] = probe["rss_base_mb"]
        out[f"recall10_{label}"] = min(probe["passages_recall10"], probe["sentences_recall10"])
        out[f"probe_{label}"] = probe

        _step(f"asking {len(questions)} questions of the {label} store in a fresh process")
        asks = _probe_asks(folder, questions, work / "questions.json")
        out[f"open_s_{label}"] = asks["open_s"]
        out[f"first_ask_ms_{label}"] = asks["first_ask_ms"]
        out[f"ask_resident_s_{label}"] = asks["resident_s"]
        for key in ("ask_ratio", "ask_ratio_strict", "ask_p50_ms", "ask_p95_ms"):
            out[f"{key}_{label}"] = asks[key]
        out[f"encode_p50_ms_{label}"] = asks["encode_p50_ms"]
        out[f"own_encode_p50_ms_{label}"] = asks["own_encode_p50_ms"]
        out[f"answered_{label}"] = asks["answered"]

        if n == SMALL:
            _step("timing `qabot ask` in fresh processes")
            cold = [_cli_ask(folder, q) for q in questions[:5]]
            out["cold_ask_first_s"] = round(cold[0][0], 3)
            out["cold_ask_s"] = round(float(np.median([t for t, _ in cold[1:]])), 3)
            _step("timing `qabot ask` with `qabot serve` running")
            warm = _warm_cli_asks(folder, questions[:5])
            out["warm_cli_ask_s"] = round(float(np.median([t for t, _ in warm])), 3)
            out["warm_cli_same_answers"] = [o for _, o in warm] == [o for _, o in cold]
        if n == args.passages and args.backend != "local":
            out.update(_qdrant_figures(folder, work, label, counts, args.json))
        if n != SMALL and args.work_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(work / f"qdrant-{label}", ignore_errors=True)
    out["scale_passages"] = args.passages
    out["bench_s"] = round(time.perf_counter() - started, 1)
    return out


def _qdrant_figures(
    folder: Path, work: Path, label: str, counts: dict[str, int], quiet: bool
) -> dict[str, Any]:
    """The scale store in `folder` on Qdrant's in-process engine (a folder under `work`),
    each step in a fresh process as the local side's: sync, open and probe, then asks of
    the same questions (work/questions.json, .npy) alternated with the local indexes."""
    qdrant_dir = (work / f"qdrant-{label}").resolve()
    shutil.rmtree(qdrant_dir, ignore_errors=True)
    rows = 0 if quiet and not sys.stderr.isatty() else counts["passages"] + counts["sentences"]
    _step(f"syncing the {label} store into Qdrant's in-process engine at {qdrant_dir}")
    synced = _run_probe("sync-qdrant", folder, qdrant_dir, str(rows), show_progress=True)
    out: dict[str, Any] = {
        f"qdrant_build_s_{label}": synced["build_s"],
        f"qdrant_points_{label}": synced["points"],
        # The engine preallocates its files (32 MB each, mostly holes): what they hold on
        # disk, and their apparent size, as `du` and `du --apparent-size` count.
        f"qdrant_disk_mb_{label}": round(_used_mb(qdrant_dir), 1),
        f"qdrant_disk_apparent_mb_{label}": round(_size_mb(qdrant_dir), 1),
    }
    _step(f"opening the {label} Qdrant indexes in a fresh process")
    probe = _run_probe("probe-qdrant", folder, qdrant_dir, str(work / "questions.npy"))
    out[f"qdrant_load_s_{label}"] = probe["load_s"]
    out[f"qdrant_rss_mb_{label}"] = probe["rss_searched_mb"]
    out[f"qdrant_rss_loaded_mb_{label}"] = probe["rss_loaded_mb"]
    out[f"qdrant_rss_base_mb_{label}"] = probe["rss_base_mb"]
    out[f"qdrant_recall10_{label}"] = min(probe["passages_recall10"], probe["sentences_recall10"])
    out[f"qdrant_probe_{label}"] = probe
    _step(f"asking the same questions of the local and the Qdrant {label} indexes, alternated")
    asks = _run_probe("probe-asks-both", folder, qdrant_dir, str(work / "questions.json"))
    for key, value in asks.items():
        out[f"{key}_{label}"] = value
    return out


def _bar(total: int, quiet: bool, desc: str = "passages") -> Any:
    if quiet and not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=desc[0], file=sys.stderr, dynamic_ncols=True)
    return bar.update


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _used_mb(folder: Path) -> float:
    """The disk blocks the files under `folder` take, in MiB (holes in sparse files not
    counted)."""
    return sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file()) / 2**20


def _build_indexes(data_dir: Path) -> dict[str, Any]:
    """Build and save the indexes of the store in `data_dir` in a fresh process.

    A million passages' build peaks at ~15 GB; done in this process, what it left behind
    stayed beside the probes that follow and crowded the page cache they read from (asks at
    1M: p50 97 ms in that run, 18 ms when the same probe ran again alone).
    """
    return _run_probe("build-indexes", data_dir)


def build_indexes(data_dir: Path) -> dict[str, Any]:
    """Open (so build and save) the indexes of `data_dir`'s store; their build time and kind."""
    from bot.app import App
    from bot.settings import load_settings
    from store.indexes.saved import open_indexes

    app = App(load_settings(data_dir=data_dir))
    started = time.perf_counter()
    indexes = open_indexes(app.store, app.settings.index_dir)  # no model needed to build
    seconds = time.perf_counter() - started
    app.close()
    return {
        "build_s": round(seconds, 1),
        "dense": {
            "passages": indexes.passages.dense_info,
            "sentences": indexes.sentences.dense_info,
        },
    }


def _probe_load(index_dir: Path, queries: Path) -> dict[str, Any]:
    """Load the indexes in a fresh Python process (no model, no torch) and probe them."""
    return _run_probe("probe-load", index_dir, queries)


def _probe_asks(data_dir: Path, questions: list[str], qfile: Path) -> dict[str, Any]:
    """Time asks as a bot that has just started on this data folder sees them: in a fresh
    process that loads the model and the indexes once, then asks (see `probe_asks`)."""
    qfile.write_text(json.dumps(questions), encoding="utf-8")
    return _run_probe("probe-asks", data_dir, qfile)


def _run_probe(
    probe: str, folder: Path, *inputs: Path | str, show_progress: bool = False
) -> dict[str, Any]:
    """`python -m bot.bench_cmd PROBE FOLDER [INPUTS...]` in a fresh process; its JSON line.
    With `show_progress`, its stderr (a progress bar) goes to ours."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.bench_cmd", probe, str(folder), *map(str, inputs)],
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
        env=_cli_env(),
    )
    if done.returncode != 0:
        said = "its error is above" if show_progress else done.stderr.strip()[-500:]
        raise BotError(f"the {probe} probe failed: {said}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def probe_asks(data_dir: Path, questions: list[str]) -> dict[str, Any]:
    """Load the model and indexes of `data_dir` as `qabot discord` does (`App`), then time
    each question's `ask` beside a bare encode of it (`measure_asks`)."""
    from bot.app import App
    from bot.settings import load_settings
    from retriever.bench import measure_asks
    from store.indexes.vectors import set_threads

    set_threads()
    app = App(load_settings(data_dir=data_dir))
    retriever = app.retriever
    started = time.perf_counter()
    retriever.keep_resident()
    open_s = time.perf_counter() - started
    # The first question also reads what the indexes keep per generation (article
    # metadata, the z-scores' sample): what the first user after a start waits for. It
    # runs while the indexes are being read into memory, as it would in the bot.
    started = time.perf_counter()
    retriever.ask(questions[0])
    first_ask_s = time.perf_counter() - started
    retriever.wait_resident()
    resident_s = time.perf_counter() - started + open_s
    asks = measure_asks(retriever, app.embedder, questions)
    app.close()
    return {
        "open_s": round(open_s, 2),
        "first_ask_ms": round(first_ask_s * 1000, 1),
        "resident_s": round(resident_s, 2),
        "ask_ratio": round(asks.ratio, 3),
        "ask_ratio_strict": round(asks.strict_ratio, 3),
        "ask_p50_ms": round(asks.p50, 2),
        "ask_p95_ms": round(asks.p95, 2),
        "encode_p50_ms": round(asks.encode_p50, 2),
        "own_encode_p50_ms": round(asks.own_encode_p50, 2),
        "answered": round(asks.answered / len(questions), 3),
    }


def probe_asks_both(data_dir: Path, qdrant_dir: Path, questions: list[str]) -> dict[str, Any]:
    """The same questions asked of the store in `data_dir` through its local indexes and
    through the Qdrant at `qdrant_dir` (synced already), in one process, alternated block by
    block (`measure_side_by_side`): p50/p95 of each, their ratio, and how often they agree."""
    from bot.app import App
    from bot.scale import qdrant_app
    from bot.settings import load_settings
    from retriever.bench import measure_side_by_side
    from store.indexes.vectors import set_threads

    set_threads()
    local = App(load_settings(data_dir=data_dir).model_copy(update={"qdrant_url": None}))
    qdrant = qdrant_app(data_dir, qdrant_dir)
    retrievers = {"local": local.retriever, "qdrant": qdrant.retriever}
    for retriever in retrievers.values():
        retriever.keep_resident()  # as the bot does; nothing to read for Qdrant's
        retriever.ask(questions[0])
        retriever.wait_resident()
    runs = measure_side_by_side(retrievers, questions)
    same, same_top = runs.agreement("local", "qdrant")
    local.close()
    qdrant.close()
    return {
        "qdrant_ask_p50_ms": round(runs.p50("qdrant"), 2),
        "qdrant_ask_p95_ms": round(runs.p95("qdrant"), 2),
        "local_alt_ask_p50_ms": round(runs.p50("local"), 2),
        "local_alt_ask_p95_ms": round(runs.p95("local"), 2),
        "qdrant_ask_vs_local": round(runs.p50("qdrant") / max(runs.p50("local"), 1e-9), 3),
        "qdrant_same_answers": round(same, 3),
        "qdrant_same_top_answer": round(same_top, 3),
    }


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("QABOT_DATA_DIR", None)
    return env


def _cli_ask(data_dir: Path, question: str) -> tuple[float, str]:
    """Wall time and output of `qabot --data-dir DIR ask QUESTION` in a fresh process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data_dir), "ask", question],
        capture_output=True,
        text=True,
        check=False,
        env=_cli_env(),
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BotError(f"`qabot ask` failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def _warm_cli_asks(data_dir: Path, questions: list[str]) -> list[tuple[float, str]]:
    """`qabot ask` while `qabot serve` runs on the same data folder (started and stopped
    here): wall time and output of each."""
    from bot.serve import SOCKET_NAME, _listening

    sock = data_dir / SOCKET_NAME
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data_dir), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_cli_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (sock.exists() and _listening(sock)):
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode() if server.stderr else ""
                raise BotError(f"`qabot serve` did not start: {err.strip()[-500:]}")
            time.sleep(0.05)
        return [_cli_ask(data_dir, q) for q in questions]
    finally:
        server.terminate()
        server.wait(timeout=30)
        sock.unlink(missing_ok=True)


def render_table(figures: dict[str, Any], args: argparse.Namespace) -> str:
    """The figures as an aligned table, with targets where the issue sets them."""
    label = size_label(args.passages)
    targets = dict(TARGETS)
    targets[f"ask_ratio_{label}"] = ("<= 1.5", lambda v: v <= 1.5)
    targets[f"ask_p95_ms_{label}"] = ("< 100", lambda v: v < 100)
    targets[f"load_s_{label}"] = ("< 5", lambda v: v < 5)
    targets[f"recall10_{label}"] = (">= 0.95", lambda v: v >= 0.95)
    targets[f"qdrant_recall10_{label}"] = (">= 0.95", lambda v: v >= 0.95)
    targets[f"qdrant_ask_vs_local_{label}"] = ("<= 2", lambda v: v <= 2.0)
    backend = "" if args.backend == "local" else f" --backend {args.backend}"
    lines = [
        f"qabot bench{backend} --passages {args.passages}  ({figures['cores']} cores)",
        f"{'figure':<28}{'value':>14}  {'target':<10}",
    ]
    for key, value in figures.items():
        if isinstance(value, dict):
            continue
        target, ok = targets.get(key, ("", None))
        mark = "" if ok is None else ("ok" if ok(value) else "MISSED")
        shown = f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else value
        lines.append(f"{key:<28}{shown!s:>14}  {target:<10}{mark}")
    return "\n".join(lines)


COMMANDS = [
    Command(
        "bench",
        cmd_bench,
        [
            arg(
                "--passages",
                type=int,
                default=1_000_000,
                metavar="N",
                help="passages in the scale store (default 1000000; 20000 for a quick run)",
            ),
            arg(
                "--reqa",
                type=Path,
                default=DEFAULT_REQA,
                metavar="DIR",
                help="ReQA SQuAD folder: the ingest corpus and the questions "
                f"(default {DEFAULT_REQA})",
            ),
            arg(
                "--articles",
                type=int,
                default=None,
                metavar="N",
                help="ingest only the first N SQuAD articles (default all 48; fewer for a "
                "smoke run)",
            ),
            arg(
                "--questions",
                type=int,
                default=200,
                metavar="N",
                help="questions timed (default 200)",
            ),
            arg(
                "--work-dir",
                type=Path,
                default=None,
                metavar="DIR",
                help="build the benchmark stores here and keep them (default: a temporary "
                "folder, removed afterwards; the 1M store takes ~25 GB)",
            ),
            arg(
                "--backend",
                choices=["local", "qdrant", "both"],
                default="local",
                help="local: the local indexes only (default); qdrant: the scale store on "
                "Qdrant's in-process engine too, next to the local figures (skips the 10k "
                "store and the `qabot ask` timings); both: everything",
            ),
            arg("--json", action="store_true", help="print one JSON object"),
        ],
    )
]


def _main(argv: list[str]) -> int:
    """The bench's fresh-process steps:
    `python -m bot.bench_cmd build-indexes DATA_DIR` (build and save a store's indexes),
    `python -m bot.bench_cmd probe-load INDEX_DIR QUERIES.npy` (indexes alone, no model) and
    `python -m bot.bench_cmd probe-asks DATA_DIR QUESTIONS.json` (model, indexes, asks);
    on Qdrant's in-process engine in QDRANT_DIR:
    `python -m bot.bench_cmd sync-qdrant DATA_DIR QDRANT_DIR ROWS` (sync, a bar of ROWS
    unit rows unless 0), `python -m bot.bench_cmd probe-qdrant DATA_DIR QDRANT_DIR
    QUERIES.npy` and `python -m bot.bench_cmd probe-asks-both DATA_DIR QDRANT_DIR
    QUESTIONS.json` (local and Qdrant asks alternated)."""
    arity = {
        "build-indexes": 2,
        "probe-load": 3,
        "probe-asks": 3,
        "sync-qdrant": 4,
        "probe-qdrant": 4,
        "probe-asks-both": 4,
    }
    if not argv or arity.get(argv[0]) != len(argv):
        print(
            "usage: python -m bot.bench_cmd build-indexes DATA_DIR\n"
            "       python -m bot.bench_cmd probe-load INDEX_DIR QUERIES.npy\n"
            "       python -m bot.bench_cmd probe-asks DATA_DIR QUESTIONS.json\n"
            "       python -m bot.bench_cmd sync-qdrant DATA_DIR QDRANT_DIR ROWS\n"
            "       python -m bot.bench_cmd probe-qdrant DATA_DIR QDRANT_DIR QUERIES.npy\n"
            "       python -m bot.bench_cmd probe-asks-both DATA_DIR QDRANT_DIR QUESTIONS.json",
            file=sys.stderr,
        )
        return 2
    if argv[0] in ("sync-qdrant", "probe-qdrant", "probe-asks-both"):
        return _qdrant_main(argv)
    if argv[0] == "build-indexes":
        print(json.dumps(build_indexes(Path(argv[1]))))
        return 0
    if argv[0] == "probe-asks":
        quiet_openmp()  # as `qabot` does, before torch loads
        questions = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
        print(json.dumps(probe_asks(Path(argv[1]), questions)))
        return 0
    import numpy as np

    from bot.scale import probe_load

    print(json.dumps(probe_load(Path(argv[1]), np.load(argv[2]))))
    return 0


def _qdrant_main(argv: list[str]) -> int:
    import numpy as np

    from bot.scale import probe_qdrant, sync_qdrant

    data_dir, qdrant_dir = Path(argv[1]), Path(argv[2])
    if argv[0] == "sync-qdrant":
        rows = int(argv[3])
        # The parent decided (ROWS 0: no bar). The bar stops at the last row; the engine's
        # indexes (HNSW) are built after it, before the sync returns.
        bar = _bar(rows, quiet=False, desc="points") if rows else None
        step = None if bar is None else (lambda: bar(1))
        print(json.dumps(sync_qdrant(data_dir, qdrant_dir, step)))
    elif argv[0] == "probe-qdrant":
        print(json.dumps(probe_qdrant(data_dir, qdrant_dir, np.load(argv[3]))))
    else:
        quiet_openmp()
        questions = json.loads(Path(argv[3]).read_text(encoding="utf-8"))
        print(json.dumps(probe_asks_both(data_dir, qdrant_dir, questions)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
