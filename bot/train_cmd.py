"""`qabot train checker`: train the answer checker (retriever/checker.py) on the even split.

Its `COMMANDS` join the `qabot` table (bot/cli.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bot.commands import Command, arg
from bot.errors import BotError
from bot.eval_cmd import DEFAULT_REQA, _progress, open_reqa_store
from bot.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_SQUAD2 = Path("../shared/data/squad-v2.0-dev-even/dev-v2.0-even.json")


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train a model of qabot's own: `qabot train checker`."""
    print("Use `qabot train checker`.", file=sys.stderr)
    return 2


def cmd_checker(args: argparse.Namespace, settings: Settings) -> int:
    """Train the answer checker on the ReQA and SQuAD 2.0 even split (the odd split stays held out).

    Builds (once) or reuses the ReQA store as `qabot eval reqa` does, ranks every even
    question with the checker off, recording what the checker reads (the question's word
    pieces, the best candidates' stored token vectors, the ranking's signals), and trains
    it listwise: the gold sentence among the candidates for ReQA's questions, "none" for
    SQuAD 2.0's unanswerable ones. Every fourth even article is kept out; the checker's
    weight in the ranking and in the confidence, and the abstention levels' lines, are
    chosen on them. Writes checker.safetensors and checker.json (the data's hash, the
    settings, the figures reached) to --out (default: retriever/data/, where qabot loads
    it from). Seeded: a retrain on the same data reproduces the figures. Uses torch on
    --threads cores.
    """
    from retriever import checker_training as ct
    from retriever.checker import Combination
    from retriever.evaluate import load_reqa, reqa_hash

    if settings.model != "all-MiniLM-L6-v2":
        raise BotError(
            f"the checker is trained from the bundled all-MiniLM-L6-v2, not {settings.model!r}; "
            "unset QABOT_MODEL"
        )
    if not args.reqa.is_dir():
        raise BotError(f"no ReQA folder at {args.reqa.resolve()}; pass --reqa DIR")
    if args.epochs < 1:
        raise BotError(f"--epochs {args.epochs} is not a number of passes; give 1 or more")
    if args.offtopic_every < 0:
        raise BotError(f"--offtopic-every {args.offtopic_every} is negative; give 0 (none) or N")
    config = ct.TrainConfig(epochs=args.epochs, seed=args.seed, offtopic_every=args.offtopic_every)
    unanswerable = ct.load_unanswerable(args.squad2)
    reqa = load_reqa(args.reqa)
    data_dir = args.data_dir or (
        settings.data_dir / "eval" / f"reqa-{reqa_hash(args.reqa, settings.model)}"
    )
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    started = time.perf_counter()
    # The ranking the checker learns to correct is the one without it.
    app, spans, _ = open_reqa_store(
        settings.model_copy(update={"checker": False}), reqa, data_dir, say
    )
    try:
        every = args.every
        total = len(reqa.split("even")[::every]) + len(unanswerable[::every])
        bar = _progress(total, "ranking the even questions", "question")
        t0 = time.perf_counter()
        data = ct.gather(
            app.retriever, reqa, spans, unanswerable, config, progress=bar.update, every=every
        )
        rank_seconds = time.perf_counter() - t0
        bar.close()
    finally:
        app.close()
    say(f"data {data.digest[:12]}: {json.dumps(data.counts)}")
    bar = _progress(len(ct.trainable(data.train, config)) * config.epochs, "training", "question")
    trained, timing = ct.train(data, config, threads=args.threads, progress=bar.update)
    bar.close()
    out: Path = args.out or _default_out()
    levels = ct.LEVEL_ORDER
    from retriever.models import ABSTAIN_LEVELS

    same = tuple(ABSTAIN_LEVELS[n] for n in levels)
    dim = int(data.table.projection.shape[0])
    # Written once with a neutral combination, so that the numpy runtime reads the held-out
    # questions exactly as qabot will; then with the one chosen on them.
    ct.save(out, trained, config, Combination(1, 0.0, 0.0, same, same), {}, dim)
    ms_per_question = ct.score_held(data.held, out, data.table)
    chosen, trials = ct.choose_combination(data.held)
    record: dict[str, Any] = {
        "data_sha256": data.digest,
        "data": data.counts,
        "held_out_without": ct.held_metrics(data.held, None, ABSTAIN_LEVELS),
        "held_out_with": ct.held_metrics(data.held, chosen, ABSTAIN_LEVELS),
        "cost": {
            **timing,
            "rank_seconds": round(rank_seconds, 1),
            "threads": args.threads,
            "numpy_ms_per_question": round(ms_per_question, 2),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
        "trials": trials,
    }
    ct.write_config(out, config, chosen, record, dim)
    print(f"checker written to {out} (data {data.digest[:12]})")
    print(f"held-out even articles without the checker: {json.dumps(record['held_out_without'])}")
    print(f"held-out even articles with the checker:    {json.dumps(record['held_out_with'])}")
    print(
        f"depth {chosen.depth}, rank weight {chosen.rank_weight}, confidence weight "
        f"{chosen.confidence_weight}; {json.dumps(record['cost'])}"
    )
    return 0


def _default_out() -> Path:
    from retriever.checker import CHECKER_DIR

    return CHECKER_DIR


COMMANDS = [
    Command(
        "train",
        cmd_train,
        subcommands=[
            Command(
                "checker",
                cmd_checker,
                [
                    arg(
                        "--reqa",
                        type=Path,
                        default=DEFAULT_REQA,
                        metavar="DIR",
                        help=f"the ReQA folder (default {DEFAULT_REQA})",
                    ),
                    arg(
                        "--squad2",
                        type=Path,
                        default=DEFAULT_SQUAD2,
                        metavar="FILE",
                        help=f"SQuAD 2.0 even-split file (default {DEFAULT_SQUAD2})",
                    ),
                    arg(
                        "--out",
                        type=Path,
                        default=None,
                        metavar="DIR",
                        help="where to write the weights (default: retriever/data/)",
                    ),
                    arg(
                        "--epochs",
                        type=int,
                        default=4,
                        help="passes over the questions (default 4)",
                    ),
                    arg(
                        "--every",
                        type=int,
                        default=1,
                        metavar="N",
                        help="use every Nth question only (quick checks; default 1: all)",
                    ),
                    arg(
                        "--offtopic-every",
                        type=int,
                        default=0,
                        metavar="N",
                        help="also ask every Nth answerable question without its article, "
                        'answer "none" (default 0: not)',
                    ),
                    arg("--seed", type=int, default=0, help="random seed (default 0)"),
                    arg(
                        "--threads",
                        type=int,
                        default=2,
                        choices=[1, 2],
                        help="torch threads (default 2)",
                    ),
                ],
            )
        ],
        title="models",
        metavar="MODEL",
    )
]
