"""Document management and retrieval filters, on real Chroma stores with the real models.

The listing (`QAEngine.documents()`, `qa documents`), removal (`QAEngine.remove`, `qa.remove_documents`,
`qa remove`, the page's Remove button and /remove) including interrupted removals, and the `sources=` /
`languages=` filters on every retrieval path (dense, sentence, lexical), in the API, the CLI and the UI.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_ingest import assert_consistent

import qa
from qa.cli import main
from qa.retrievers import DenseRetriever, LexicalRetriever, SentenceRetriever
from qa.snapshot import Snapshot
from qa.store import DocRecord, Store

from conftest import free_port, serve

ZH = "004_af537d319cf6829d.txt"
LEAK = "003_2a6568c6f07e6f37.txt"  # the Hugging Face leak (fr)
DELAY_AR = "001_63c18d8f06ac5383.txt"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def copy_store(seeded: qa.Settings, base: Path) -> qa.Settings:
    """A private, writable copy of the seeded corpus and store (the same real index, without re-embedding)."""
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    return qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                       mode="offline")


@pytest.fixture
def copied(seeded, tmp_path) -> qa.Settings:
    return copy_store(seeded, tmp_path)


def visible_sources(engine: qa.QAEngine) -> set[str]:
    return {md["source"] for md in engine.snapshot.metadatas.values()}


# --- the document list ---------------------------------------------------------------------------------


def test_documents_lists_the_seeds(engine, seeded):
    docs = engine.documents()
    assert [d.source for d in docs] == sorted(p.name for p in Path(seeded.corpus_dir).glob("*.txt"))
    assert Counter(d.language for d in docs) == {"fr": 3, "ar": 1, "zh": 1}
    manifest = Store(seeded).manifest()
    for d in docs:
        assert d.chunks == len(manifest[d.source].chunk_ids) > 0
        assert d.title == manifest[d.source].title and d.title
        assert ISO.fullmatch(d.ingested_at), d.ingested_at
        assert d.file == d.source
    assert qa.list_documents(seeded) == docs
    assert engine.languages() == ["ar", "fr", "zh"]


def test_a_manifest_without_ingestion_time_still_loads():
    record = DocRecord.from_record("old.txt", {"file_hash": "h", "signature": "s", "title": "T", "language": "en",
                                               "url": "", "date": "", "chunk_ids": '["a", "b"]'})
    assert record.ingested_at == "" and record.chunk_ids == ["a", "b"]
    assert "ingested_at" in record.metadata()


# --- filters -------------------------------------------------------------------------------------------


def test_language_filter_restricts_retrieval_and_answers(engine):
    hits = engine.retrieve("Why was Sora's release delayed?", languages=["zh"])
    assert hits and {h.language for h in hits} == {"zh"} and {h.source for h in hits} == {ZH}
    hits = engine.retrieve("Why was Sora's release delayed?", top_k=8, languages=["ar", "zh"])
    assert hits and {h.language for h in hits} <= {"ar", "zh"}
    answer = engine.ask("Why was Sora's release delayed?", languages=["ar"])
    assert answer.citations and {c.source for c in answer.citations} == {DELAY_AR}
    assert {s.source for s in answer.sources} == {DELAY_AR}


def test_source_filter_on_every_retrieval_path(engine, seeded):
    p = engine.pipeline
    question = "Who leaked access to Sora on Hugging Face?"
    unfiltered = p.analyzer.analyse(question)
    # With one candidate each, the unfiltered hits are not from the Chinese article: a filter applied
    # after the top n would leave nothing for it.
    retrievers = [DenseRetriever(p.store, p.snapshot, p.analyzer, 1),
                  SentenceRetriever(p.store, p.snapshot, p.analyzer, 1),
                  LexicalRetriever(p.store, p.snapshot, p.analyzer, 1)]
    for r in retrievers:
        hits = r.search(unfiltered)
        assert hits and ZH not in {h.node.metadata["source"] for h in hits}, r.name
    query = p.analyzer.analyse(question, sources=[ZH])
    assert query.allowed == {ZH}
    for r in retrievers + [r for r, _ in p.retriever.retrievers]:
        hits = r.search(query)
        assert hits, f"{r.name} found nothing in the filtered document"
        assert {h.node.metadata["source"] for h in hits} == {ZH}, r.name
    assert {n.node.metadata["source"] for n in p.retriever.search(query)} == {ZH}

    # A path in the corpus (absolute or relative to it) names the same document as its file name.
    for name in (str(Path(seeded.corpus_dir) / ZH), f"./{ZH}"):
        assert {h.source for h in engine.retrieve(question, sources=[name])} == {ZH}
    # Both filters: documents matching both.
    assert {h.source for h in engine.retrieve(question, sources=[ZH, LEAK], languages=["fr"])} == {LEAK}
    answer = engine.ask(question, sources=[ZH])
    assert {c.source for c in answer.citations} <= {ZH}
    # stream takes the filters too, after the positional arguments it always had.
    final = list(engine.stream(question, None, 3, sources=[LEAK]))[-1]
    assert final.citations and {c.source for c in final.citations} == {LEAK}


def test_overview_answers_only_quote_the_filtered_documents(engine):
    answer = engine.ask("Summarize the articles", languages=["fr"])
    assert answer.citations and {c.language for c in answer.citations} == {"fr"}


def test_unknown_filter_values_are_refused_with_the_valid_ones(engine):
    with pytest.raises(qa.ConfigError, match=r"unknown source 'nope\.txt'; the corpus has: 000_5eaa805196ca9fd9\.txt, "
                                             r"001_63c18d8f06ac5383\.txt, .*004_af537d319cf6829d\.txt"):
        engine.retrieve("Sora", sources=["nope.txt"])
    with pytest.raises(qa.ConfigError, match=r"unknown language 'de'; the corpus has: ar, fr, zh"):
        engine.ask("Sora", languages=["de"])
    with pytest.raises(qa.ConfigError, match="unknown language 'xx'"):
        list(engine.stream("Sora", languages=["fr", "xx"]))
    with pytest.raises(qa.ConfigError, match="sources must be a list of names"):
        engine.retrieve("Sora", sources=[3])
    with pytest.raises(qa.ConfigError, match="no document is both among"):
        engine.retrieve("Sora", sources=[ZH], languages=["fr"])
    # Empty selections mean no filter.
    assert len({h.source for h in engine.retrieve("Sora", top_k=10, sources=[], languages=None)}) > 1


# --- removal -------------------------------------------------------------------------------------------


def test_remove_makes_a_document_unanswerable_and_frees_its_chunks(copied, engine):
    app = qa.QAEngine(copied, embed_model=engine.embed_model)
    store = app.store
    record = store.manifest()[LEAK]
    before = (store.count(), store._get("__sent").count(), len(app.snapshot.lexical))
    assert any(cid in record.chunk_ids for cid, _, _ in app.snapshot.lexical.search(["hugging", "face"], 50))
    question = "Qui a divulgué l'accès au modèle Sora sur Hugging Face ?"
    assert app.ask(question).citations[0].source == LEAK

    report = app.remove([LEAK])
    assert report.removed == [LEAK] and report.chunks_removed == len(record.chunk_ids) and not report.missing
    assert report.summary() == f"removed 1 document ({len(record.chunk_ids)} chunks): {LEAK}"
    assert not (Path(copied.corpus_dir) / LEAK).exists()
    store = app.store  # refreshed
    assert store.count() == before[0] - len(record.chunk_ids)
    assert store._get("__sent").count() < before[1]
    assert not store.read_sentences(record.chunk_ids)["ids"]
    assert len(app.snapshot.lexical) == before[2] - len(record.chunk_ids)
    assert not any(cid in record.chunk_ids for cid, _, _ in app.snapshot.lexical.search(["hugging", "face"], 50))
    assert_consistent(store)
    assert LEAK not in {d.source for d in app.documents()} and len(app.documents()) == 4
    assert all(s.source != LEAK for s in app.retrieve(question, top_k=10))
    assert all(c.source != LEAK for c in app.ask(question).citations)
    with pytest.raises(qa.ConfigError, match=f"unknown source '{LEAK}'"):
        app.retrieve(question, sources=[LEAK])
    # The next ingestion does not bring it back.
    assert qa.ingest(copied, embed_model=engine.embed_model, progress=lambda *a: None).added == 0
    # Unknown names: strict removes nothing and lists the index; lenient reports them.
    with pytest.raises(qa.ConfigError, match=r"unknown document 'gone\.txt'; the index has: 000_"):
        qa.remove_documents(copied, [ZH, "gone.txt"], strict=True)
    assert ZH in Store(copied).manifest()
    assert qa.remove_documents(copied, ["gone.txt"]).missing == ["gone.txt"]


class Crash(RuntimeError):
    pass


def crash(*_args, **_kwargs):
    raise Crash("killed here")


def test_removal_interrupted_after_the_manifest_is_invisible_and_the_next_sync_cleans_up(copied, engine, monkeypatch):
    reader = qa.QAEngine(copied, embed_model=engine.embed_model)
    chunks = Store(copied).manifest()[LEAK].chunk_ids
    monkeypatch.setattr(Store, "delete_chunks", crash)  # dies between the manifest update and the deletes
    with pytest.raises(Crash):
        qa.remove_documents(copied, [LEAK])
    monkeypatch.undo()

    assert reader.refresh()
    store = reader.store
    assert LEAK not in store.manifest()
    assert store.count() > sum(len(r.chunk_ids) for r in store.manifest().values())  # left behind, unlisted
    assert LEAK not in visible_sources(reader) and not set(chunks) & set(reader.snapshot.texts)
    assert LEAK not in {d.source for d in reader.documents()}
    hits = reader.retrieve("Qui a divulgué l'accès au modèle Sora sur Hugging Face ?", top_k=10)
    assert hits and all(h.source != LEAK for h in hits)

    report = qa.ingest(copied, embed_model=engine.embed_model, progress=lambda *a: None)
    assert (report.added, report.removed) == (0, 0)
    assert_consistent(Store(copied))


def test_removal_interrupted_before_the_manifest_keeps_the_document_whole(copied, engine, monkeypatch):
    monkeypatch.setattr(Store, "forget_document", crash)  # the file is gone, the index not touched yet
    with pytest.raises(Crash):
        qa.remove_documents(copied, [LEAK])
    monkeypatch.undo()

    store = Store(copied)
    record = store.manifest()[LEAK]
    assert_consistent(store)
    snapshot = Snapshot.load(store)
    assert {cid for cid, md in snapshot.metadatas.items() if md["source"] == LEAK} == set(record.chunk_ids)
    # The file went first, so the next ingestion completes the removal.
    report = qa.ingest(copied, embed_model=engine.embed_model, progress=lambda *a: None)
    assert report.removed == 1 and LEAK not in Store(copied).manifest()
    assert_consistent(Store(copied))


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(copied, monkeypatch) -> qa.Settings:
    for key, value in {"QA_CORPUS_DIR": str(copied.corpus_dir), "QA_PERSIST_DIR": str(copied.persist_dir),
                       "QA_COLLECTION": copied.collection, "QA_MODE": "offline"}.items():
        monkeypatch.setenv(key, value)
    return copied


def test_cli_documents_remove_and_filtered_ask(cli_env, capsys):
    assert main(["documents"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["TITLE", "FILE", "LANG", "CHUNKS", "INGESTED"]
    assert len(out) == 7 and out[-1].startswith("5 documents, ")
    zh_line = next(line for line in out if ZH in line)
    assert "ChatGPT后 OpenAI推出Sora" in zh_line and " zh " in zh_line and ISO.search(zh_line)

    assert main(["documents", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["source"] for d in listed} >= {ZH, LEAK} and all(d["chunks"] > 0 for d in listed)
    assert set(listed[0]) >= {"title", "source", "file", "language", "chunks", "ingested_at"}

    assert main(["remove", "nope.txt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown document 'nope.txt'; the index has: 000_")
    assert main(["remove", str(Path(cli_env.corpus_dir) / LEAK)]) == 0
    assert capsys.readouterr().out.strip().startswith("removed 1 document (") and LEAK not in Store(
        cli_env).manifest()

    assert main(["ask", "--language", "zh", "Sora 可以生成多长的视频？"]) == 0
    out = capsys.readouterr().out
    cited = re.findall(r"^\[\d+\] .* \((\S+), (\w+)\)$", out, re.M)
    assert cited and set(cited) == {(ZH, "zh")}, out
    assert main(["ask", "Why", "was", "Sora", "delayed?", "--source", DELAY_AR, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["citations"] and {c["source"] for c in answer["citations"]} == {DELAY_AR}
    assert main(["ask", "--language", "de", "Why?"]) == 1
    assert "unknown language 'de'; the corpus has: ar, fr, zh" in capsys.readouterr().err


# --- the web UI ------------------------------------------------------------------------------------------


def test_document_list_escapes_titles():
    from qa.documents import CorpusDocument
    from qa.render import render_documents_html

    html = render_documents_html([CorpusDocument("a<b>.txt", "<script>x</script>", "en", 2, "")])
    assert "<script>" not in html and "&lt;script&gt;" in html and "a&lt;b&gt;.txt" in html


@pytest.mark.slow
def test_ui_lists_filters_and_removes_documents(copied, engine):
    from gradio_client import Client

    from qa.render import esc

    settings = copied.replace(port=free_port())
    with serve(settings, engine.embed_model) as (url, _, app_engine, demo):
        client = Client(url, verbose=False, download_files=False)
        listed = client.predict(api_name="/documents")
        assert len(listed) == 5 and all(d["chunks"] > 0 for d in listed)

        # The filtered routes take two more inputs; /ask and /chat keep their two.
        unfiltered = client.predict("Why was Sora's release delayed?", None, api_name="/ask")
        assert unfiltered["citations"]
        zh = client.predict("Sora 可以生成多长的视频？", None, None, ["zh"], api_name="/ask_filtered")
        assert zh["citations"] and {c["source"] for c in zh["citations"]} == {ZH}
        final = client.predict("Who leaked access to Sora?", [], [LEAK], None, api_name="/chat_filtered")
        assert final["done"] and {c["source"] for c in final["citations"]} == {LEAK}
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="unknown language 'de'; the corpus has: ar, fr, zh"):
            client.predict("Why?", None, None, ["de"], api_name="/ask_filtered")

        # The browser chat handler applies the selections too.
        steps = list(demo.qa_ui.respond("Why was Sora's release delayed?", [], [], [], ["ar"]))
        turn = steps[-1][3][-1]
        assert turn.answer.citations and {c.source for c in turn.answer.citations} == {DELAY_AR}

        message, status, docs_html, *_ = client.predict([LEAK], api_name="/remove_selected")
        assert "Removed 1 document" in message and LEAK in message
        assert 'class="qa-docs">4<' in status and LEAK not in docs_html and ZH in docs_html
        assert len(client.predict(api_name="/documents")) == 4
        assert LEAK not in {d.source for d in app_engine.documents()}
        answer = client.predict("Qui a divulgué l'accès au modèle Sora sur Hugging Face ?", None, api_name="/ask")
        assert all(c["source"] != LEAK for c in answer["citations"])

        with pytest.raises(AppError, match="not in the list of choices"):  # the selection offers only documents
            client.predict(["nope.txt"], api_name="/remove_selected")
        assert esc("Nothing was removed: unknown source 'nope.txt'") in demo.qa_ui.remove_selected(["nope.txt"])[0]
        rest = [d["source"] for d in client.predict(api_name="/documents")]
        message = client.predict(rest, api_name="/remove_selected")[0]
        assert "keep at least one" in message and len(app_engine.documents()) == 4
        assert len(Store(settings).manifest()) == 4
