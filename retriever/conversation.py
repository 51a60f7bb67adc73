"""Conversations: the turns so far, and a follow-up question read in their light.

A conversation is its ordered turns: each question, how qabot understood it, and the answer
it gave (the quoted sentences, their articles and scores). A new question that leans on the
turns before (a pronoun or possessive with no name of its own, "the general", an elliptical
"and in 2019?") is read with what they named carried in: the pronoun replaced by the name the
conversation is about, or the name added. Nothing is generated for the answer: the folded
question only finds the sentences, which are still quoted exactly. The articles of the last
answers become a prior that fades with each turn. A question that names what it asks about
is read as if asked alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from retriever.errors import BadQuestionError
from retriever.models import Answer
from store.models import StoredSentence, StoredTurn

__all__ = [
    "Conversation",
    "Folding",
    "Reading",
    "Turn",
    "TurnSentence",
    "entities",
    "parse_history",
    "read_in_context",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class TurnSentence(_Frozen):
    """One sentence an earlier answer quoted, and where it came from."""

    text: str
    article_id: str
    title: str = ""
    score: float = 0.0
    start: int = -1  # where it starts in its article's cleaned text (-1: not known)


class Turn(_Frozen):
    """One question of a conversation and the answer qabot gave.

    `understood` is the question as qabot read it (the same text unless it was folded).
    """

    question: str
    understood: str = ""
    answers: tuple[TurnSentence, ...] = ()
    abstained: bool = False

    @property
    def read_as(self) -> str:
        return self.understood or self.question

    @classmethod
    def of(cls, answer: Answer) -> Turn:
        """The turn an answer makes."""
        return cls(
            question=answer.question,
            understood=answer.understood or "",
            answers=tuple(
                TurnSentence(
                    text=a.text,
                    article_id=a.article.id,
                    title=a.article.title,
                    score=a.score,
                    start=a.start,
                )
                for a in answer.answers
            ),
            abstained=answer.abstained,
        )

    def stored(self, asked_at: str) -> StoredTurn:
        """This turn as the store keeps it (`Store.put_conversation`), asked at `asked_at`."""
        return StoredTurn(
            question=self.question,
            understood=self.understood,
            sentences=tuple(StoredSentence(**a.model_dump()) for a in self.answers),
            abstained=self.abstained,
            asked_at=asked_at,
        )

    @classmethod
    def from_stored(cls, kept: StoredTurn) -> Turn:
        """The turn the store kept (`Store.conversation`)."""
        return cls(
            question=kept.question,
            understood=kept.understood,
            answers=tuple(TurnSentence(**s.model_dump()) for s in kept.sentences),
            abstained=kept.abstained,
        )

    @classmethod
    def from_json(cls, value: Any, where: str = "history") -> Turn:
        """A turn from JSON: a `--json` answer (`question`, `answers` with `text`, `score`,
        `article`), or one with `article_id` in place of `article`. A plain string is not a
        turn: it is an earlier question to be asked again (see `Retriever.converse`)."""
        if not isinstance(value, Mapping) or not isinstance(value.get("question"), str):
            raise BadQuestionError(
                f"{where} is not a turn: give an object with a 'question' string and its "
                "'answers' (as `qabot ask --json` prints them), or the question alone"
            )
        sentences = []
        raw_answers = value.get("answers") or []
        if not isinstance(raw_answers, list):
            raise BadQuestionError(f"{where}: 'answers' must be a list")
        for n, a in enumerate(raw_answers):
            article = a.get("article") if isinstance(a, Mapping) else None
            article_id = (article.get("id") if isinstance(article, Mapping) else None) or (
                a.get("article_id") if isinstance(a, Mapping) else None
            )
            if not isinstance(a, Mapping) or not isinstance(a.get("text"), str) or not article_id:
                raise BadQuestionError(
                    f"{where} answer {n + 1} needs 'text' and 'article' (with its 'id')"
                )
            title = article.get("title") if isinstance(article, Mapping) else a.get("title")
            sentences.append(
                TurnSentence(
                    text=a["text"],
                    article_id=str(article_id),
                    title=str(title or ""),
                    score=float(a.get("score") or 0.0),
                    start=int(a["start"]) if isinstance(a.get("start"), int) else -1,
                )
            )
        understood = value.get("understood")
        return cls(
            question=value["question"],
            understood=understood if isinstance(understood, str) else "",
            answers=tuple(sentences),
            abstained=bool(value.get("abstained", not sentences)),
        )


class Conversation(_Frozen):
    """The turns so far, oldest first; turn numbers in answers count from 0."""

    turns: tuple[Turn, ...] = ()

    def then(self, answer: Answer) -> Conversation:
        """This conversation with one more turn: the answer just given."""
        return Conversation(turns=(*self.turns, Turn.of(answer)))

    def __len__(self) -> int:
        return len(self.turns)


def parse_history(value: Any, where: str = "history") -> list[str | Turn]:
    """A history as JSON gives it: a list whose items are earlier questions (strings, to be
    asked again in order: `Retriever.resume`) or turns (`Turn.from_json`)."""
    if not isinstance(value, list):
        raise BadQuestionError(
            f"{where} must be a list of the earlier questions or answers, not "
            f"{type(value).__name__}"
        )
    items: list[str | Turn] = []
    for n, item in enumerate(value, start=1):
        if isinstance(item, str):
            if not item.strip():
                raise BadQuestionError(f"{where} item {n} is an empty question")
            items.append(item)
        else:
            items.append(Turn.from_json(item, f"{where} item {n}"))
    return items


# -- reading a question in the light of the turns before --------------------------------------


@dataclass(frozen=True)
class Folding:
    """How far a follow-up leans on the turns before. Tuned on the ReQA even split only
    (`qabot eval followups --split even`)."""

    # Turns looked back over for names and articles.
    lookback: int = 3
    # Each turn further back counts this much less (names and the article prior alike).
    fade: float = 0.5
    # Added to the ranking score of sentences of the articles the last answer quoted (z-score
    # units; the four signals sum to ~10 for a good match), times `fade` per turn back.
    prior_score: float = 1.0
    # And to their confidence (what abstention reads).
    prior_confidence: float = 0.03
    # Taken from the ranking score of a sentence the conversation has already quoted: a
    # follow-up asks for something new.
    seen_penalty: float = 10.0
    # Whether only each earlier answer's first quote counts as seen (a sentence quoted
    # below it may well be what the next question asks about: "Whom did he meet in Cairo?"
    # after a second quote that mentions the visit).
    seen_first: bool = True
    # How the name a follow-up points at is carried in: put in the pronoun's place
    # ("substitute"), added at the end ("append"), or not at all ("none": the prior only).
    carry: str = "substitute"
    # An unsure reading (a pronoun in a question that also names something) is kept only
    # when its best confidence beats the question read alone by this much.
    keep_margin: float = 0.0
    # Whether a bare "it" in a question naming nothing surely points back (else the
    # question is ranked both ways, as for a pronoun in a question that names something).
    trust_it: bool = False
    # For "he" or "she": the weight of a name that answered a "who" question.
    who_answer: float = 3.0
    # Whether the question read as asked (the other reading of an unsure one) still leans
    # on the conversation's articles (the prior and the seen sentences).
    unsure_prior: bool = True
    # How many of the most salient names "it", "its" or "they" is tried as ("Who did
    # Denver beat in the AFC championship?" then "What does it stand for?"): each is
    # ranked, and the reading the articles answer most confidently is kept. A name is
    # tried only when its salience is at least `name_ratio` of the most salient one's.
    names: int = 2
    name_ratio: float = 0.5
    # Whether an unsure question tried as two names is also ranked as asked (a third
    # reading: the surest guard, and the dearest).
    asked_too: bool = False
    # The other readings (the next names, or the question as asked) are tried only when
    # the first is answered less confidently than this (the abstention levels sit at
    # 0.60-0.71): on the even split 22% of the follow-ups need a second reading at 0.85 and
    # 36% at 0.9, for the same hit@1 as trying every reading always (0.705 against 0.702).
    # Each reading costs an encode and a ranking.
    others_below: float = 0.9


@dataclass(frozen=True)
class Reading:
    """How a question was read: the text the ranking sees, the turns it leaned on, and the
    articles of those turns' answers with their prior weight."""

    text: str
    asked: str = ""  # the question as asked, when `text` folds context into it
    context_used: tuple[int, ...] = ()
    prior: Mapping[str, float] = field(default_factory=dict)
    seen: tuple[str, ...] = ()  # the sentences the conversation has quoted
    # False when the question may stand alone after all: `Retriever` then ranks it read
    # both ways and keeps the folded reading only when it is the more confident.
    sure: bool = True
    # Other folded readings, with the next most salient names: ranked too, and the most
    # confident of the folded readings is the one kept.
    others: tuple[str, ...] = ()

    @property
    def folded(self) -> bool:
        return bool(self.context_used)


# Words a question opens with, or that are capitalised without naming anything.
_COMMON = frozenset(
    """a an the and or but if of in on at to for from by with about as into over after before
    what which who whom whose when where why how is are was were be been do does did has have
    had can could will would should may might must shall this that these those there here
    it its he she they his her their him them i we you our your my me us one some any many
    much most more other another each every all both also than then so not no yes
    according during while since until between among against under upon within without
    name list give tell describe explain""".split()
)
_NAME_WORD = r"(?:[A-Z][\w&.-]*|\d+(?:[.,]\d+)*)"
_NAME = re.compile(
    rf"{_NAME_WORD}(?:\s+(?:(?:of|the|de|del|la|von|van|al|bin|and)\s+)*{_NAME_WORD})*"
    r"(?:\s+\([A-Z][A-Z0-9&.-]+\))?"  # an abbreviation after it: "Libyan National Army (LNA)"
)
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")

# A pronoun that points back, and how to put a name in its place.
_SUBJECT = re.compile(r"\b(he|she|it|they|him|them|himself|herself|itself|themselves)\b", re.I)
_POSSESSIVE_PRONOUN = re.compile(r"\b(his|its|their|theirs|hers)\b", re.I)
_HER = re.compile(r"\bher\b(\s+[a-z]+)?", re.I)
# A noun phrase standing for a name mentioned before ("the general", "the company").
_THE_ROLE = re.compile(
    r"\b(?:the|this|that)\s+(general|president|minister|company|firm|group|team|city|country|"
    r"organi[sz]ation|government|army|militia|party|leader|king|queen|man|woman|author|"
    r"band|club|university|school|state|region|river|building|bridge|film|book|album|"
    r"player|singer|actor|scientist|emperor|family|dynasty|empire|commander|chief|mayor)\b",
    re.I,
)
_ELLIPSIS = re.compile(r"^(?:and|what about|how about|and what about|also|then)\b", re.I)
_PREPOSITIONS = frozenset("in on at to for from by with about of into over as".split())


def entities(text: str) -> list[str]:
    """The names in a text (runs of capitalised words and numbers), in order, without a
    possessive ending; a capitalised common word opening the text is not a name."""
    out = []
    for m in _NAME.finditer(text):
        words = m.group(0).strip(" .,").split()
        while words and words[0].casefold() in _COMMON:
            words = words[1:]
        while words and words[-1].casefold() in _COMMON:
            words = words[:-1]
        if not words or (len(words) == 1 and words[0][0] in "(0123456789"):
            continue  # a number alone ("in 2019") is the question's own detail, not a name
        out.append(" ".join(words))
    return out


_WHO = re.compile(r"^(?:who|whom|whose)\b", re.I)
# "Who is Khalifa Hafter?" asks what the named one is: its answer names other things (his
# army, his town), not the person a later "he" means.
_WHO_IS = re.compile(r"^who\s+(?:is|was|are|were)\s+(?:the\s+)?(?P<name>[^?]+?)\s*\??$", re.I)
_PERSONAL = re.compile(r"\b(?:he|she|him|his|her|hers|himself|herself)\b", re.I)


def _salience(turns: Sequence[Turn], folding: Folding, person: bool = False) -> dict[str, float]:
    """Each name of the recent turns, weighed by how often and how recently it came up:
    in a question twice as much as in an answer's title, four times as much as in an
    answer's sentence. A question that pointed back counts the name it pointed at (what the
    turns before it were about), not the names its reading carried in ("his army" read as
    "the Libyan National Army" is still about Hafter). For "he" or "she", a name that
    answered a "who" question (in its answer, not in the question) is the likeliest person."""
    weights: dict[str, float] = {}
    spelled: dict[str, str] = {}
    first = max(0, len(turns) - folding.lookback)
    for age, at in enumerate(range(len(turns) - 1, first - 1, -1)):
        turn = turns[at]
        fade = folding.fade**age
        pointed_back = at > 0 and _leans(turn.question, folding.trust_it) is not None
        if pointed_back:
            asked = entities(turn.question)
            pointed = _salience(turns[:at], folding, bool(_PERSONAL.search(turn.question)))
            if pointed:
                asked.append(max(pointed.items(), key=lambda kv: kv[1])[0])
        else:
            asked = entities(turn.read_as)
        mentions = [(n, 2.0) for n in asked]
        mentions += [(n, 1.0) for a in turn.answers[:1] for n in entities(a.title)]
        answered = [n for a in turn.answers[:1] for n in entities(a.text)]
        mentions += [(n, 0.5) for n in answered]
        # ("Whom did he meet?" names whom he met: "he" is still the one it pointed at.)
        about_him = pointed_back and bool(_PERSONAL.search(turn.question))
        if person and _WHO.match(turn.read_as) and not _defines(turn.read_as) and not about_him:
            known = {n.casefold() for n in asked}
            mentions += [(n, folding.who_answer) for n in answered if n.casefold() not in known]
        for name, w in mentions:
            key = name.casefold()
            spelled.setdefault(key, name)
            weights[key] = weights.get(key, 0.0) + w * fade
    return {spelled[k]: v for k, v in weights.items()}


def _defines(question: str) -> bool:
    """Whether a "who" question asks what a name it spells out is ("Who is X?")."""
    m = _WHO_IS.match(question.strip())
    return m is not None and entities(m.group("name")) == [m.group("name").strip()]


def _leans(question: str, trust_it: bool = False) -> tuple[str, bool] | None:
    """How the question leans on what came before ("pronoun", "role", "ellipsis") and
    whether surely (True) or maybe (False: worth checking against the question read
    alone); None when it stands alone.

    A pronoun leans when no name comes before it in the question ("What did Tesla say
    about his father?" points at Tesla): surely when the question names nothing at all and
    the pronoun is not a bare "it" (which questions use without pointing back: "what is it
    called when ...")."""
    names = entities(question)
    if _ELLIPSIS.match(question) and not names:
        return "ellipsis", True
    first_name = min((question.find(n) for n in names if question.find(n) >= 0), default=None)
    found = [m for m in _POSSESSIVE_PRONOUN.finditer(question)]
    found += [m for m in _SUBJECT.finditer(question)] + [m for m in _HER.finditer(question)]
    found = [m for m in found if first_name is None or m.start() < first_name]
    if found:
        bare_it = all(m.group(0).casefold() in ("it", "its") for m in found)
        return "pronoun", not names and (trust_it or not bare_it)
    if not names and _THE_ROLE.search(question):
        return "role", False
    return None


_HEAD = re.compile(r"\s+([a-z]+)")


def _substitute(question: str, name: str, names: Sequence[str] = ()) -> str:
    """The question with its first pointing-back word replaced by the name.

    A possessive before a noun that ends one of the conversation's `names` stands for
    that name ("his army" after "Hafter's Libyan National Army" is "the Libyan National
    Army"), which is what the article then calls it."""
    heads: dict[str, str] = {}
    for n in names:
        bare = re.sub(r"\s+\(.*\)$", "", n).split()
        if len(bare) > 1:
            heads.setdefault(bare[-1].casefold(), n)
    found = []
    for m in _POSSESSIVE_PRONOUN.finditer(question):
        head = _HEAD.match(question, m.end())
        if head and head.group(1).casefold() in heads:
            found.append((m.start(), head.end(), f"the {heads[head.group(1).casefold()]}"))
        else:
            found.append((m.start(), m.end(), f"{name}'s"))
    found += [(m.start(), m.end(), name) for m in _SUBJECT.finditer(question)]
    for m in _HER.finditer(question):
        following = (m.group(1) or "").strip().casefold()
        possessive = bool(following) and following not in _PREPOSITIONS
        found.append((m.start(), m.start() + 3, f"{name}'s" if possessive else name))
    if not found:
        return f"{question} {name}"
    start, end, put = min(found)
    return question[:start] + put + question[end:]


def read_in_context(
    question: str, conversation: Conversation | None, folding: Folding | None = None
) -> Reading:
    """The question as the ranking should see it after these turns.

    A question that stands alone is read as it is, with no prior (what it gets back is
    exactly what it would get asked alone).
    """
    folding = folding or Folding()
    if not conversation or not conversation.turns:
        return Reading(question)
    leaning = _leans(question, folding.trust_it)
    if leaning is None:
        return Reading(question)
    how, sure = leaning
    turns = conversation.turns
    first = max(0, len(turns) - folding.lookback)
    recent = turns[first:]
    person = bool(_PERSONAL.search(question))
    salient = _salience(turns, folding, person=person)
    if not salient and not any(t.answers for t in recent):
        return Reading(question)
    others: list[str] = []
    if how == "ellipsis":
        text = f"{recent[-1].read_as} {question}"
    elif salient and folding.carry != "none":
        ranked = sorted(salient.items(), key=lambda kv: -kv[1])
        top = ranked[0][1]
        # "he" or "she" means a person, whom the salience already favours; the runner-up
        # name is then mostly a place or an organisation ("Whom did Russia meet?").
        width = 1 if person else max(1, folding.names)
        tried = [n for n, w in ranked[:width] if w >= folding.name_ratio * top]
        texts = []
        for name in tried:
            if how == "pronoun" and folding.carry == "substitute":
                texts.append(_substitute(question, name, list(salient)))
            else:
                texts.append(f"{question} {name}")
        text = texts[0]
        others = [t for t in dict.fromkeys(texts[1:]) if t != text]
    else:
        text = question
    used = []
    prior: dict[str, float] = {}
    for age, turn in enumerate(reversed(recent)):
        number = len(turns) - 1 - age
        if not turn.answers and not entities(turn.read_as):
            continue
        used.append(number)
        for a in turn.answers:
            prior.setdefault(a.article_id, folding.fade**age)
    seen = tuple(
        a.text for t in recent for a in (t.answers[:1] if folding.seen_first else t.answers)
    )
    return Reading(
        text=text,
        asked=question,
        context_used=tuple(sorted(used)),
        prior=prior,
        seen=seen,
        # one reading only: nothing to check it against
        sure=sure or text == question or (bool(others) and not folding.asked_too),
        others=tuple(others),
    )
