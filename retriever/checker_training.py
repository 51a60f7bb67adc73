"""Training the answer checker (retriever/checker.py) on the even split: the only module that
imports torch for it, and only inside the functions that train.

The data: ReQA's even-split questions, each with its gold sentences (positives) and the
sentences the retriever ranks highest for it that do not answer it (hard negatives, the
same article's first), and SQuAD 2.0's unanswerable questions on the even articles, whose
top-ranked sentences are all negatives. A few even articles are kept out of training; the
checker's combination with the ranking and the abstention line are chosen on them.
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

from retriever.checker import CONFIG_FILE, WEIGHTS_FILE, Combination, combine
from retriever.errors import EvalDataError
from retriever.evaluate import MRR_DEPTH, ReqaData, Span, first_hit, is_correct
from retriever.models import ABSTAIN_LEVELS
from retriever.retriever import Retriever

# Share of the held-out even split's ReQA questions each level declines without the
# checker (measured on them by `qabot train checker`): with the checker, each level's line
# is put where it declines the same share, so a level keeps its meaning.
LEVEL_ORDER = ("lenient", "balanced", "strict")
# How many of the best candidates the checker may read (the held-out choice picks one).
DEPTHS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (recorded beside them)."""

    layers: int = 1
    max_tokens: int = 80
    negatives: int = 3  # hard negatives per answerable question
    unanswerable_negatives: int = 3  # top-ranked sentences per unanswerable question
    epochs: int = 1
    batch: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    seed: int = 0
    # Even articles kept out of training, by their position in ReQA's sentences.jsonl:
    # every fourth even article, starting at the second (2, 10, 18, 26, 34, 42).
    held_out_every: int = 4
    rank_depth: int = 20  # how deep the retriever's ranking is read for negatives


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    label: float


@dataclass
class HeldQuestion:
    """A held-out question's ranking, as the retriever gives it, with what the checker needs."""

    text: str
    answerable: bool
    scores: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray  # bool, per ranked sentence
    sentences: list[str]  # texts of the first `depth` ranked
    logits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def held_out(position: int, every: int) -> bool:
    """Whether the even article at `position` is kept out of training."""
    return position % 2 == 0 and (position // 2) % every == 1


# -- data -------------------------------------------------------------------------------


@dataclass
class CheckerData:
    train: list[Pair]
    held: list[HeldQuestion]
    digest: str  # sha256 of every training pair and held-out question, in order
    counts: dict[str, int]


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
    """Training pairs and held-out rankings from the even split (odd questions are refused);
    `every` > 1 takes every so many questions only (a quick check)."""
    position = {a.doc_id: i for i, a in enumerate(reqa.articles)}
    questions = reqa.split("even")[::every]
    unanswerable = unanswerable[::every]
    rowids = retriever.indexes().sentences.rowids
    article_of = retriever.indexes().sentences.article
    pos_of_row = {int(r): i for i, r in enumerate(rowids)}
    gold_rows: dict[str, list[int]] = {}
    by_doc: dict[str, list[int]] = {}
    for row, found in spans.items():
        for sp in found:
            by_doc.setdefault(sp.doc_id, []).append(row)
    train: list[Pair] = []
    held: list[HeldQuestion] = []
    depth = config.rank_depth
    digest = hashlib.sha256()

    def add(pair: Pair) -> None:
        digest.update(f"{pair.label}\x1f{pair.question}\x1f{pair.sentence}\x1e".encode())
        train.append(pair)

    for lo in range(0, len(questions), batch):
        chunk = questions[lo : lo + batch]
        ranked = retriever.rank([q.text for q in chunk], depth=MRR_DEPTH)
        need = sorted({int(p) for r in ranked for p in r.positions[:depth]})
        for q in chunk:
            rows = gold_rows.setdefault(
                q.id, [r for r in by_doc.get(q.doc_id, []) if is_correct(spans[r], q)]
            )
            need.extend(pos_of_row[r] for r in rows if r in pos_of_row)
        texts = dict(
            zip(need, retriever.sentence_texts(np.array(need, dtype=np.int64)), strict=True)
        )
        for q, r in zip(chunk, ranked, strict=True):
            ranked_rows = rowids[r.positions]
            correct = np.array([is_correct(spans.get(int(i), ()), q) for i in ranked_rows])
            if held_out(q.doc_position, config.held_out_every):
                assert r.confidence is not None
                held.append(
                    HeldQuestion(
                        q.text,
                        True,
                        r.scores,
                        r.confidence,
                        correct,
                        [texts[int(p)] for p in r.positions[:depth]],
                    )
                )
                continue
            gold = [pos_of_row[g] for g in gold_rows[q.id] if g in pos_of_row]
            if not gold:
                continue
            for g in gold:
                add(Pair(q.text, texts[g], 1.0))
            doc_articles = {int(article_of[g]) for g in gold}
            wrong = [
                int(p) for p, ok in zip(r.positions[:depth], correct[:depth], strict=True) if not ok
            ]
            same = [p for p in wrong if int(article_of[p]) in doc_articles]
            other = [p for p in wrong if int(article_of[p]) not in doc_articles]
            for p in (same + other)[: config.negatives]:
                add(Pair(q.text, texts[p], 0.0))
        if progress:
            progress(len(chunk))

    for lo in range(0, len(unanswerable), batch):
        chunk_u = unanswerable[lo : lo + batch]
        ranked = retriever.rank([q for _, q in chunk_u], depth=MRR_DEPTH)
        need = sorted({int(p) for r in ranked for p in r.positions[:depth]})
        texts = dict(
            zip(need, retriever.sentence_texts(np.array(need, dtype=np.int64)), strict=True)
        )
        for (title, text), r in zip(chunk_u, ranked, strict=True):
            if title not in position:
                raise EvalDataError(f"SQuAD 2.0 article {title!r} is not one of ReQA's")
            if position[title] % 2:
                raise EvalDataError(f"{title!r} is an odd article: odd questions are held out")
            if held_out(position[title], config.held_out_every):
                assert r.confidence is not None
                held.append(
                    HeldQuestion(
                        text,
                        False,
                        r.scores,
                        r.confidence,
                        np.zeros(len(r.positions), dtype=bool),
                        [texts[int(p)] for p in r.positions[:depth]],
                    )
                )
                continue
            for p in r.positions[: config.unanswerable_negatives]:
                add(Pair(text, texts[int(p)], 0.0))
        if progress:
            progress(len(chunk_u))
    for h in held:
        digest.update(f"held\x1f{h.answerable}\x1f{h.text}\x1e".encode())
    counts = {
        "train_pairs": len(train),
        "train_positives": sum(1 for p in train if p.label > 0.5),
        "held_answerable": sum(1 for h in held if h.answerable),
        "held_unanswerable": sum(1 for h in held if not h.answerable),
    }
    return CheckerData(train, held, digest.hexdigest(), counts)


# -- the model (torch) --------------------------------------------------------------------


def _build_model(model_dir: Path, config: TrainConfig) -> Any:
    """The first `config.layers` layers of the base model with a linear head, in torch,
    named as the base model's tensors (so the numpy side loads them with `BertLayer`)."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    base_config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    tensors = {
        k.removeprefix("bert."): v
        for k, v in load_file(str(model_dir / "model.safetensors")).items()
    }
    dim, heads = int(base_config["hidden_size"]), int(base_config["num_attention_heads"])
    eps = float(base_config.get("layer_norm_eps", 1e-12))

    class Layer(nn.Module):
        def __init__(self, prefix: str) -> None:
            super().__init__()
            inner = int(base_config["intermediate_size"])
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.o = nn.Linear(dim, dim)
            self.ln1 = nn.LayerNorm(dim, eps=eps)
            self.fi, self.fo = nn.Linear(dim, inner), nn.Linear(inner, dim)
            self.ln2 = nn.LayerNorm(dim, eps=eps)
            self.drop = nn.Dropout(config.dropout)
            for mod, name in self.names().items():
                mod.weight.data.copy_(tensors[f"{prefix}.{name}.weight"])
                mod.bias.data.copy_(tensors[f"{prefix}.{name}.bias"])

        def names(self) -> dict[Any, str]:
            return {
                self.q: "attention.self.query",
                self.k: "attention.self.key",
                self.v: "attention.self.value",
                self.o: "attention.output.dense",
                self.ln1: "attention.output.LayerNorm",
                self.fi: "intermediate.dense",
                self.fo: "output.dense",
                self.ln2: "output.LayerNorm",
            }

        def forward(self, x: Any, key_bias: Any) -> Any:
            b, length, _ = x.shape

            def split(t: Any) -> Any:
                return t.view(b, length, heads, dim // heads).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(dim // heads) + key_bias
            ctx = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, length, dim)
            a = self.ln1(x + self.drop(self.o(ctx)))
            return self.ln2(a + self.drop(self.fo(nn.functional.gelu(self.fi(a)))))

    class Checker(nn.Module):
        word: Any

        def __init__(self) -> None:
            super().__init__()
            # Frozen, and not shipped: read from the base model at load time.
            self.register_buffer("word", tensors["embeddings.word_embeddings.weight"].clone())
            self.position = nn.Parameter(tensors["embeddings.position_embeddings.weight"].clone())
            self.types = nn.Parameter(tensors["embeddings.token_type_embeddings.weight"].clone())
            self.emb_ln = nn.LayerNorm(dim, eps=eps)
            self.emb_ln.weight.data.copy_(tensors["embeddings.LayerNorm.weight"])
            self.emb_ln.bias.data.copy_(tensors["embeddings.LayerNorm.bias"])
            self.layers = nn.ModuleList(Layer(f"encoder.layer.{i}") for i in range(config.layers))
            self.drop = nn.Dropout(config.dropout)
            self.head = nn.Linear(2 * dim, 1)
            nn.init.normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

        def forward(self, ids: Any, types: Any, mask: Any) -> Any:
            length = ids.shape[1]
            x = self.word[ids] + self.position[:length] + self.types[types]
            x = self.drop(self.emb_ln(x))
            key_bias = ((mask - 1.0) * 1e9)[:, None, None, :]
            for layer in self.layers:
                x = layer(x, key_bias)
            mean = (mask[:, :, None] * x).sum(1) / mask.sum(1, keepdim=True)
            return self.head(self.drop(torch.cat([x[:, 0], mean], dim=1)))[:, 0]

        def export(self) -> dict[str, Any]:
            out = {
                "embeddings.position_embeddings.weight": self.position,
                "embeddings.token_type_embeddings.weight": self.types,
                "embeddings.LayerNorm.weight": self.emb_ln.weight,
                "embeddings.LayerNorm.bias": self.emb_ln.bias,
                "head.weight": self.head.weight,
                "head.bias": self.head.bias,
            }
            layers: list[Any] = list(self.layers)
            for i, layer in enumerate(layers):
                for mod, name in layer.names().items():
                    out[f"encoder.layer.{i}.{name}.weight"] = mod.weight
                    out[f"encoder.layer.{i}.{name}.bias"] = mod.bias
            return {k: v.detach().float().contiguous().clone() for k, v in out.items()}

    model: Any = Checker()
    model.meta = {"heads": heads, "layer_norm_eps": eps}
    return model


def _batches(tokenizer: Any, pairs: Sequence[Pair], size: int) -> list[tuple[Any, Any, Any, Any]]:
    import torch

    out = []
    for lo in range(0, len(pairs), size):
        chunk = pairs[lo : lo + size]
        enc = tokenizer.encode_batch([(p.question, p.sentence) for p in chunk])
        width = max(len(e.ids) for e in enc)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros((len(chunk), width), dtype=torch.float32)
        for r, e in enumerate(enc):
            n = len(e.ids)
            ids[r, :n] = torch.tensor(e.ids)
            types[r, :n] = torch.tensor(e.type_ids)
            mask[r, :n] = 1.0
        labels = torch.tensor([p.label for p in chunk], dtype=torch.float32)
        out.append((ids, types, mask, labels))
    return out


def train(
    data: CheckerData,
    model_dir: Path,
    config: TrainConfig,
    *,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fine-tune the shallow cross-encoder; its tensors (for safetensors) and timings."""
    import torch
    from tokenizers import Tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=config.max_tokens)
    model = _build_model(model_dir, config)
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    steps_per_epoch = math.ceil(len(data.train) / config.batch)
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / (total - warmup + 1)),
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        order = list(data.train)
        rng.shuffle(order)
        # Similar lengths together, so batches pad little; the batches' order is shuffled.
        chunks = [order[i : i + 50 * config.batch] for i in range(0, len(order), 50 * config.batch)]
        batches = []
        for chunk in chunks:
            chunk.sort(key=lambda p: len(p.question) + len(p.sentence))
            batches.extend(_batches(tokenizer, chunk, config.batch))
        rng.shuffle(batches)
        for ids, types, mask, labels in batches:
            loss = loss_fn(model(ids, types, mask), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if progress:
                progress(len(labels))
    seconds = time.perf_counter() - started
    tensors = model.export()
    tensors["head.weight"] = tensors["head.weight"].reshape(-1)
    meta = model.meta
    return {"tensors": tensors, **meta}, {"train_seconds": round(seconds, 1)}


# -- choosing the combination on the held-out articles --------------------------------


def held_metrics(
    held: list[HeldQuestion], c: Combination | None, lines: dict[str, float]
) -> dict[str, float]:
    """MRR and R@1 on the held-out answerable questions, and the share of each kind declined
    at each level's line, with the checker combined as `c` (None: without it)."""
    ranks: list[int | None] = []
    firsts: list[tuple[bool, float]] = []
    for h in held:
        score, conf = h.scores.astype(np.float32).copy(), h.confidence.astype(np.float32).copy()
        correct = h.correct
        if c is not None:
            depth = min(c.depth, len(score))
            top = np.arange(depth)  # the held ranking is sorted best first
            combine(c, score, conf, top, h.logits[:depth])
            order = np.argsort(-score, kind="stable")
            correct, conf = correct[order], conf[order]
        if h.answerable:
            ranks.append(first_hit(list(correct)))
        firsts.append((h.answerable, float(conf[0]) if len(conf) else -1e9))
    n = max(1, len(ranks))
    out = {
        "mrr": round(sum(1.0 / r for r in ranks if r) / n, 4),
        "r1": round(sum(1 for r in ranks if r == 1) / n, 4),
    }
    answerable = [f for a, f in firsts if a]
    unanswerable = [f for a, f in firsts if not a]
    for name, line in lines.items():
        out[f"declined_{name}"] = round(float(np.mean([f < line for f in answerable])), 4)
        out[f"declined_unanswerable_{name}"] = round(
            float(np.mean([f < line for f in unanswerable])), 4
        )
    return out


def _line_for(confidences: np.ndarray, share: float) -> float:
    """The line under which `share` of these confidences fall."""
    return float(np.quantile(confidences, share)) if len(confidences) else 0.0


def choose_combination(
    held: list[HeldQuestion],
    depths: Sequence[int] = DEPTHS,
    rank_weights: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
    confidence_weights: Sequence[float] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
) -> tuple[Combination, list[dict[str, Any]]]:
    """The combination chosen on the held-out even articles: first the ranking (best MRR,
    then the smallest depth within 0.002 of it), then the confidence weight that declines
    the most unanswerable questions at the balanced level with the answerable questions
    declined as often as without the checker; every trial is returned for the record."""
    answerable = np.array([h.confidence[0] for h in held if h.answerable and len(h.confidence)])
    shares = {name: float(np.mean(answerable < ABSTAIN_LEVELS[name])) for name in LEVEL_ORDER}
    identity = Combination(
        1,
        0.0,
        0.0,
        tuple(ABSTAIN_LEVELS[n] for n in LEVEL_ORDER),
        tuple(ABSTAIN_LEVELS[n] for n in LEVEL_ORDER),
    )
    trials: list[dict[str, Any]] = []
    best_rank: tuple[float, int, float] | None = None
    rank_results = {}
    for depth in depths:
        for rw in rank_weights:
            c = Combination(depth, rw, 0.0, identity.knots_from, identity.knots_to)
            m = held_metrics([h for h in held if h.answerable], c, {})
            rank_results[(depth, rw)] = m["mrr"]
            trials.append({"depth": depth, "rank_weight": rw, **m})
    top_mrr = max(rank_results.values())
    depth, rw = min(
        (k for k, v in rank_results.items() if v >= top_mrr - 0.002),
        key=lambda k: (k[0], -rank_results[k]),
    )
    del best_rank
    chosen: Combination | None = None
    best_unanswerable = -1.0
    for cw in confidence_weights:
        c = Combination(depth, rw, cw, (0.0, 1.0), (0.0, 1.0))
        mixed = _first_confidences(held, c)
        ans = np.array([f for a, f in mixed if a])
        lines = [_line_for(ans, shares[n]) for n in LEVEL_ORDER]
        for i in range(1, len(lines)):  # a few held-out questions may tie two levels
            lines[i] = max(lines[i], lines[i - 1] + 1e-4)
        knots_from = tuple(lines)
        c = Combination(depth, rw, cw, knots_from, tuple(ABSTAIN_LEVELS[n] for n in LEVEL_ORDER))
        m = held_metrics(held, c, ABSTAIN_LEVELS)
        trials.append({"depth": depth, "rank_weight": rw, "confidence_weight": cw, **m})
        if m["declined_unanswerable_balanced"] > best_unanswerable:
            best_unanswerable, chosen = m["declined_unanswerable_balanced"], c
    assert chosen is not None
    return chosen, trials


def _first_confidences(held: list[HeldQuestion], c: Combination) -> list[tuple[bool, float]]:
    out = []
    for h in held:
        score, conf = h.scores.astype(np.float32).copy(), h.confidence.astype(np.float32).copy()
        depth = min(c.depth, len(score))
        combine(c, score, conf, np.arange(depth), h.logits[:depth])
        out.append((h.answerable, float(conf[int(np.argmax(score))])))
    return out


def score_held(held: list[HeldQuestion], folder: Path, model_dir: Path, depth: int) -> None:
    """The shipped checker's log-odds for each held-out question's first `depth` sentences
    (through the numpy runtime the question path uses)."""
    from retriever.checker import AnswerChecker

    checker = AnswerChecker(folder, model_dir)
    for h in held:
        h.logits = checker.logits(h.text, h.sentences[:depth])


def save(
    folder: Path,
    trained: dict[str, Any],
    config: TrainConfig,
    combination: Combination,
    record: dict[str, Any],
) -> None:
    """checker.safetensors (fp16) and checker.json beside it."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(torch.float16) for k, v in trained["tensors"].items()}
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)
    write_config(folder, trained, config, combination, record)


def write_config(
    folder: Path,
    trained: dict[str, Any],
    config: TrainConfig,
    combination: Combination,
    record: dict[str, Any],
) -> None:
    body = {
        "model": {
            "base": "all-MiniLM-L6-v2",
            "layers": config.layers,
            "max_tokens": config.max_tokens,
            "heads": trained["heads"],
            "layer_norm_eps": trained["layer_norm_eps"],
            "pooling": "cls+mean",
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


def load_trained(folder: Path, model_dir: Path) -> Any:
    """The shipped checker back in torch (eval mode), to check the numpy runtime against."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    model = _build_model(model_dir, TrainConfig(layers=int(config["model"]["layers"])))
    tensors = {k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
    with torch.no_grad():
        model.position.copy_(tensors["embeddings.position_embeddings.weight"])
        model.types.copy_(tensors["embeddings.token_type_embeddings.weight"])
        model.emb_ln.weight.copy_(tensors["embeddings.LayerNorm.weight"])
        model.emb_ln.bias.copy_(tensors["embeddings.LayerNorm.bias"])
        model.head.weight.copy_(tensors["head.weight"].reshape(1, -1))
        model.head.bias.copy_(tensors["head.bias"])
        for i, layer in enumerate(list(model.layers)):
            for mod, name in layer.names().items():
                mod.weight.copy_(tensors[f"encoder.layer.{i}.{name}.weight"])
                mod.bias.copy_(tensors[f"encoder.layer.{i}.{name}.bias"])
    model.eval()
    return model


def torch_logits(model: Any, model_dir: Path, question: str, sentences: list[str]) -> np.ndarray:
    """`load_trained`'s log-odds for these pairs (as `AnswerChecker.logits`)."""
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=TrainConfig().max_tokens)
    pairs = [Pair(question, s, 0.0) for s in sentences]
    ids, types, mask, _ = _batches(tokenizer, pairs, len(pairs))[0]
    with torch.no_grad():
        return np.asarray(model(ids, types, mask).numpy(), dtype=np.float32)
