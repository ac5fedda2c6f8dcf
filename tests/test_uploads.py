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


@pytest.mark.parametrize("name", ["a.pdf", "a.txt.exe", "noext", "a.htm", "a.markdown"])
def test_safe_filename_rejects_other_types(name):
    with pytest.raises(ui.UploadRejected, match="only .txt, .md, .html"):
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
