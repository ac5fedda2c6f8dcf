"""Cleaning and metadata of corpus files."""

import pytest

from qa.chunking import chunk_text, make_splitter
from qa.loading import clean, decode, derive_title, parse


def test_html_in_markdown_is_cleaned_and_metadata_extracted():
    raw = (
        "<!--1708438502000-->\n[Titre &amp; sous-titre](https://www.rfi.fr/cn/x)\n------\n\n"
        "<div>20/02/2024 - 14:53</div><img src=\"https://e/x.jpg\"><p><strong>第一句。</strong></p>"
        "<script>alert(1)</script><p>A&nbsp;b &lt;c&gt;</p><hr><div>获取更多RSS：<br>"
        "<a href=\"https://feedx.net\">https://feedx.net</a></div>"
    )
    text, meta = clean(raw)
    assert meta == {"date": "2024-02-20", "title": "Titre & sous-titre", "url": "https://www.rfi.fr/cn/x"}
    for residue in ("<", "&nbsp;", "&amp;", "feedx", "alert", "------", "RSS"):
        assert residue not in text.replace("<c>", "")
    assert "第一句。" in text and "A b <c>" in text


def test_plain_text_keeps_its_characters_but_loses_boilerplate():
    raw = "Titre court\n\nUne phrase « citée » ici.\n\nPublicité\n\nNous pouvons gagner une commission sur les liens.\nFin."
    text, _ = clean(raw)
    assert "Publicité" not in text and "commission" not in text
    assert "Une phrase « citée » ici." in text


def test_titles():
    assert derive_title("# Heading\nbody") == "Heading"
    assert derive_title("Short title line\n\nBody text. More.") == "Short title line"
    long_first = "Une très longue première phrase qui continue. " * 5
    assert derive_title(long_first).startswith("Une très longue première phrase qui continue.")


@pytest.mark.parametrize(
    "raw, reason",
    [(b"\x00\x01\x02binary", "binary"), (b"caf\xe9 cr\xe8me", "UTF-8"), (b"   \n  ", "empty"), (b"<p></p>", "empty")],
)
def test_unusable_content_is_refused_with_a_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        parse(raw, "x.txt")


def test_bom_and_crlf_are_normalised():
    assert decode("\ufeffa\r\nb".encode("utf-8")) == "a\nb"


def test_chunks_are_verbatim_and_ids_stable(tmp_path):
    from pathlib import Path

    seeds = Path(__file__).resolve().parent.parent / "seeds"
    splitter = make_splitter(160, 24)
    for path in sorted(seeds.iterdir()):
        doc = parse(path.read_bytes(), path.name)
        chunks = chunk_text(doc.source, doc.text, splitter)
        assert chunks, path.name
        for c in chunks:
            assert c.text in doc.text
            assert all(s in c.text for s in c.sentences)
        again = chunk_text(doc.source, doc.text, make_splitter(160, 24))
        assert [c.id for c in again] == [c.id for c in chunks]
        assert len({c.id for c in chunks}) == len(chunks)
