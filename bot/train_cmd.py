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
    question with the checker off, and fine-tunes the first layers of the bundled MiniLM
    as a cross-encoder on (question, sentence) pairs: gold sentences against the retriever's
    other top sentences (same article first) and the top sentences of SQuAD 2.0's
    unanswerable questions. Every fourth even article is kept out; the checker's weight in
    the ranking and in the confidence, and the abstention levels' lines, are chosen on them.
    Writes checker.safetensors and checker.json (the data's hash, the settings, the figures
    reached) to --out (default: retriever/data/, where qabot loads it from). Seeded: a
    retrain on the same data reproduces the figures. Uses torch on --threads cores.
    """
    from retriever import checker_training as ct
    from retriever.checker import Combination
    from retriever.evaluate import load_reqa, reqa_hash
    from store.embedding import bundled_model_path

    if settings.model != "all-MiniLM-L6-v2":
        raise BotError(
            f"the checker is trained from the bundled all-MiniLM-L6-v2, not {settings.model!r}; "
            "unset QABOT_MODEL"
        )
    if not args.reqa.is_dir():
        raise BotError(f"no ReQA folder at {args.reqa.resolve()}; pass --reqa DIR")
    config = ct.TrainConfig(
        layers=args.layers, epochs=args.epochs, seed=args.seed, negatives=args.negatives
    )
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
        data = ct.gather(
            app.retriever, reqa, spans, unanswerable, config, progress=bar.update, every=every
        )
        bar.close()
    finally:
        app.close()
    say(f"data {data.digest[:12]}: {json.dumps(data.counts)}")
    model_dir = bundled_model_path()
    bar = _progress(len(data.train) * config.epochs, "training", "pair")
    trained, timing = ct.train(data, model_dir, config, threads=args.threads, progress=bar.update)
    bar.close()
    out: Path = args.out or _default_out()
    levels = ct.LEVEL_ORDER
    from retriever.models import ABSTAIN_LEVELS

    same = tuple(ABSTAIN_LEVELS[n] for n in levels)
    # Written once with a neutral combination, so that the numpy runtime reads the held-out
    # sentences exactly as qabot will; then with the one chosen on them.
    ct.save(out, trained, config, Combination(1, 0.0, 0.0, same, same), {})
    t0 = time.perf_counter()
    ct.score_held(data.held, out, model_dir, max(ct.DEPTHS))
    score_seconds = time.perf_counter() - t0
    pairs = sum(min(len(h.sentences), max(ct.DEPTHS)) for h in data.held)
    chosen, trials = ct.choose_combination(data.held)
    record: dict[str, Any] = {
        "data_sha256": data.digest,
        "data": data.counts,
        "held_out_without": ct.held_metrics(data.held, None, ABSTAIN_LEVELS),
        "held_out_with": ct.held_metrics(data.held, chosen, ABSTAIN_LEVELS),
        "cost": {
            **timing,
            "threads": args.threads,
            "numpy_ms_per_pair": round(1000 * score_seconds / max(1, pairs), 2),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
        "trials": trials,
    }
    ct.write_config(out, trained, config, chosen, record)
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
                        "--layers",
                        type=int,
                        default=1,
                        choices=[1, 2, 3],
                        help="MiniLM layers in the cross-encoder (default 1)",
                    ),
                    arg("--epochs", type=int, default=1, help="passes over the pairs (default 1)"),
                    arg(
                        "--negatives",
                        type=int,
                        default=3,
                        help="hard negatives per answerable question (default 3)",
                    ),
                    arg(
                        "--every",
                        type=int,
                        default=1,
                        metavar="N",
                        help="use every Nth question only (quick checks; default 1: all)",
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
