"""`qabot eval`: the ReQA benchmark (`reqa`) and a user's own question cases (`cases`).

Its `COMMANDS` join the `qabot` table (bot/cli.py); runnable alone as
`python -m bot.eval_cmd ...` with the same arguments as `qabot ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.commands import Command, arg, run
from bot.errors import BotError
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_REQA = Path("../shared/data/reqa-squad-dev")
MODES = ("hybrid", "dense", "bm25")


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Measure the retriever: the ReQA benchmark, or your own question cases.

    `qabot eval reqa [DIR]` scores sentence retrieval (MRR, R@k, abstention, latency);
    `qabot eval cases FILE.jsonl` checks questions you wrote against the current store.
    """
    print("Use `qabot eval reqa [DIR]` or `qabot eval cases FILE.jsonl`.", file=sys.stderr)
    return 2


def cmd_reqa(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ReQA sentence-retrieval benchmark (SQuAD dev: 48 articles, 10,570 questions).

    Ingests the articles through the normal path into a store kept between runs, asks the
    questions, and prints MRR, R@1/5/10, how often it abstained, and per-question latency
    p50/p95. The store is the one `--data-dir DIR` names (a normal qabot data folder, so
    `qabot --data-dir DIR ask` works on it; it must hold nothing but the benchmark), or
    else <data dir>/eval/reqa-<hash of the files and the model>/.
    """
    from bot.app import reranker
    from retriever.checker import checker_shipped
    from retriever.evaluate import run_reqa

    data = read_reqa(args.folder)
    questions = data.split(args.split)
    if args.limit is not None:
        questions = questions[: args.limit]
    quiet = args.json
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr))
    app, spans, mapping = open_reqa_store(settings, data, reqa_data_dir(args, settings), say)
    try:
        # Questions go through the same embedder as in `qabot ask` and the bot.
        retriever = app.retriever
        retriever.keep_resident()
        retriever.wait_resident()  # timed questions don't share the disk with the read
        runs = [
            (mode, mode, retriever.reranker) for mode in (MODES if args.compare else [args.mode])
        ]
        if args.compare and checker_shipped():
            # The answer checker's effect in the same run: hybrid with it and without it.
            runs[:1] = [
                ("hybrid+checker", "hybrid", reranker(retriever.weights, checker=True)),
                ("hybrid", "hybrid", reranker(retriever.weights, checker=False)),
            ]
        results: dict[str, dict[str, float | int]] = {}
        for label, mode, chosen in runs:
            retriever.reranker = chosen
            bar = _progress(len(questions), f"asking ({label})", "question")
            results[label] = run_reqa(
                retriever,
                questions,
                spans,
                mode=mode,
                latency_sample=args.latency_sample,
                progress=bar.update,
            )
            bar.close()
    finally:
        app.close()
    if args.json:
        print(json.dumps(results if args.compare else results[args.mode]))
    else:
        print(
            f"ReQA {args.folder} — split {args.split}, {len(questions)} questions, "
            f"{mapping.sentences} sentences in the pool"
        )
        print(_table(results))
    return 0


def cmd_followups(args: argparse.Namespace, settings: Settings) -> int:
    """Measure follow-up questions, made by rule from the ReQA questions.

    A question whose subject is a name becomes a follow-up with a pronoun in its place and
    an earlier question of the same article naming it as the conversation (asked first, its
    answers fed back). Prints hit@1 and declines for the follow-ups, for the same questions
    with the name spelled out (upper bound) and bare without history (lower bound); for
    questions asked alone and after an unrelated conversation; and the latency of a
    follow-up against the same question alone. `--write FILE` saves the set as cases.
    """
    from retriever.followups import make_followups, run_followups

    data = read_reqa(args.folder)
    followups = make_followups(data, data.split(args.split))
    if args.limit is not None:
        followups = followups[: args.limit]
    if args.write is not None:
        with args.write.open("w", encoding="utf-8") as f:
            for fu in followups:
                f.write(json.dumps(fu.as_case(), ensure_ascii=False) + "\n")
    say = (lambda *a: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    app, spans, _ = open_reqa_store(settings, data, reqa_data_dir(args, settings), say)
    try:
        bar = _progress(len(followups), "asking", "conversation")
        result = run_followups(
            app.retriever,
            data,
            followups,
            spans,
            standalone=args.standalone,
            latency_sample=args.latency_sample,
            progress=bar.update,
        )
        bar.close()
    finally:
        app.close()
    result["split"] = args.split
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{result['followups']} follow-ups (split {args.split}), read as follow-ups: "
        f"{_pct(result['folded'])}"
    )
    for kind, label in (
        ("followup", "follow-up after its history"),
        ("named", "subject spelled out (upper bound)"),
        ("bare", "bare, no history (lower bound)"),
    ):
        r = result[kind]
        print(f"  {label:<36} hit@1 {r['hit1']:.3f}  declined {_pct(r['declined'])}")
    st = result["standalone"]
    print(
        f"{st['questions']} standalone questions: hit@1 alone {st['hit1_alone']:.3f}, after an "
        f"unrelated conversation {st['hit1_after_unrelated']:.3f} "
        f"(read as follow-ups: {_pct(st['read_as_followup'])})"
    )
    lat = result["latency_ms"]
    print(
        f"latency: follow-up p50 {lat['followup_p50']:.1f} ms / p95 {lat['followup_p95']:.1f}, "
        f"alone p50 {lat['alone_p50']:.1f} / p95 {lat['alone_p95']:.1f} "
        f"(p50 ratio {lat['ratio_p50']})"
    )
    return 0


def read_reqa(folder: Path) -> Any:
    """The ReQA benchmark in `folder`, or a one-line error saying what to pass."""
    from retriever.evaluate import load_reqa

    if not folder.is_dir():
        raise BotError(
            f"no ReQA folder at {folder.resolve()}; pass the folder holding sentences.jsonl "
            "and questions.jsonl (e.g. ../shared/data/reqa-squad-dev)"
        )
    return load_reqa(folder)


def reqa_data_dir(args: argparse.Namespace, settings: Settings) -> Path:
    """Where the benchmark's store lives: `--data-dir`, or one per benchmark and model."""
    from retriever.evaluate import reqa_hash

    return Path(
        args.data_dir
        or (settings.data_dir / "eval" / f"reqa-{reqa_hash(args.folder, settings.model)}")
    )


def open_reqa_store(
    settings: Settings, data: Any, data_dir: Path, say: Any
) -> tuple[Any, Any, Any]:
    """The App on the benchmark's store in `data_dir`, every article ingested (once), and
    each stored sentence's spans in the benchmark (also `qabot train checker`'s data)."""
    from bot.app import App
    from retriever.evaluate import map_store

    say(f"loading model {settings.model} ...")
    app = App.for_data_dir(settings, data_dir)
    log.info("model %s loaded (%d dimensions)", settings.model, app.embedder.dim)  # now
    store = app.store
    try:
        _refuse_other_articles(store, data_dir, {a.raw().key for a in data.articles})
        bar = _progress(len(data.articles), "ingesting", "article")
        report = app.ingestor.ingest((a.raw() for a in data.articles), progress=bar.update)
        bar.close()
        if report.skipped:
            raise BotError(f"could not ingest {report.skipped[0][0]}: {report.skipped[0][1]}")
        say(
            f"store {data_dir}: {len(report.added) + len(report.updated)} articles ingested, "
            f"{len(report.unchanged)} unchanged"
        )
        spans, mapping = map_store(store, data)
        log.info("mapping: %s", mapping)
        say(
            f"{mapping.sentences} sentences mapped to the benchmark's paragraphs "
            f"({mapping.exact}/{mapping.articles} articles kept verbatim, "
            f"{mapping.dropped_sentences} repeated sentences dropped by cleaning)"
        )
    except BaseException:
        app.close()
        raise
    return app, spans, mapping


def _refuse_other_articles(store: Any, data_dir: Path, keys: set[str]) -> None:
    """The benchmark asks its questions of every stored article: one of yours in the same
    store would change its figures, and its ingest would add 48 articles to your store."""
    others = [a for a in store.articles() if a.key not in keys]
    if others:
        raise BotError(
            f"{data_dir} holds {len(others)} articles that are not the benchmark's "
            f"(e.g. {others[0].title!r}); give `--data-dir` an empty or benchmark-only "
            "folder, or leave it out to use <data dir>/eval/"
        )


def cmd_cases(args: argparse.Namespace, settings: Settings) -> int:
    """Check your own questions against the current store.

    FILE.jsonl holds one case a line: {"question": ..., "expect": ["substring", ...]} (the
    first sentence must contain one of them) or {"question": ..., "answerable": false}; a
    "history" (the earlier questions, asked first in order) makes it a follow-up.
    Prints hit@1, hit@3, MRR, and how often it abstained where it should and should not have.
    """
    from bot.app import App
    from retriever.evaluate import load_cases, run_cases

    if not settings.has_store():
        raise BotError(
            f"no articles stored in {settings.data_dir}; add some with `qabot ingest FILES`"
        )
    cases = load_cases(args.file)
    app = App(settings)
    bar = _progress(len(cases), "asking", "case") if len(cases) > 20 else None
    result = run_cases(
        app.retriever,
        cases,
        mode=args.mode,
        collections=args.collection,
        progress=bar.update if bar else None,
    )
    if bar:
        bar.close()
    app.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    if result["answerable"]:
        print(
            f"{result['answerable']} answerable cases: hit@1 {result['hit1']:.3f}  "
            f"hit@3 {result['hit3']:.3f}  MRR {result['mrr']:.3f}  "
            f"abstained on {_pct(result['abstained_answerable'])} of them (should be 0%)"
        )
    if result["unanswerable"]:
        print(
            f"{result['unanswerable']} unanswerable cases: abstained on "
            f"{_pct(result['abstained_unanswerable'])} (should be 100%)"
        )
    follow = result.get("followups")
    if follow and follow["answerable"]:
        print(
            f"  of them {follow['answerable']} follow-ups (with a history): hit@1 "
            f"{follow['hit1']:.3f}  hit@3 {follow['hit3']:.3f}  MRR {follow['mrr']:.3f}  "
            f"abstained on {_pct(follow['abstained_answerable'])}"
        )
    for f in result["failures"]:
        if not f["answerable"]:
            where = "answered, should have abstained"
        elif f["abstained"]:
            where = "abstained"
        else:
            where = f"right answer at rank {f['rank'] or '>10'}"
        after = f" (after {' / '.join(f['history'])})" if f["history"] else ""
        print(f"  miss ({where}): {f['question']}{after}\n      got: {f['got']}")
        if f["understood"]:
            print(f"      read as: {f['understood']}")
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(results: dict[str, dict[str, float | int]]) -> str:
    cols = [
        ("MRR", "mrr", "{:.3f}"),
        ("R@1", "r1", "{:.3f}"),
        ("R@5", "r5", "{:.3f}"),
        ("R@10", "r10", "{:.3f}"),
        ("abstain", "abstained", "{:.1%}"),
        ("p50 ms", "p50_ms", "{:.1f}"),
        ("p95 ms", "p95_ms", "{:.1f}"),
    ]
    width = max(9, *(len(m) + 1 for m in results))
    lines = ["mode".ljust(width) + "".join(f"{c[0]:>9}" for c in cols)]
    for mode, r in results.items():
        lines.append(f"{mode:<{width}}" + "".join(f"{c[2].format(r[c[1]]):>9}" for c in cols))
    return "\n".join(lines)


def _progress(total: int, desc: str, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


COMMANDS = [
    Command(
        "eval",
        cmd_eval,
        subcommands=[
            Command(
                "reqa",
                cmd_reqa,
                [
                    arg(
                        "folder",
                        nargs="?",
                        type=Path,
                        default=DEFAULT_REQA,
                        metavar="DIR",
                        help="ReQA folder with sentences.jsonl and questions.jsonl "
                        f"(default {DEFAULT_REQA})",
                    ),
                    arg(
                        "--mode", choices=MODES, default="hybrid", help="retriever (default hybrid)"
                    ),
                    arg(
                        "--compare",
                        action="store_true",
                        help="run hybrid (with and without the answer checker), dense and bm25 "
                        "on the same index and print a table",
                    ),
                    arg(
                        "--split",
                        choices=["even", "odd", "all"],
                        default="all",
                        help="ask the questions of the even- or odd-positioned articles only "
                        "(the index always holds every article; default all)",
                    ),
                    arg(
                        "--latency-sample",
                        type=int,
                        default=300,
                        metavar="N",
                        help="single `ask` calls timed for p50/p95 (default 300)",
                    ),
                    arg(
                        "--limit",
                        type=int,
                        default=None,
                        metavar="N",
                        help="ask only the first N questions of the split (quick checks)",
                    ),
                    arg("--json", action="store_true", help="print the results as JSON"),
                ],
            ),
            Command(
                "followups",
                cmd_followups,
                [
                    arg(
                        "folder",
                        nargs="?",
                        type=Path,
                        default=DEFAULT_REQA,
                        metavar="DIR",
                        help=f"ReQA folder (default {DEFAULT_REQA})",
                    ),
                    arg(
                        "--split",
                        choices=["even", "odd", "all"],
                        default="odd",
                        help="make follow-ups of the even- or odd-positioned articles' "
                        "questions (tune on even; default odd)",
                    ),
                    arg(
                        "--standalone",
                        type=int,
                        default=500,
                        metavar="N",
                        help="questions asked alone and after an unrelated conversation "
                        "(default 500)",
                    ),
                    arg(
                        "--latency-sample",
                        type=int,
                        default=200,
                        metavar="N",
                        help="follow-ups timed with their history and alone (default 200)",
                    ),
                    arg("--limit", type=int, default=None, metavar="N", help="first N only"),
                    arg(
                        "--write",
                        type=Path,
                        default=None,
                        metavar="FILE.jsonl",
                        help="also save the follow-ups as cases for `qabot eval cases`",
                    ),
                    arg("--json", action="store_true", help="print the results as JSON"),
                ],
            ),
            Command(
                "cases",
                cmd_cases,
                [
                    arg(
                        "file",
                        type=Path,
                        metavar="FILE.jsonl",
                        help="the cases, one JSON per line",
                    ),
                    arg(
                        "--mode", choices=MODES, default="hybrid", help="retriever (default hybrid)"
                    ),
                    arg(
                        "--collection",
                        action="append",
                        help="ask only this collection (repeatable; default: all)",
                    ),
                    arg("--json", action="store_true", help="print the results as JSON"),
                ],
            ),
        ],
        title="benchmarks",
        metavar="BENCHMARK",
    )
]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.eval_cmd reqa ...` is `qabot eval reqa ...`."""
    args = list(sys.argv[1:] if argv is None else argv)
    at = next((i for i, a in enumerate(args) if a in ("reqa", "cases", "followups")), None)
    if at is not None and "eval" not in args[:at]:
        args.insert(at, "eval")
    return run(args, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
