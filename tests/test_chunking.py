"""Chunking: sentence-aligned chunks of every script, verbatim sentences, stable content ids."""

from __future__ import annotations

from qa.chunking import chunk_id, chunk_text, make_splitter
from qa.text import count_tokens

FR = " ".join(f"Phrase numéro {i} sur le modèle Sora d'OpenAI et ses vidéos." for i in range(40))
AR = " ".join(f"هذه الجملة رقم {i} عن نموذج Sora من OpenAI؟" for i in range(40))
ZH = "".join(f"这是关于Sora模型的第{i}句话。" for i in range(60))


def test_chunks_respect_the_size_and_hold_whole_sentences():
    splitter = make_splitter(64, 8)
    for text in (FR, AR, ZH):
        chunks = chunk_text("a.txt", text, splitter)
        assert len(chunks) > 2
        for c in chunks:
            assert count_tokens(c.text) <= 64
            assert c.sentences and all(s in c.text for s in c.sentences)
            assert c.text in text  # a chunk is a verbatim span of the document
        ends = {c.text[-1] for c in chunks}
        assert ends <= {".", "؟", "。"}, ends


def test_consecutive_chunks_overlap():
    chunks = chunk_text("a.txt", FR, make_splitter(64, 16))
    assert any(chunks[i].sentences[-1] in chunks[i + 1].text for i in range(len(chunks) - 1))


def test_ids_depend_on_file_and_text_only():
    splitter = make_splitter(64, 8)
    first = [c.id for c in chunk_text("a.txt", FR, splitter)]
    assert first == [c.id for c in chunk_text("a.txt", FR, make_splitter(64, 8))]
    assert set(first).isdisjoint(c.id for c in chunk_text("b.txt", FR, splitter))
    assert chunk_id("a.txt", "x") != chunk_id("a.txt", "x", occurrence=1)


def test_a_repeated_passage_gets_distinct_ids():
    para = "Le même paragraphe, assez long pour remplir un morceau, revient plusieurs fois dans ce fichier de test."
    text = "\n\n".join([para] * 3)
    chunks = chunk_text("a.txt", text, make_splitter(32, 0))
    assert len({c.id for c in chunks}) == len(chunks) == 3
