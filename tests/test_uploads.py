"""Upload checks: names, types, sizes and contents are refused before anything is written."""

from __future__ import annotations

import pytest

from qa import uploads as ui


@pytest.mark.parametrize(
    "name,expected",
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\x\\Report 2024 (final).MD", "Report_2024_final.md"),
        (".hidden.html", "hidden.html"),
        ("متن عربي.txt", "متن_عربي.txt"),
        ("新闻.txt", "新闻.txt"),
        ("evil\u202etxt.html", "evil_txt.html"),
        ("<script>.txt", "script.txt"),
        ("....txt", "document.txt"),
    ],
)
def test_safe_filename(name, expected):
    assert ui.safe_filename(name) == expected


@pytest.mark.parametrize("name", ["a.doc", "a.txt.exe", "noext", "a.htm", "a.markdown"])
def test_safe_filename_rejects_other_types(name):
    with pytest.raises(ui.UploadRejected, match="only .txt, .md, .html, .pdf, .docx"):
        ui.safe_filename(name)


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "PNG image"),
        (b"%PDF-1.7\n1 0 obj\n", "PDF document"),
        (b"hello\x00world" * 8, "not usable text"),
        (b"caf\xe9 au lait", "not usable text"),
        (b"", "empty"),
        (b"<html><script>x()</script></html>", "not usable text"),
        (b"x" * 101, "too large"),
    ],
)
def test_check_upload_rejects_by_content_and_size(tmp_path, content, reason):
    path = tmp_path / "upload.txt"
    path.write_bytes(content)
    with pytest.raises(ui.UploadRejected, match=reason):
        ui.check_upload(path, "upload.txt", max_bytes=100)


def test_check_upload_accepts_text(tmp_path):
    path = tmp_path / "x"
    path.write_bytes("\ufeff# Un titre\n\nUn article en français sur les lanternes.".encode())
    checked = ui.check_upload(path, "../My note.md", max_bytes=1000)
    assert (checked.name, checked.title, checked.language) == ("My_note.md", "Un titre", "fr")


def test_write_new_never_overwrites(tmp_path):
    first = ui.write_new(tmp_path, "a.txt", b"one")
    second = ui.write_new(tmp_path, "a.txt", b"two")
    assert (first.name, second.name) == ("a.txt", "a-2.txt")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-2.txt", "a.txt"]  # no temporary file left


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def _docx(text: str) -> bytes:
    import io

    import docx

    document = docx.Document()
    document.add_heading("Rapport de la lagune", 1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_pdf_and_docx_uploads_are_read_with_their_readers(tmp_path):
    for name, raw in (("report.pdf", _pdf("La regate de Glimmerfen a reuni 310 bateaux sur la lagune.")),
                      ("report.docx", _docx("La régate de Glimmerfen a réuni 310 bateaux sur la lagune."))):
        path = tmp_path / name
        path.write_bytes(raw)
        checked = ui.check_upload(path, name, max_bytes=1_000_000)
        assert checked.name == name and checked.language == "fr" and checked.raw == raw


@pytest.mark.parametrize("name, content, reason", [
    ("fake.pdf", b"hello, I am text", "not a PDF"),
    ("fake.docx", b"hello, I am text", "not a DOCX"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj\n<<", "not a readable PDF"),
    ("broken.docx", b"PK\x03\x04" + b"\x00" * 40, "not a readable DOCX"),
])
def test_a_document_that_is_not_what_its_name_says_is_refused(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ui.UploadRejected, match=reason):
        ui.check_upload(path, name, max_bytes=1_000_000)
