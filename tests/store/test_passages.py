"""The packing stage alone: sentences into passages that fit the model's window, no model."""

from store.text.clean import clean_text
from store.text.passages import pack


def _count(texts: list[str]) -> list[int]:
    # One word piece a word, plus [CLS] and [SEP], as a tokenizer counts them.
    return [len(t.split()) + 2 for t in texts]


def test_every_passage_fits_the_window_and_keeps_its_sentences_whole() -> None:
    para = " ".join(f"Sentence number {i} has exactly seven words." for i in range(10))
    cleaned = clean_text(para + "\n\n" + "A second paragraph stands on its own here.", title="T")
    sentences, passages = pack(
        cleaned.text, cleaned.paragraphs, cleaned.sentences, "T", budget=20, count_tokens=_count
    )
    assert len(sentences) == 11
    for p in passages:
        assert len(p.text.split()) + 2 <= 20
        members = sentences[p.first : p.last + 1]
        assert p.text == cleaned.text[members[0].start : members[-1].end]
        assert all(s.passage == passages.index(p) for s in members)
    # A passage never spans two paragraphs: the last sentence has one of its own.
    assert passages[-1].text == "A second paragraph stands on its own here."
    assert sentences[0].embedded == "T\n" + cleaned.text[sentences[0].start : sentences[0].end]


def test_a_sentence_longer_than_the_window_is_cut_at_spaces_not_dropped() -> None:
    long = " ".join(f"word{i}" for i in range(100)) + "."
    cleaned = clean_text(long, title="T", header=False)
    sentences, passages = pack(
        cleaned.text, cleaned.paragraphs, cleaned.sentences, "T", budget=30, count_tokens=_count
    )
    assert len(sentences) > 1
    pieces = [cleaned.text[s.start : s.end] for s in sentences]
    assert " ".join(pieces).split() == long.split()  # every word kept, in order
    assert all(len(p.split()) + 2 <= 30 for p in pieces)
    assert all(len(p.text.split()) + 2 <= 30 for p in passages)
