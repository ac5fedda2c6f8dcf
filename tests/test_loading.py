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


# --- PDF and DOCX ---------------------------------------------------------------------------------
# PDFs are written with fpdf2's core Helvetica font, which covers Latin-1 only: the PDF tests are
# French (accents included). Arabic and Chinese are tested through DOCX, which needs no font.

import io  # noqa: E402 - the PDF and DOCX half of this file
import random  # noqa: E402 - the PDF and DOCX half of this file
import zipfile  # noqa: E402 - the PDF and DOCX half of this file

import docx  # noqa: E402 - the PDF and DOCX half of this file
import pypdf  # noqa: E402 - the PDF and DOCX half of this file
from fpdf import FPDF  # noqa: E402 - the PDF and DOCX half of this file

from qa.loading import load_corpus, page_at, parse_docx, parse_pdf, read_file  # noqa: E402 - the PDF and DOCX half of this file
from qa.readers import ENCRYPTED_PDF, NO_TEXT_PDF, unwrap_lines  # noqa: E402 - the PDF and DOCX half of this file

PAGE_1 = (
    "Le conseil municipal a voté le budget de l'année prochaine après un long débat sur les écoles, "
    "les transports et la rénovation de la place du marché.\n\n"
    "La maire a promis une réforme de l'infor-\nmation publique avant l'été."
)
PAGE_2 = "La deuxième page parle des céréales : le prix du blé a augmenté de douze pour cent en un an."
PAGE_4 = "La dernière page résume les décisions prises par les élus."


def make_pdf(pages: list[str | None], title: str = "") -> bytes:
    """One page per entry; None makes a page with a drawing and no text (as a scan would)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text is None:
            pdf.rect(20, 20, 80, 60, style="F")
        else:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def encrypt(raw: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(raw))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str], title: str = "", heading: str = "") -> bytes:
    document = docx.Document()
    document.core_properties.title = title
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_pdf_keeps_pages_title_and_verbatim_text(tmp_path):
    path = tmp_path / "rapport.pdf"
    path.write_bytes(make_pdf([PAGE_1, PAGE_2, None, PAGE_4], title="Rapport du conseil municipal"))
    doc = read_file(path, "rapport.pdf", max_bytes=1_000_000)
    assert doc.title == "Rapport du conseil municipal"
    assert doc.language == "fr"
    # fpdf2 wraps the long sentence: the wrap and the hyphenated break are rejoined. pypdf gives no blank
    # line between paragraphs here, so the paragraph's end stays a single newline.
    assert "sur les écoles, les transports et la rénovation de la place du marché.\nLa maire" in doc.text
    assert "une réforme de l'information publique avant l'été." in doc.text
    # The image-only page 3 has no text and no entry; page 4 keeps its number.
    assert [number for _, number in doc.pages] == [1, 2, 4]
    for start, _ in doc.pages[1:]:
        assert doc.text[start - 2 : start] == "\n\n"
    assert page_at(doc, doc.text.index("le prix du blé")) == 2
    assert page_at(doc, doc.text.index("conseil municipal a voté")) == 1
    assert page_at(doc, doc.text.index("La dernière page")) == 4
    assert page_at(doc, len(doc.text)) is None
    for chunk in chunk_text(doc.source, doc.text, make_splitter(40, 8)):
        assert chunk.text in doc.text


@pytest.mark.parametrize(
    "extracted, tidy",
    [
        (
            "Titre court\nUne ligne assez longue qui a été coupée par\nla mise en page.",
            "Titre court\nUne ligne assez longue qui a été coupée par la mise en page.",
        ),
        ("Une ligne longue avec Jean-\nPierre et une infor-\nmation.", "Une ligne longue avec Jean-Pierre et une information."),
        ("Fin de phrase bien longue ici.\nNouvelle phrase.\n\nParagraphe.",) * 2,
        ("政府宣布了新的经济计划并且\n将于明年开始。", "政府宣布了新的经济计划并且将于明年开始。"),
        ("a  \t b\x00c\r\n", "a bc\n"),
    ],
)
def test_pdf_line_tidy_up(extracted, tidy):
    assert unwrap_lines(extracted) == tidy


def test_pdf_title_falls_back_to_the_text_and_other_formats_have_no_pages():
    junk_title = parse_pdf(make_pdf(["Budget voté\n\n" + PAGE_2], title="Microsoft Word - budget.docx"), "b.pdf")
    assert junk_title.title == "Budget voté"
    assert page_at(parse(b"Un texte.", "a.txt"), 0) is None


def test_pdf_with_empty_user_password_is_read_and_a_real_password_is_refused():
    raw = make_pdf([PAGE_1, PAGE_2])
    doc = parse_pdf(encrypt(raw, ""), "open.pdf")
    assert page_at(doc, doc.text.index("le prix du blé")) == 2
    with pytest.raises(ValueError) as exc:
        parse_pdf(encrypt(raw, "secret"), "locked.pdf")
    assert str(exc.value) == ENCRYPTED_PDF == "encrypted PDF; remove the password and add it again"


def test_bad_pdfs_are_refused_with_one_clear_line(tmp_path):
    valid = make_pdf([PAGE_1, PAGE_2, PAGE_4])
    cases = {
        "scan.pdf": (make_pdf([None, None]), NO_TEXT_PDF),
        "random.pdf": (random.Random(0).randbytes(5000), "not a readable PDF (no %PDF header)"),
        "long.pdf": (valid, "too many pages (3; the limit is 2)"),
        "big.pdf": (valid, f"too large ({len(valid)} bytes; the limit is 2000, QA_MAX_FILE_BYTES)"),
    }
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        limit = 2000 if name == "big.pdf" else 1_000_000
        with pytest.raises(ValueError) as exc:
            read_file(tmp_path / name, name, max_bytes=limit, max_pages=2)
        assert str(exc.value) == message
    assert "no extractable text; scanned PDFs need OCR, which is not included" in NO_TEXT_PDF
    for raw in (valid[: len(valid) // 2], b"%PDF-1.7\n" + random.Random(1).randbytes(3000)):
        with pytest.raises(ValueError, match=r"^not a readable PDF \(.+\)$"):
            parse_pdf(raw, "broken.pdf")


def test_damaged_files_only_ever_raise_value_error():
    """Overwrite every part of a valid file in turn: each result is a document or a ValueError."""
    samples = ((make_pdf([PAGE_1, PAGE_2]), parse_pdf), (make_docx([PAGE_1, PAGE_2]), parse_docx))
    for valid, parse_one in samples:
        step = max(1, len(valid) // 60)
        for i in range(0, len(valid), step):
            damaged = valid[:i] + bytes(64) + valid[i + 64 :]
            try:
                parse_one(damaged, "damaged")
            except ValueError as exc:
                assert "\n" not in str(exc) and str(exc)


def test_docx_text_title_and_languages():
    paragraphs = [
        "Les élections municipales ont eu lieu dimanche dans toute la région.",
        "Le taux de participation était très faible.",
    ]
    french = parse_docx(make_docx(paragraphs, title="Élections municipales"), "fr.docx")
    assert french.text == "\n\n".join(paragraphs)
    assert (french.title, french.language, french.pages) == ("Élections municipales", "fr", [])

    arabic_paragraphs = ["أعلنت الحكومة عن خطة جديدة للاقتصاد.", "وقال الوزير إن الخطة ستبدأ العام المقبل."]
    arabic = parse_docx(make_docx(arabic_paragraphs, heading="خطة اقتصادية"), "ar.docx")
    assert arabic.text.startswith("خطة اقتصادية\n\nأعلنت الحكومة")
    assert (arabic.title, arabic.language) == ("خطة اقتصادية", "ar")

    chinese = parse_docx(make_docx(["政府宣布了新的经济计划。", "部长表示，计划将于明年开始。"], heading="经济计划"), "zh.docx")
    assert chinese.text == "经济计划\n\n政府宣布了新的经济计划。\n\n部长表示，计划将于明年开始。"
    assert (chinese.title, chinese.language) == ("经济计划", "zh")


def test_bad_docx_files_are_refused_with_one_clear_line(tmp_path):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w") as member:  # 60 MB of zeros, streamed
            for _ in range(60):
                member.write(bytes(1_000_000))
    valid = make_docx(["Un paragraphe."])
    cases = {
        "bomb.docx": (bomb.getvalue(), "DOCX rejected: it expands to 60 MB (a zip bomb?)"),
        "dense.docx": (
            zip_bytes({"word/document.xml": bytes(5_000_000)}),
            "DOCX rejected: it expands to 5 MB (a zip bomb?)",
        ),
        "text.docx": (b"Ceci n'est pas un document Word.", "not a DOCX file (not a zip archive)"),
        "other.docx": (zip_bytes({"content.xml": b"<x/>"}), "not a DOCX file (no word/document.xml)"),
        "old.docx": (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
            "not a DOCX file (an old .doc or a password-protected document)",
        ),
        "cut.docx": (valid[: len(valid) // 2], "not a readable DOCX (damaged or truncated zip)"),
    }
    for name, (raw, message) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError) as exc:
            read_file(tmp_path / name, name, max_bytes=1_000_000)
        assert str(exc.value) == message
    with pytest.raises(ValueError, match=r"^not a readable DOCX \(.+\)$"):
        parse_docx(zip_bytes({"word/document.xml": b"<w:document><w:body>"}), "bad.docx")


def test_binary_documents_with_a_text_suffix_are_still_refused_as_binary(tmp_path):
    for name, raw in (("report.txt", make_pdf([PAGE_1])), ("note.md", make_docx(["Texte."]))):
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match="binary|UTF-8"):
            read_file(tmp_path / name, name, max_bytes=1_000_000)


def test_load_corpus_reads_documents_and_lists_the_bad_ones(tmp_path):
    (tmp_path / "a.pdf").write_bytes(make_pdf([PAGE_1, PAGE_2]))
    (tmp_path / "b.docx").write_bytes(make_docx(["Un paragraphe en français pour le test."], title="Note"))
    (tmp_path / "c.pdf").write_bytes(encrypt(make_pdf([PAGE_1]), "secret"))
    (tmp_path / "d.docx").write_bytes(b"not a zip")
    result = load_corpus(tmp_path, max_bytes=1_000_000)
    assert [f.source for f in result.files] == ["a.pdf", "b.docx"]
    assert result.files[0].title == derive_title(result.files[0].text) and result.files[1].title == "Note"
    assert [(s.source, s.reason) for s in result.skipped] == [
        ("c.pdf", ENCRYPTED_PDF),
        ("d.docx", "not a DOCX file (not a zip archive)"),
    ]
