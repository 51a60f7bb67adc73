"""Training the answer checker (retriever/checker.py) on the even split: the only module that
imports torch for it, and only inside the functions that train.

The data: every even question is ranked once with the checker off, and what the checker
reads is recorded as the question path computes it (the question's word pieces, its best
`candidates` sentences' token vectors and the ranking's signals). ReQA's even questions
train the checker to pick their gold sentence among those candidates; SQuAD 2.0's
unanswerable questions on the even articles train its "none" option. A few even articles
are kept out of training; the checker's combination with the ranking and the abstention
line are chosen on them.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retriever.checker import (
    CONFIG_FILE,
    SCALARS,
    WEIGHTS_FILE,
    AnswerChecker,
    Combination,
    answered,
    combine,
    derive_scalars,
    question_features,
    ranking_signals,
    sentence_tokens,
)
from retriever.errors import EvalDataError
from retriever.evaluate import MRR_DEPTH, ReqaData, Span, first_hit, is_correct
from retriever.models import ABSTAIN_LEVELS
from retriever.query import Query
from retriever.rerank import Reranker
from retriever.retriever import Retriever
from retriever.scoring import Scored
from retriever.snapshot import Snapshot
from store.indexes.tokens import TokenTable

# Share of the held-out even split's ReQA questions each level declines without the
# checker (measured on them by `qabot train checker`): with the checker, each level's line
# is put where it declines the same share, so a level keeps its meaning.
LEVEL_ORDER = ("lenient", "balanced", "strict")
# How many of the best candidates the checker may reorder (the held-out choice picks one).
DEPTHS = (2, 3, 5, 10)
RANK_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)
CONFIDENCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Reordering is kept only when it gains at least this much MRR on the held-out articles.
REORDER_GAIN = 0.002


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (recorded beside them)."""

    candidates: int = 10  # sentences read per question, best first by the ranking
    # Off-topic questions: every so many answerable questions (0: none) is asked again as
    # if its article were not in the store (its best `candidates` of the other articles,
    # among the best `wide`), and the answer is "none". Off in the shipped weights (their
    # training could not be finished this session; see the README).
    wide: int = 40
    offtopic_every: int = 0
    max_pieces: int = 64  # of each sentence
    hidden: int = 64
    rank: int = 64  # of the low-rank products of aligned pieces
    epochs: int = 4
    batch: int = 32  # questions
    lr: float = 2e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    # Even articles kept out of training, by their position in ReQA's sentences.jsonl:
    # every fourth even article, starting at the second (2, 10, 18, 26, 34, 42).
    held_out_every: int = 4


@dataclass
class Group:
    """One question as the checker reads it, with what it should say."""

    text: str
    answerable: bool
    held: bool
    question: np.ndarray  # (m, k) its pieces in the store's token space
    features: np.ndarray  # (m, 2)
    vector: np.ndarray  # (dim,)
    positions: np.ndarray  # (K,) the candidates read, best first
    scalars: np.ndarray  # (K, SCALARS)
    correct: np.ndarray  # bool, per ranked sentence (MRR_DEPTH deep; the first K are read)
    scores: np.ndarray  # the ranking's scores and confidences, best first (held out only)
    confidence: np.ndarray
    logits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    offtopic: bool = False  # an answerable question read without its article


def held_out(position: int, every: int) -> bool:
    """Whether the even article at `position` is kept out of training."""
    return position % 2 == 0 and (position // 2) % every == 1


# -- data -------------------------------------------------------------------------------


class _Recorder:
    """A `Reranker` that runs the one before it and keeps what the checker would read."""

    def __init__(self, before: Reranker, wide: int) -> None:
        self.before = before
        self.wide = wide
        self.records: list[dict[str, Any] | None] = []

    def rerank(self, snapshot: Snapshot, query: Query, scored: Scored) -> bool:
        had = self.before.rerank(snapshot, query, scored)
        if not had or query.tokens is None or query.vector is None:
            self.records.append(None)
            return had
        top = np.argsort(-scored.score, kind="stable")[: self.wide]
        self.records.append(
            {
                "question": query.tokens.vectors.astype(np.float32),
                "features": question_features(query.tokens),
                "vector": query.vector.astype(np.float32),
                "positions": scored.candidates.positions[top].astype(np.int64),
                "signals": ranking_signals(query, scored, top),
            }
        )
        return had


@dataclass
class CheckerData:
    groups: list[Group]
    table: TokenTable  # the store's token vectors, in memory
    digest: str  # sha256 of every question, its label and what was read, in order
    counts: dict[str, int]

    @property
    def train(self) -> list[Group]:
        return [g for g in self.groups if not g.held]

    @property
    def held(self) -> list[Group]:
        return [g for g in self.groups if g.held]


def load_unanswerable(path: Path) -> list[tuple[str, str]]:
    """(article title, question) of every unanswerable question in a SQuAD 2.0 file."""
    if not path.exists():
        raise EvalDataError(
            f"{path} not found; pass the SQuAD 2.0 even-split file "
            "(../shared/data/squad-v2.0-dev-even/dev-v2.0-even.json)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        return [
            (a["title"], qa["question"])
            for a in data
            for p in a["paragraphs"]
            for qa in p["qas"]
            if qa.get("is_impossible")
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalDataError(f"{path} is not a SQuAD 2.0 file ({exc!r})") from exc


def gather(
    retriever: Retriever,
    reqa: ReqaData,
    spans: dict[int, list[Span]],
    unanswerable: list[tuple[str, str]],
    config: TrainConfig,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
    every: int = 1,
) -> CheckerData:
    """What the checker reads for every even question (odd questions are refused), ranked
    as the question path ranks them; `every` > 1 takes every so many questions only."""
    position = {a.doc_id: i for i, a in enumerate(reqa.articles)}
    questions = reqa.split("even")[::every]
    unanswerable = unanswerable[::every]
    for title, _ in unanswerable:
        if title not in position:
            raise EvalDataError(f"SQuAD 2.0 article {title!r} is not one of ReQA's")
        if position[title] % 2:
            raise EvalDataError(f"{title!r} is an odd article: odd questions are held out")
    rowids = retriever.indexes().sentences.rowids
    article_of = retriever.indexes().sentences.article
    pos_of_row = {int(r): i for i, r in enumerate(rowids)}
    doc_articles: dict[str, set[int]] = {}
    for row, found in spans.items():
        if int(row) in pos_of_row:
            for sp in found:
                doc_articles.setdefault(sp.doc_id, set()).add(int(article_of[pos_of_row[int(row)]]))
    table = retriever.indexes().sentences.tokens
    if table is None:
        raise EvalDataError("the ReQA store keeps no token vectors; rebuild it (qabot rebuild)")
    before = retriever.reranker
    recorder = _Recorder(before, max(config.wide, config.candidates))
    retriever.reranker = recorder
    asked: list[tuple[str, bool, int, Any]] = [
        (q.text, True, q.doc_position, q) for q in questions
    ] + [(text, False, position[title], None) for title, text in unanswerable]
    groups: list[Group] = []
    digest = hashlib.sha256()
    k = config.candidates

    def add(g: Group) -> None:
        flags = "".join("1" if c else "0" for c in g.correct[:k])
        kind = "\x1foff" if g.offtopic else ""  # (weights trained without any hash alike)
        digest.update(
            f"{g.held}\x1f{g.answerable}{kind}\x1f{g.text}\x1f{flags}\x1f"
            f"{','.join(str(int(p)) for p in g.positions)}\x1e".encode()
        )
        groups.append(g)

    try:
        for lo in range(0, len(asked), batch):
            chunk = asked[lo : lo + batch]
            recorder.records = []
            ranked = retriever.rank([c[0] for c in chunk], depth=MRR_DEPTH)
            for at, ((text, is_answerable, doc, q), r, rec) in enumerate(
                zip(chunk, ranked, recorder.records, strict=True), start=lo
            ):
                if rec is None:
                    continue
                correct = (
                    np.array([is_correct(spans.get(int(i), ()), q) for i in rowids[r.positions]])
                    if is_answerable
                    else np.zeros(len(r.positions), dtype=bool)
                )
                assert r.confidence is not None
                held = held_out(doc, config.held_out_every)
                positions, signals = rec["positions"], rec["signals"]
                add(
                    Group(
                        text,
                        is_answerable,
                        held,
                        rec["question"],
                        rec["features"],
                        rec["vector"],
                        positions[:k],
                        derive_scalars(signals[:k]),
                        correct.astype(bool),
                        r.scores.astype(np.float32),
                        r.confidence.astype(np.float32),
                    )
                )
                if not is_answerable or not config.offtopic_every or at % config.offtopic_every:
                    continue
                own = doc_articles.get(q.doc_id, set())
                other = [j for j, p in enumerate(positions) if int(article_of[p]) not in own][:k]
                if len(other) < k // 2:
                    continue
                add(
                    Group(
                        text,
                        False,
                        held,
                        rec["question"],
                        rec["features"],
                        rec["vector"],
                        positions[other],
                        derive_scalars(signals[other]),
                        np.zeros(len(other), dtype=bool),
                        signals[other, 0].copy(),
                        signals[other, 1].copy(),
                        offtopic=True,
                    )
                )
            if progress:
                progress(len(chunk))
    finally:
        retriever.reranker = before
    table = TokenTable(
        np.array(table.tokens),
        np.array(table.offsets),
        np.array(table.projection),
        np.array(table.idf),
        np.array(table.inverse_norms),
    )
    train = [g for g in groups if not g.held]
    counts = {
        "train_answerable": sum(1 for g in train if g.answerable),
        "train_answerable_gold_read": sum(
            1 for g in train if g.answerable and g.correct[: config.candidates].any()
        ),
        "train_unanswerable": sum(1 for g in train if not g.answerable and not g.offtopic),
        "train_offtopic": sum(1 for g in train if g.offtopic),
        "held_answerable": sum(1 for g in groups if g.held and g.answerable),
        "held_unanswerable": sum(
            1 for g in groups if g.held and not g.answerable and not g.offtopic
        ),
        "held_offtopic": sum(1 for g in groups if g.held and g.offtopic),
    }
    return CheckerData(groups, table, digest.hexdigest(), counts)


# -- the model (torch) --------------------------------------------------------------------


def _build_model(config: TrainConfig, dim: int) -> Any:
    """The checker in torch, its tensors named as retriever/checker.py reads them. It takes
    the store's stored-space vectors and the store's projection, and composes the weights
    that read 384-d vectors with it, as the numpy side does."""
    import torch
    from torch import nn

    h, r = config.hidden, config.rank

    def lin(i: int, o: int, bias: bool = True) -> Any:
        return nn.Linear(i, o, bias=bias)

    class Checker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tq = nn.Parameter(torch.tensor([10.0]))
            self.ts = nn.Parameter(torch.tensor([10.0]))
            self.q, self.a, self.u = lin(dim, h), lin(dim, h, False), lin(dim, r, False)
            self.p, self.c, self.f = lin(r, h, False), lin(1, h, False), lin(2, h, False)
            self.gq, self.pq = lin(h, h), lin(h, 1)
            self.s, self.b = lin(dim, h), lin(dim, h, False)
            self.sp, self.sc = lin(r, h, False), lin(1, h, False)
            self.gs = lin(h, h)
            self.qt = lin(dim, h)
            self.o1, self.o2 = lin(3 * h + SCALARS, h), lin(h, 1)
            self.none = lin(h + 1, 1)
            self.drop = nn.Dropout(config.dropout)

        def forward(
            self,
            proj: Any,
            q: Any,
            qm: Any,
            qf: Any,
            qv: Any,
            s: Any,
            sm: Any,
            sc: Any,
            cm: Any,
        ) -> Any:
            f = nn.functional
            gelu = lambda x: f.gelu(x, approximate="tanh")  # noqa: E731
            bsz, k, _, _ = s.shape
            wq, wa, wu = self.q.weight @ proj, self.a.weight @ proj, self.u.weight @ proj
            ws, wb = self.s.weight @ proj, self.b.weight @ proj
            cos = torch.einsum("bid,bknd->bkin", q, s)  # (B, K, m, n)
            cs = cos + (sm[:, :, None, :] - 1.0) * 1e4
            best_s = cs.max(-1).values
            aligned = torch.softmax(cs * self.tq, -1) @ s  # (B, K, m, k)
            qu = f.linear(q, wu)[:, None]
            au = f.linear(aligned, wu)
            hq = (
                f.linear(q, wq, self.q.bias)[:, None]
                + f.linear(aligned, wa)
                + self.p(qu * au)
                + self.c(best_s[..., None])
                + self.f(qf)[:, None]
            )
            gq = self.gq(gelu(hq))  # (B, K, m, h)
            pool = self.pq(gq)[..., 0] + (qm[:, None, :] - 1.0) * 1e4
            vq = (torch.softmax(pool, -1)[..., None] * gq).sum(2)
            cq = cos + (qm[:, None, :, None] - 1.0) * 1e4
            best_q = cq.max(2).values  # (B, K, n)
            found = torch.einsum("bkmn,bmd->bknd", torch.softmax(cq * self.ts, 2), q)
            su, fu = f.linear(s, wu), f.linear(found, wu)
            hs = (
                f.linear(s, ws, self.s.bias)
                + f.linear(found, wb)
                + self.sp(su * fu)
                + self.sc(best_q[..., None])
            )
            gs = self.gs(gelu(hs)) + (sm[..., None] - 1.0) * 1e4
            vs = gs.max(2).values
            qt = torch.tanh(self.qt(qv))
            x = torch.cat([vq, vs, qt[:, None].expand(bsz, k, -1), sc], -1)
            z = self.o2(self.drop(gelu(self.o1(x))))[..., 0] + (cm - 1.0) * 1e4
            none = self.none(torch.cat([qt, sc[:, 0, 1:2]], -1))
            return torch.cat([none, z], 1)

        def export(self) -> dict[str, Any]:
            return {
                k: v.detach().float().contiguous().clone() for k, v in self.state_dict().items()
            }

    return Checker()


def _batch(groups: Sequence[Group], table: TokenTable, config: TrainConfig) -> list[Any]:
    """Padded torch tensors for these questions, and their targets over [none, candidates]."""
    import torch

    k = config.candidates
    m = max(len(g.question) for g in groups)
    dim_k = table.tokens.shape[1]
    q = np.zeros((len(groups), m, dim_k), np.float32)
    qm = np.zeros((len(groups), m), np.float32)
    qf = np.zeros((len(groups), m, 2), np.float32)
    read = [sentence_tokens(table, g.positions[:k], config.max_pieces) for g in groups]
    n = max(r[0].shape[1] for r in read)
    s = np.zeros((len(groups), k, n, dim_k), np.float32)
    sm = np.zeros((len(groups), k, n), np.float32)
    sc = np.zeros((len(groups), k, SCALARS), np.float32)
    cm = np.zeros((len(groups), k), np.float32)
    y = np.zeros((len(groups), k + 1), np.float32)
    for i, (g, (vecs, mask)) in enumerate(zip(groups, read, strict=True)):
        count, width = vecs.shape[0], vecs.shape[1]
        q[i, : len(g.question)] = g.question
        qm[i, : len(g.question)] = 1.0
        qf[i, : len(g.question)] = g.features
        s[i, :count, :width] = vecs
        sm[i, :count, :width] = mask
        sc[i, :count] = g.scalars[:count]
        cm[i, :count] = 1.0
        if g.answerable:
            y[i, 1 : 1 + count] = g.correct[:count]
        else:
            y[i, 0] = 1.0
    qv = np.stack([g.vector for g in groups]).astype(np.float32)
    arrays = (q, qm, qf, qv, s, sm, sc, cm, y)
    return [torch.from_numpy(a) for a in arrays]


def trainable(groups: Sequence[Group], config: TrainConfig) -> list[Group]:
    """The questions the listwise loss can learn from: unanswerable ones, and answerable
    ones whose gold sentence is among those read."""
    return [g for g in groups if not g.answerable or g.correct[: config.candidates].any()]


def train(
    data: CheckerData,
    config: TrainConfig,
    *,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Train the checker listwise: the log-probability of the gold sentence(s) (or of "none")
    under a softmax over [none, the candidates]; its tensors and the time it took."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    groups = trainable(data.train, config)
    proj = torch.from_numpy(np.ascontiguousarray(data.table.projection, dtype=np.float32))
    model = _build_model(config, int(data.table.projection.shape[0]))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total = math.ceil(len(groups) / config.batch) * config.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total, pct_start=0.1
    )
    started = time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        order = list(groups)
        rng.shuffle(order)
        for lo in range(0, len(order), config.batch):
            chunk = order[lo : lo + config.batch]
            *inputs, y = _batch(chunk, data.table, config)
            z = model(proj, *inputs)
            gold = torch.logsumexp(z + (y - 1.0) * 1e4, 1)
            loss = (torch.logsumexp(z, 1) - gold).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if progress:
                progress(len(chunk))
    seconds = time.perf_counter() - started
    return {"tensors": model.export()}, {
        "train_seconds": round(seconds, 1),
        "train_questions": len(groups),
    }


# -- choosing the combination on the held-out articles --------------------------------


def held_metrics(
    held: list[Group], c: Combination | None, lines: dict[str, float]
) -> dict[str, float]:
    """MRR and R@1 on the held-out answerable questions, and the share of each kind declined
    at each level's line, with the checker combined as `c` (None: without it)."""
    ranks: list[int | None] = []
    firsts: list[tuple[str, float]] = []
    for h in held:
        _, conf, correct = _combined(h, c)
        if h.answerable:
            ranks.append(first_hit(list(correct)))
        kind = "answerable" if h.answerable else "offtopic" if h.offtopic else "unanswerable"
        firsts.append((kind, float(conf[0]) if len(conf) else -1e9))
    n = max(1, len(ranks))
    out = {
        "mrr": round(sum(1.0 / r for r in ranks if r) / n, 4),
        "r1": round(sum(1 for r in ranks if r == 1) / n, 4),
    }
    for name, line in lines.items():
        for kind, label in (
            ("answerable", ""),
            ("unanswerable", "unanswerable_"),
            ("offtopic", "offtopic_"),
        ):
            values = [f < line for k, f in firsts if k == kind]
            out[f"declined_{label}{name}"] = round(float(np.mean(values)), 4) if values else 0.0
    return out


def _combined(h: Group, c: Combination | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A held-out question's scores, confidences and correct flags, best first, with the
    checker combined as `c` (None: as ranked without it)."""
    score, conf = h.scores.astype(np.float32).copy(), h.confidence.astype(np.float32).copy()
    if c is None or len(h.logits) < 2:
        return score, conf, h.correct
    odds, p = answered(h.logits)
    combine(c, score, conf, np.arange(len(odds)), odds, p)
    order = np.argsort(-score, kind="stable")
    return score[order], conf[order], h.correct[order]


def _line_for(confidences: np.ndarray, share: float) -> float:
    """The line under which `share` of these confidences fall."""
    return float(np.quantile(confidences, share)) if len(confidences) else 0.0


def choose_combination(
    held: list[Group],
    depths: Sequence[int] = DEPTHS,
    rank_weights: Sequence[float] = RANK_WEIGHTS,
    confidence_weights: Sequence[float] = CONFIDENCE_WEIGHTS,
) -> tuple[Combination, list[dict[str, Any]]]:
    """The combination chosen on the held-out even articles: first the ranking (reordering
    the best `depth` by the checker only where that gains REORDER_GAIN MRR over leaving
    them), then the confidence weight that declines the most unanswerable questions at the
    balanced level with the answerable questions declined as often as without the checker
    and the off-topic ones at least as often; every trial is returned for the record."""
    answerable = np.array([h.confidence[0] for h in held if h.answerable and len(h.confidence)])
    shares = {name: float(np.mean(answerable < ABSTAIN_LEVELS[name])) for name in LEVEL_ORDER}
    same = tuple(ABSTAIN_LEVELS[n] for n in LEVEL_ORDER)
    asked = [h for h in held if h.answerable]
    trials: list[dict[str, Any]] = []
    plain = held_metrics(asked, Combination(1, 0.0, 0.0, same, same), {})["mrr"]
    depth, rw, best = 1, 0.0, plain
    trials.append({"depth": 1, "rank_weight": 0.0, "mrr": plain})
    for d in depths:
        for w in rank_weights:
            m = held_metrics(asked, Combination(d, w, 0.0, same, same), {})
            trials.append({"depth": d, "rank_weight": w, **m})
            if m["mrr"] >= plain + REORDER_GAIN and m["mrr"] > best:
                depth, rw, best = d, w, m["mrr"]
    offtopic = held_metrics(held, None, ABSTAIN_LEVELS)["declined_offtopic_balanced"]
    chosen: Combination | None = None
    best_unanswerable = -1.0
    for cw in confidence_weights:
        c = Combination(depth, rw, cw, (0.0, 1.0), (0.0, 1.0))
        firsts = [(h.answerable, float(_combined(h, c)[1][0])) for h in held if len(h.scores)]
        ans = np.array([f for a, f in firsts if a])
        lines = [_line_for(ans, shares[n]) for n in LEVEL_ORDER]
        for i in range(1, len(lines)):  # a few held-out questions may tie two levels
            lines[i] = max(lines[i], lines[i - 1] + 1e-4)
        c = Combination(depth, rw, cw, tuple(lines), same)
        m = held_metrics(held, c, ABSTAIN_LEVELS)
        trials.append({"depth": depth, "rank_weight": rw, "confidence_weight": cw, **m})
        safe = m["declined_offtopic_balanced"] >= offtopic or cw == 0.0
        if safe and m["declined_unanswerable_balanced"] > best_unanswerable:
            best_unanswerable, chosen = m["declined_unanswerable_balanced"], c
    assert chosen is not None
    return chosen, trials


def score_held(held: list[Group], folder: Path, table: TokenTable) -> float:
    """The shipped checker's logits for each held-out question (through the numpy runtime
    the question path uses); the milliseconds a question took."""
    from retriever.checker import _one_blas_thread

    checker = AnswerChecker(folder)
    started = time.perf_counter()
    with _one_blas_thread():
        for h in held:
            s, mask = sentence_tokens(table, h.positions, checker.max_pieces)
            h.logits = checker.read(
                table.projection, h.question, h.features, h.vector, s, mask, h.scalars
            )
    return 1000 * (time.perf_counter() - started) / max(1, len(held))


def save(
    folder: Path,
    trained: dict[str, Any],
    config: TrainConfig,
    combination: Combination,
    record: dict[str, Any],
    dim: int,
) -> None:
    """checker.safetensors (float32) and checker.json beside it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(trained["tensors"], str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)
    write_config(folder, config, combination, record, dim)


def write_config(
    folder: Path,
    config: TrainConfig,
    combination: Combination,
    record: dict[str, Any],
    dim: int,
) -> None:
    body = {
        "model": {
            "kind": "interaction",
            "base": "all-MiniLM-L6-v2",
            "dim": dim,
            "candidates": config.candidates,
            "max_pieces": config.max_pieces,
            "hidden": config.hidden,
        },
        "combination": {
            "depth": combination.depth,
            "rank_weight": combination.rank_weight,
            "confidence_weight": combination.confidence_weight,
            "knots_from": [round(v, 6) for v in combination.knots_from],
            "knots_to": list(combination.knots_to),
        },
        "training": asdict(config),
        **record,
    }
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / CONFIG_FILE)


def load_trained(folder: Path) -> Any:
    """The shipped checker back in torch (eval mode), to check the numpy runtime against."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    m = config["model"]
    train_config = TrainConfig(**config["training"])
    model = _build_model(train_config, int(m["dim"]))
    model.load_state_dict({k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()})
    model.eval()
    del torch
    return model


def torch_logits(model: Any, group: Group, table: TokenTable, config: TrainConfig) -> np.ndarray:
    """`load_trained`'s logits [none, candidates] for one question (as `AnswerChecker.read`)."""
    import torch

    proj = torch.from_numpy(np.ascontiguousarray(table.projection, dtype=np.float32))
    *inputs, _ = _batch([group], table, config)
    with torch.no_grad():
        out = model(proj, *inputs)[0].numpy()
    return np.asarray(out[: 1 + min(len(group.positions), config.candidates)], dtype=np.float32)
