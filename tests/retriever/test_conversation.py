"""Conversations: follow-ups read in the light of the turns before, over a tiny store embedded
by the deterministic bag-of-words embedder (no model load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retriever.conversation import (
    Conversation,
    Folding,
    Turn,
    TurnSentence,
    entities,
    read_in_context,
)
from retriever.errors import BadQuestionError, EvalDataError
from retriever.retriever import Retriever
from store.db import Store
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder

OLSEN = (
    "Maria Olsen was born in Harwick in 1971.\n\n"
    "Olsen studied engineering in Delft before coming home.\n\n"
    "The town library opened a new wing on Monday."
)
GRANT = (
    "Peter Grant was born in Leiden in 1969.\n\n"
    "Grant studied engineering in Leiden and stayed there.\n\n"
    "The island ferry resumed sailing in April."
)


@pytest.fixture
def retriever(tmp_path: Path) -> Retriever:
    embedder = HashingEmbedder()
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest(
        [
            RawArticle(key="grant", title="Peter Grant", text=GRANT, pre_cleaned=True),
            RawArticle(key="olsen", title="Maria Olsen", text=OLSEN, pre_cleaned=True),
        ]
    )
    return Retriever(store, embedder, tmp_path / "index")


def _turn(question: str, *answers: tuple[str, str], understood: str = "") -> Turn:
    return Turn(
        question=question,
        understood=understood,
        answers=tuple(TurnSentence(text=t, article_id=a) for t, a in answers),
    )


def test_entities_are_names_without_question_words_or_possessives() -> None:
    assert entities("Who is Khalifa Hafter?") == ["Khalifa Hafter"]
    assert entities("What has Khalifa Hafter's army received from Russia?") == [
        "Khalifa Hafter",
        "Russia",
    ]
    assert entities("What did the University of Chicago found in 1890?") == [
        "University of Chicago"
    ]
    assert entities("And in 2019?") == []  # a year is the question's own detail
    assert entities("What did it build?") == []


def test_a_pronoun_is_replaced_by_the_name_the_conversation_is_about() -> None:
    history = Conversation(turns=(_turn("Who is Khalifa Hafter?"),))
    reading = read_in_context("What has his army received from Russia?", history)
    assert reading.text == "What has Khalifa Hafter's army received from Russia?"
    assert reading.context_used == (0,)
    # The next one: Hafter came up in both turns, Russia in one; "he" is Hafter.
    history = Conversation(turns=(*history.turns, _turn(reading.asked, understood=reading.text)))
    reading = read_in_context("Whom did he meet in Cairo?", history)
    assert reading.text == "Whom did Khalifa Hafter meet in Cairo?"
    assert reading.context_used == (0, 1)


def test_he_still_means_the_person_after_his_army_was_read_as_the_army() -> None:
    """ "his army" was read as the army the first answer named; the next "he" is the man
    the conversation is about, not the army, and not a name the definition's answer gave."""
    army = "Gen. Khalifa Hafter's Libyan National Army (LNA) was attacked on March 3."
    history = Conversation(turns=(_turn("Who is Khalifa Hafter?", (army, "a")),))
    russia = read_in_context("What has his army received from Russia?", history)
    assert russia.text == "What has the Libyan National Army (LNA) received from Russia?"
    history = Conversation(
        turns=(
            *history.turns,
            _turn(russia.asked, ("His LNA took delivery of jets.", "a"), understood=russia.text),
        )
    )
    cairo = read_in_context("Whom did he meet in Cairo?", history)
    assert cairo.text == "Whom did Khalifa Hafter meet in Cairo?"
    # and a turn read as asked (its pronoun unresolved) still points at him for the next
    met = "He met President Abdel-Fatteh El-Sisi in Cairo."
    history = Conversation(turns=(*history.turns, _turn("Whom did he meet in Cairo?", (met, "a"))))
    assert read_in_context("When did he visit Moscow?", history).text == (
        "When did Khalifa Hafter visit Moscow?"
    )


def test_an_elliptical_question_is_read_with_the_one_before() -> None:
    history = Conversation(turns=(_turn("How many tanks did Russia send in 2018?"),))
    reading = read_in_context("And in 2019?", history)
    assert reading.text == "How many tanks did Russia send in 2018? And in 2019?"
    assert reading.sure


def test_a_question_that_names_its_subject_stands_alone() -> None:
    history = Conversation(turns=(_turn("Who is Khalifa Hafter?", ("Hafter leads the LNA.", "a")),))
    for q in ("What did Tesla say about his father?", "Where was Maria Olsen born?"):
        reading = read_in_context(q, history)
        assert reading.text == q and not reading.folded and not reading.prior
    assert not read_in_context("What did he say?", None).folded
    assert not read_in_context("What did he say?", Conversation()).folded


def test_the_last_answers_articles_are_a_prior_that_fades_per_turn() -> None:
    history = Conversation(
        turns=(
            _turn("Who is Khalifa Hafter?", ("Hafter leads the LNA.", "old")),
            _turn("Where is Tobruk?", ("Tobruk is a port.", "new")),
        )
    )
    reading = read_in_context("What did he say there?", history, Folding(fade=0.5))
    assert reading.prior == {"new": 1.0, "old": 0.5}
    assert read_in_context("What did he say there?", history, Folding(lookback=1)).prior == {
        "new": 1.0
    }


def test_turns_come_from_answers_and_from_their_json(retriever: Retriever) -> None:
    answer = retriever.ask("Where was Maria Olsen born?")
    turn = Turn.of(answer)
    assert turn.question == "Where was Maria Olsen born?"
    assert turn.answers[0].text == answer.answers[0].text
    assert turn.answers[0].article_id == answer.answers[0].article.id
    again = Turn.from_json(answer.to_json_dict())
    assert again.question == turn.question and again.understood == turn.understood
    assert [(a.text, a.article_id, a.title) for a in again.answers] == [
        (a.text, a.article_id, a.title) for a in turn.answers
    ]
    # and as `qabot chat` sends its turns to `qabot serve`
    assert Turn.from_json(turn.model_dump(mode="json")) == turn
    with pytest.raises(BadQuestionError, match="'question'"):
        Turn.from_json({"answers": []})
    with pytest.raises(BadQuestionError, match="answer 1 needs"):
        Turn.from_json({"question": "Who?", "answers": [{"text": "x"}]})


def test_a_follow_up_is_answered_from_the_article_the_conversation_is_about(
    retriever: Retriever,
) -> None:
    # (the bag-of-words embedder's confidences are low: nothing abstains here)
    bare = retriever.ask("Where did she study engineering?", k=1, abstain_below=0.0)
    assert bare.answers[0].article.title == "Peter Grant"  # alone: the wrong person
    answers, conversation = retriever.converse(
        ["Where was Maria Olsen born?", "Where did she study engineering?"],
        k=1,
        abstain_below=0.0,
    )
    follow = answers[1]
    assert follow.answers[0].text == "Olsen studied engineering in Delft before coming home."
    assert follow.context_used == (0,)
    assert follow.understood == "Where did Maria Olsen study engineering?"
    assert follow.to_json_dict()["context_used"] == [0]
    assert len(conversation) == 2 and conversation.turns[1].read_as == follow.understood


def test_without_history_or_after_an_unrelated_one_answers_are_unchanged(
    retriever: Retriever,
) -> None:
    """A question asked with no history, an empty one, or after an unrelated conversation
    (it names its own subject) gets exactly what it gets alone."""
    _, unrelated = retriever.converse(["Where was Peter Grant born?"])
    for q in (
        "Where was Maria Olsen born?",
        "When did the island ferry resume sailing?",
        "What opened on Monday?",
    ):
        alone = retriever.ask(q, k=3)
        for history in (None, Conversation(), unrelated):
            again = retriever.ask(q, k=3, history=history)
            assert again.answers == alone.answers
            assert again.abstained == alone.abstained
            assert again.understood is None and again.context_used == ()
        # and the ranking the benchmark reads, to the last bit
        ranked, reading = retriever.rank_in_context(q, unrelated, depth=10)
        plain = retriever.rank([q], depth=10)[0]
        assert not reading.folded
        assert ranked.positions.tolist() == plain.positions.tolist()
        assert ranked.scores.tobytes() == plain.scores.tobytes()


def test_it_is_tried_as_each_of_the_two_names_and_the_better_answered_is_kept(
    retriever: Retriever,
) -> None:
    """ "it" after a question naming two things may mean either: both readings are ranked
    and the one the articles answer more confidently is kept."""
    history = Conversation(turns=(_turn("Did Maria Olsen ever take the Island Ferry?"),))
    q = "When did it resume sailing in April?"
    reading = read_in_context(q, history)
    assert reading.text == "When did Maria Olsen resume sailing in April?"
    assert reading.others == ("When did Island Ferry resume sailing in April?",)
    answer = retriever.ask(q, k=1, history=history, abstain_below=0.0)
    assert answer.understood == "When did Island Ferry resume sailing in April?"
    assert answer.answers[0].text == "The island ferry resumed sailing in April."
    one = Retriever(
        retriever.store,
        retriever.embedder,
        retriever.snapshots.index_dir,
        folding=Folding(names=1),
    )
    assert one.ask(q, k=1, history=history, abstain_below=0.0).understood != answer.understood
    # "he" or "she" means a person: only the likeliest one is tried
    assert not read_in_context("Where did she study?", history).others


def test_an_unsure_reading_is_kept_only_when_it_is_the_more_confident(
    retriever: Retriever,
) -> None:
    """ "it" in a question that names something may not point back: the question is ranked
    read both ways, and the folded reading must beat the plain one to be kept."""
    _, history = retriever.converse(["Where was Maria Olsen born?"])
    q = "When did it resume sailing in April?"
    kept = retriever.ask(q, k=1, history=history)
    alone = retriever.ask(q, k=1)
    strict = Retriever(
        retriever.store,
        retriever.embedder,
        retriever.snapshots.index_dir,
        folding=Folding(keep_margin=10.0, unsure_prior=False),
    )
    assert strict.ask(q, k=1, history=history).answers == alone.answers
    assert strict.ask(q, k=1, history=history).context_used == ()
    # with no margin the more confident reading wins, whichever it is
    assert kept.answers[0].score >= alone.answers[0].score


def test_cases_with_a_history_are_asked_as_a_conversation_and_reported_apart(
    retriever: Retriever, tmp_path: Path
) -> None:
    from retriever.evaluate import load_cases, run_cases

    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"question": "Where was Peter Grant born?", "expect": ["Leiden in 1969"]}\n'
        '{"history": ["Where was Maria Olsen born?"], "question": "Where did she study '
        'engineering?", "expect": ["Delft"]}\n',
        encoding="utf-8",
    )
    cases = load_cases(path)
    assert cases[1].history == ("Where was Maria Olsen born?",)
    result = run_cases(retriever, cases)
    assert result["answerable"] == 2 and result["hit1"] == 1.0
    assert result["followups"]["answerable"] == 1 and result["followups"]["hit1"] == 1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"history": "Who?", "question": "Why?", "expect": ["x"]}\n', encoding="utf-8")
    with pytest.raises(EvalDataError, match="case 1: 'history' must be a list"):
        load_cases(bad)


def test_the_shipped_conversations_are_valid_follow_ups() -> None:
    from retriever.evaluate import load_cases

    root = Path(__file__).resolve().parents[2] / "samples"
    cases = load_cases(root / "conversations.jsonl")
    assert len(cases) >= 12 and all(c.history for c in cases)
    assert any(not c.answerable for c in cases)
