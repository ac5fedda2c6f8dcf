"""Ingestion of real files into a real Chroma store with the real models: metadata, cleaning, chunk ids,
incremental updates, bad files, the `qa ingest` / `qa status` / `qa ask` commands and settings errors.

Tests that only exercise store mechanics embed with 'use' (the quicker of the two local models here) and
use small corpora built from seed sentences.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

import qa
from qa.chunking import chunk_text, make_splitter
from qa.cli import main
from qa.loading import load_corpus, parse
from qa.store import Store
from qa.text import split_sentences

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
ZH_SEED = "004_af537d319cf6829d.txt"


def seed_sentences(name: str) -> list[str]:
    text = parse((SEEDS / name).read_bytes(), name).text
    return [s.strip() for s in split_sentences(text) if len(s.strip()) > 30]


DELAY_FR = seed_sentences("000_5eaa805196ca9fd9.txt")  # why Sora's release was delayed (fr)
DELAY_AR = seed_sentences("001_63c18d8f06ac5383.txt")
LEAK_FR = seed_sentences("003_2a6568c6f07e6f37.txt")  # the Hugging Face leak (fr)
LAUNCH_ZH = seed_sentences(ZH_SEED)


def write(corpus: Path, name: str, sentences: list[str]) -> Path:
    path = corpus / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(" ".join(sentences) + "\n", encoding="utf-8")
    return path


def with_use(settings: qa.Settings, **changes) -> qa.Settings:
    return settings.replace(**{"embedding": "use", **changes})


def quiet(*_args) -> None:
    pass


def ingest_counting_inputs(settings: qa.Settings, monkeypatch) -> tuple[qa.IngestReport, list[str]]:
    """qa.ingest, and every text the real model was given to embed."""
    from qa.embeddings import LocalEmbedding

    inputs: list[str] = []
    original = LocalEmbedding.encode

    def counting(self, texts, is_query=False):
        inputs.extend(texts)
        return original(self, texts, is_query)

    with monkeypatch.context() as patch:
        patch.setattr(LocalEmbedding, "encode", counting)
        return qa.ingest(settings, progress=quiet), inputs


def chunk_ids_by_source(store: Store) -> dict[str, list[str]]:
    return {source: record.chunk_ids for source, record in store.manifest().items()}


def assert_consistent(store: Store) -> None:
    """The manifest lists exactly the chunks in the store, and every chunk has its sentence vectors."""
    manifest = store.manifest()
    listed = [cid for record in manifest.values() for cid in record.chunk_ids]
    assert len(listed) == len(set(listed))
    assert sorted(store.all_chunk_ids()) == sorted(listed)
    sentences = store.read_sentences(listed) if listed else {"metadatas": []}
    with_sentences = Counter(md["chunk_id"] for md in sentences["metadatas"])
    assert set(with_sentences) == set(listed)
    assert store._get("__sent").count() == sum(with_sentences.values())  # no sentence of a dropped chunk left


# --- the real seeds ----------------------------------------------------------------------------


def test_seed_documents_metadata_and_cleaning(seeded):
    store = Store(seeded)
    manifest = store.manifest()
    assert sorted(manifest) == sorted(p.name for p in SEEDS.glob("*.txt"))
    assert Counter(r.language for r in manifest.values()) == {"fr": 3, "ar": 1, "zh": 1}

    zh = manifest[ZH_SEED]
    assert zh.title == "ChatGPT后 OpenAI推出Sora文本转视频跨时代模型 - 科技时空"
    assert zh.url.startswith("https://www.rfi.fr/")
    assert zh.date == "2024-02-20"
    assert manifest["002_412eb32a65620985.txt"].title == (
        "Comment le nouveau générateur vidéo d’OpenAI, Sora, pourrait changer les vidéos"
    )

    cleaned = {f.source: f.text for f in load_corpus(seeded.corpus_dir, seeded.max_file_bytes).files}
    for source, record in manifest.items():
        # Titles without a feed title line come from the text itself: a heading or the first sentence, cut short.
        assert 0 < len(record.title) <= 100
        assert cleaned[source].startswith(record.title.removesuffix("…"))

    raw_zh = (SEEDS / ZH_SEED).read_text(encoding="utf-8")
    assert "<p>" in raw_zh and "<div" in raw_zh and "feedx" in raw_zh  # so the checks below mean something

    got = store.read_chunks()
    assert sorted(got["ids"]) == sorted(cid for r in manifest.values() for cid in r.chunk_ids)
    for cid, text, md in zip(got["ids"], got["documents"], got["metadatas"]):
        for residue in ("<p>", "<div", "<img", "&nbsp;", "&amp;", "feedx", "获取更多RSS", "<!--", "](http"):
            assert residue not in text, (cid, residue)
        assert text in cleaned[md["source"]], f"chunk {cid} is not a verbatim part of {md['source']}"
        record = manifest[md["source"]]
        assert (md["title"], md["language"], md["url"], md["date"]) == (
            record.title, record.language, record.url, record.date)
    zh_chunks = [t for t, md in zip(got["documents"], got["metadatas"]) if md["source"] == ZH_SEED]
    assert any("OpenAI公司2月15日发布Sora文本转视频模型" in t for t in zh_chunks)


@pytest.fixture(scope="module")
def seeds_use(tmp_path_factory) -> qa.Settings:
    """The seeds ingested a second time, into another store, with another embedding model."""
    base = tmp_path_factory.mktemp("seeds_use")
    shutil.copytree(SEEDS, base / "corpus")
    settings = qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection="seeds-use",
                           embedding="use", mode="offline")
    report = qa.ingest(settings, progress=quiet)
    assert (report.added, report.updated, report.unchanged) == (5, 0, 0)
    return settings


def test_chunk_ids_are_stable_across_stores(seeded, seeds_use):
    first, second = Store(seeded), Store(seeds_use)
    assert chunk_ids_by_source(first) == chunk_ids_by_source(second)
    ids = [cid for r in first.manifest().values() for cid in r.chunk_ids]
    assert first.read_chunks(ids)["documents"] == second.read_chunks(ids)["documents"]
    assert_consistent(second)


def test_second_ingestion_embeds_nothing(seeds_use):
    store = Store(seeds_use)
    before = chunk_ids_by_source(store)
    report = qa.ingest(seeds_use, progress=quiet)
    assert report.embedded_texts == 0
    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 0, 5, 0)
    assert (report.chunks_added, report.chunks_removed) == (0, 0)
    assert report.documents_total == 5 and report.chunks_total == store.count()
    assert chunk_ids_by_source(store) == before


# --- incremental updates on a small corpus -----------------------------------------------------


@pytest.fixture
def small(fresh) -> qa.Settings:
    corpus = fresh.corpus_dir
    write(corpus, "a.txt", DELAY_FR[:4])
    write(corpus, "b.txt", DELAY_FR[4:8])
    write(corpus, "sub/c.txt", DELAY_AR[:4])
    settings = with_use(fresh)
    report = qa.ingest(settings, progress=quiet)
    assert (report.added, report.documents_total) == (3, 3)
    return settings


def test_changed_file_replaces_only_its_chunks(small):
    store = Store(small)
    before = chunk_ids_by_source(store)
    # Prepending changes the first chunk whatever the chunk size; appending lengthens the file.
    write(small.corpus_dir, "b.txt", LEAK_FR[8:9] + DELAY_FR[4:8] + LEAK_FR[:8])

    report = qa.ingest(small, progress=quiet)

    assert (report.added, report.updated, report.unchanged, report.removed) == (0, 1, 2, 0)
    after = chunk_ids_by_source(store)
    assert after["a.txt"] == before["a.txt"] and after["sub/c.txt"] == before["sub/c.txt"]
    cleaned = parse((small.corpus_dir / "b.txt").read_bytes(), "b.txt").text
    chunks = chunk_text("b.txt", cleaned, make_splitter(small.chunk_size, small.chunk_overlap))
    expected = [c.id for c in chunks]
    assert after["b.txt"] == expected and len(expected) > len(before["b.txt"])
    stale = set(before["b.txt"]) - set(expected)
    assert stale and not store.existing_chunk_ids(sorted(stale))
    assert report.chunks_removed == len(stale)
    # Only b's new chunks (and their sentences) were embedded.
    fresh = [c for c in chunks if c.id not in before["b.txt"]]
    assert report.chunks_added == len(fresh)
    assert report.embedded_texts == len({t for c in fresh for t in (c.text, *c.sentences)})  # each text once
    assert_consistent(store)
    texts = store.read_chunks(after["b.txt"])["documents"]
    assert any(LEAK_FR[0] in t for t in texts)


def test_deleted_file_leaves_store_and_manifest(small):
    store = Store(small)
    gone = chunk_ids_by_source(store)["sub/c.txt"]
    (small.corpus_dir / "sub" / "c.txt").unlink()

    report = qa.ingest(small, progress=quiet)

    assert (report.removed, report.unchanged, report.chunks_removed) == (1, 2, len(gone))
    assert "sub/c.txt" not in store.manifest()
    assert not store.existing_chunk_ids(gone)
    assert not store.read_sentences(gone)["ids"]
    assert report.documents_total == 2 and store.count() == report.chunks_total
    assert_consistent(store)
    assert "sub/c.txt" not in qa.QAEngine(small).stats().titles


def test_bad_files_are_skipped_by_name(small):
    corpus = small.corpus_dir
    (corpus / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00 not text \x00\x01\x02" * 20)
    (corpus / "latin1.txt").write_bytes("Le café de l'été coûte très cher à Paris.".encode("latin-1"))
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.md").write_text("  \n\n \t\n", encoding="utf-8")
    (corpus / "tags-only.html").write_text("<html><body><div><br></div></body></html>", encoding="utf-8")
    (corpus / ".hidden.txt").write_text(" ".join(LEAK_FR[:2]), encoding="utf-8")
    (corpus / "notes.pdf").write_bytes(b"%PDF-1.4 whatever")
    write(corpus, "good.md", LAUNCH_ZH[2:6])
    # A file that was ingested and then got damaged keeps its previous version and is reported.
    kept = chunk_ids_by_source(Store(small))["a.txt"]
    (corpus / "a.txt").write_bytes(b"\x00" * 64)

    report = qa.ingest(small, progress=quiet)

    skipped = {s.source: s.reason for s in report.skipped}
    assert set(skipped) == {"binary.txt", "latin1.txt", "empty.txt", "blank.md", "tags-only.html", "notes.pdf", "a.txt"}
    assert "binary" in skipped["binary.txt"] and "binary" in skipped["a.txt"]
    assert skipped["notes.pdf"].startswith("not a readable PDF (")
    assert "UTF-8" in skipped["latin1.txt"]
    assert "empty" in skipped["empty.txt"] and "empty" in skipped["blank.md"]
    assert (report.added, report.updated, report.unchanged, report.removed) == (1, 0, 2, 0)
    manifest = Store(small).manifest()
    assert sorted(manifest) == ["a.txt", "b.txt", "good.md", "sub/c.txt"]
    assert manifest["good.md"].language == "zh"
    assert manifest["a.txt"].chunk_ids == kept
    for name in skipped:
        assert name in report.summary()


def test_changed_chunking_rechunks_every_document(small):
    store = Store(small)
    before = chunk_ids_by_source(store)
    smaller = small.replace(**{"chunk_size": 48, "chunk_overlap": 8})

    report = qa.ingest(smaller, progress=quiet)

    assert (report.updated, report.unchanged) == (3, 0)
    after = chunk_ids_by_source(store)
    assert all(len(after[s]) > len(before[s]) for s in before)
    assert store.info()["qa_chunk_size"] == 48
    assert_consistent(store)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(fresh, monkeypatch) -> qa.Settings:
    corpus = fresh.corpus_dir
    write(corpus, "fr.txt", LEAK_FR[:4])
    write(corpus, "ar.txt", DELAY_AR[:3])
    write(corpus, "zh.txt", LAUNCH_ZH[2:5])
    for key, value in {
        "QA_CORPUS_DIR": str(corpus),
        "QA_PERSIST_DIR": str(fresh.persist_dir),
        "QA_COLLECTION": "cli-test",
        "QA_EMBEDDING": "use",
        "QA_MODE": "offline",
    }.items():
        monkeypatch.setenv(key, value)
    return qa.load_settings()


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_ingest_status_ask(cli_env, capsys):
    assert main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert f"store: {cli_env.persist_dir}" in out
    assert "3 added, 0 updated, 0 unchanged, 0 removed (3 in the store)" in out

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "documents:  3" in out
    assert "languages:  ar (1), fr (1), zh (1)" in out
    assert f"chunks:     {Store(cli_env).count()}" in out

    assert main(["status", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] == 3 and stats["languages"] == {"fr": 1, "ar": 1, "zh": 1}

    assert main(["ingest"]) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out

    assert main(["ask", "Qui", "a", "divulgué", "l'accès", "au", "modèle", "Sora", "sur", "Hugging", "Face", "?"]) == 0
    out = capsys.readouterr().out
    assert "Sources:" in out and "(fr.txt, fr)" in out

    for blank in ("", "   \t "):
        assert main(["ask", blank]) == 1
        assert "empty" in one_error_line(capsys)


def test_cli_on_a_missing_store(cli_env, capsys):
    for argv in (["ask", "Pourquoi Sora est-il en retard ?"], ["status"]):
        assert main(argv) == 1
        line = one_error_line(capsys)
        assert "run `qa ingest`" in line and str(cli_env.persist_dir) in line


# --- settings ----------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("QA_CHUNK_SIZE", "5", "chunk_size"),
    ("QA_CHUNK_SIZE", "many", "chunk_size"),
    ("QA_TOP_K", "0", "top_k"),
    ("QA_CHROMA_PORT", "70000", "chroma_port"),
    ("QA_EMBEDDING", "bert", "embedding"),
    ("QA_COLLECTION", "a/b", "collection"),
    ("QA_CHUNK_OVERLAP", "160", "chunk_overlap"),
]


@pytest.mark.parametrize("env, value, field", BAD_SETTINGS)
def test_bad_setting_names_field_and_variable(env, value, field, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("QA_PERSIST_DIR", str(tmp_path / "store"))
    monkeypatch.setenv(env, value)
    with pytest.raises(qa.ConfigError) as err:
        qa.load_settings()
    message = str(err.value)
    assert "\n" not in message
    assert env in message and field in message, message

    assert main(["status"]) == 1
    line = one_error_line(capsys)
    assert env in line
    assert not (tmp_path / "store").exists()  # refused before touching the store


# --- each distinct text is embedded once ----------------------------------------------------------


def test_repeated_sentences_are_embedded_once_with_the_same_vectors(fresh, monkeypatch):
    """Overlapping chunks, a repeated paragraph, a one-sentence chunk and a sentence shared by two files:
    the real model sees each distinct text once, and what is stored is what encoding it alone gives."""
    from qa.embeddings import USEEmbedding
    from qa.ingest import GROUP_TEXTS

    settings = with_use(fresh, chunk_size=48, chunk_overlap=16)
    corpus = settings.corpus_dir
    write(corpus, "a.txt", DELAY_FR[:6] + DELAY_FR[:6] + DELAY_FR[6:8])  # a paragraph twice
    write(corpus, "b.txt", DELAY_FR[2:3])  # one chunk of one sentence, also a sentence of a.txt
    write(corpus, "c.txt", LEAK_FR[:3] + DELAY_FR[7:8])
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    chunks = [c for f in load_corpus(corpus, settings.max_file_bytes).files for c in chunk_text(f.source, f.text, splitter)]
    every = [t for c in chunks for t in (c.text, *c.sentences)]
    distinct = set(every)
    assert len(every) - len(distinct) >= 5  # the corpus repeats itself, or the test proves nothing

    report, inputs = ingest_counting_inputs(settings, monkeypatch)
    assert sorted(inputs) == sorted(distinct)  # every text, each once
    assert report.embedded_texts == len(distinct) and report.chunks_added == len(chunks)
    assert len(distinct) < GROUP_TEXTS  # one group: one call for the three files
    store = Store(settings)
    assert_consistent(store)

    model = USEEmbedding()
    ids = [c.id for c in chunks]
    stored = store._get().get(ids=ids, include=["embeddings", "documents"])
    for text, vector in zip(stored["documents"], stored["embeddings"]):
        assert abs(model.encode([text])[0] - vector).max() < 1e-5
    sentences = store._get("__sent").get(include=["embeddings", "documents"])
    assert len(sentences["ids"]) == sum(len(c.sentences) for c in chunks)  # rows as before, one per sentence
    for text, vector in zip(sentences["documents"], sentences["embeddings"]):
        assert abs(model.encode([text])[0] - vector).max() < 1e-5


def test_vector_cache_is_bounded_and_keeps_what_the_group_needs():
    from qa.embeddings import USEEmbedding
    from qa.ingest import VectorCache

    model, cache = USEEmbedding(), VectorCache(limit=3)
    assert cache.embed(model, ["one", "two", "three", "two"]) == 3
    assert cache.embed(model, ["one", "four", "five"]) == 2  # "one" is cached; the oldest others go
    assert "one" in cache and "four" in cache and "five" in cache and "two" not in cache
    assert abs(model.encode(["one"])[0] - cache["one"]).max() < 1e-6


def test_pooled_chunk_vectors_embed_only_sentences_and_store_their_weighted_mean(fresh, monkeypatch):
    """settings.chunk_vectors='pooled': no chunk text goes through the model; each chunk's vector is the
    token-weighted mean of its sentences' vectors, normalised; switching the setting re-embeds every document."""
    import numpy as np

    from qa.embeddings import USEEmbedding
    from qa.text import count_tokens

    settings = with_use(fresh, chunk_size=48, chunk_overlap=16, chunk_vectors="pooled")
    write(settings.corpus_dir, "a.txt", DELAY_FR[:7])
    write(settings.corpus_dir, "b.txt", LEAK_FR[:4])
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    chunks = [c for f in load_corpus(settings.corpus_dir, settings.max_file_bytes).files
              for c in chunk_text(f.source, f.text, splitter)]
    assert any(len(c.sentences) > 1 for c in chunks)  # or the mean proves nothing
    report, inputs = ingest_counting_inputs(settings, monkeypatch)
    sentences = {s for c in chunks for s in c.sentences}
    assert set(inputs) == sentences and report.embedded_texts == len(sentences)
    store = Store(settings)
    assert_consistent(store)
    model = USEEmbedding()
    stored = store._get().get(ids=[c.id for c in chunks], include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"]))
    for c in chunks:
        vectors = model.encode(c.sentences)
        mean = np.average(vectors, axis=0, weights=[count_tokens(s) for s in c.sentences])
        assert np.abs(mean / np.linalg.norm(mean) - by_id[c.id]).max() < 1e-5
        assert abs(np.linalg.norm(by_id[c.id]) - 1) < 1e-5

    assert qa.ingest(settings.replace(chunk_vectors="encoded"), progress=quiet).updated == 2


def test_pool_keeps_each_models_part_at_its_share_of_the_norm():
    import numpy as np

    from qa.embeddings import CombinedEmbedding

    model = CombinedEmbedding()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, model.dim)).astype(np.float32)
    pooled = model.pool(vectors, [1, 2, 3])
    head = model.part_dims[0]
    for part in (pooled[:head], pooled[head:]):  # as encode() returns them: each model's unit vector / sqrt(2)
        assert abs(np.linalg.norm(part) - 1 / np.sqrt(2)) < 1e-6
    direction = np.average(vectors[:, :head], axis=0, weights=[1, 2, 3])
    assert np.abs(pooled[:head] - direction / np.linalg.norm(direction) / np.sqrt(2)).max() < 1e-6
