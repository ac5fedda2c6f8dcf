"""Text out of PDF and DOCX bytes, with one clear ValueError for every file that cannot be used.

Why not LlamaIndex's readers (llama-index-readers-file 0.7): `PDFReader.load_data` is wrapped in a
tenacity retry, so a damaged PDF is parsed three times and comes out as `tenacity.RetryError` (not a
ValueError, the cause hidden inside); it takes a path, not the bytes that were size-checked and hashed;
it gives no metadata title and has no page limit (it extracts every page before we could count them).
`DocxReader` is `docx2txt.process(path)`: it opens the zip without any size check (we must check for a
zip bomb on the same bytes before anything is inflated), puts page headers and footers before the body
(a running head would become the title), and gives no core-properties title. So PDFs are read with
pypdf directly, and DOCX with zipfile + ElementTree (the body walk is the dozen lines docx2txt uses).
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree

import pypdf

# pypdf logs warnings and errors about damaged files, with bytes of the file in them; the loader
# reports such a file as skipped with its own one-line reason instead.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

ENCRYPTED_PDF = "encrypted PDF; remove the password and add it again"
NO_TEXT_PDF = "no extractable text; scanned PDFs need OCR, which is not included"
DOCX_MAX_EXPANDED = 50_000_000  # bytes of all members once inflated
DOCX_MAX_RATIO = 100  # Word's XML deflates ~5-20x; a bomb's zeros deflate ~1000x
_RATIO_FLOOR = 1_000_000  # a small file is harmless whatever its ratio

_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old .doc, and password-protected Office files
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_JUNK_TITLE_RE = re.compile(
    r"^(?:untitled|document\d*|title|titre|microsoft word\b.*)$|\.(?:docx?|pdf|rtf|odt|indd|tex|dvi|ps|qxd)$", re.I
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES_RE = re.compile(r"[ \t]+")
_SENTENCE_ENDS = (".", "!", "?", "…", ":", "؟", "。", "！", "？")
_CLOSERS = "\"'»”’)]」』）"
_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class PdfContent:
    pages: list[str]  # extracted text of each page, in order (page number = index + 1)
    title: str  # from the PDF's metadata, "" when absent or not sensible


@dataclass
class DocxContent:
    text: str  # body paragraphs joined by blank lines
    title: str  # from the core properties, "" when absent or not sensible


class _Rejected(ValueError):
    """A reason we raise ourselves inside a parse, kept as it is by the catch-all around the parse."""


def read_pdf(raw: bytes, max_pages: int) -> PdfContent:
    if b"%PDF-" not in raw[:1024]:
        raise ValueError("not a readable PDF (no %PDF header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        # Opening with the empty password is what every viewer does silently (owner-only passwords).
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise _Rejected(ENCRYPTED_PDF)
        count = len(reader.pages)
        if count == 0:
            raise _Rejected("not a readable PDF (no pages)")
        if count > max_pages:
            raise _Rejected(f"too many pages ({count}; the limit is {max_pages})")
        title = sensible_title(reader.metadata.title if reader.metadata else "")
        pages = [unwrap_lines(page.extract_text() or "") for page in reader.pages]
    except _Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds (PdfReadError, KeyError, zlib.error, ...)
        raise ValueError(f"not a readable PDF ({_cause(exc)})") from None
    if not any(c.isalnum() for page in pages for c in page):
        raise ValueError(NO_TEXT_PDF)
    return PdfContent(pages, title)


def unwrap_lines(text: str) -> str:
    """Tidy one page of extracted PDF text: rejoin hyphenated and wrapped lines, keep blank lines.

    pypdf ends every printed line with a newline, and a newline ends a sentence for the chunker. A line
    that fills most of the page's width and ends no sentence was wrapped, so it is joined to the next;
    short lines (headings, list items, a paragraph's last line) keep their break.
    """
    text = _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    full = 0.6 * max(len(line) for line in lines)
    out = lines[:1]
    for prev, line in zip(lines, lines[1:]):
        if not (prev and line):
            out.append(line)
        elif len(prev) > 1 and prev[-1] == "-" and prev[-2].isalpha() and line[0].isalpha():
            # "infor-" + "mation" -> "information"; "Jean-" + "Pierre" keeps its hyphen.
            out[-1] = (out[-1][:-1] if line[0].islower() else out[-1]) + line
        elif len(prev) >= full and not prev.rstrip(_CLOSERS).endswith(_SENTENCE_ENDS):
            out[-1] += ("" if _CJK_RE.match(prev[-1]) and _CJK_RE.match(line[0]) else " ") + line
        else:
            out.append(line)
    return "\n".join(out)


def read_docx(raw: bytes) -> DocxContent:
    if raw.startswith(_OLE_SIGNATURE):
        raise ValueError("not a DOCX file (an old .doc or a password-protected document)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except Exception:  # noqa: BLE001 - zipfile raises BadZipFile, ValueError, OSError, ... on junk
        if raw.startswith(b"PK\x03\x04"):
            raise ValueError("not a readable DOCX (damaged or truncated zip)") from None
        raise ValueError("not a DOCX file (not a zip archive)") from None
    with archive:
        members = archive.infolist()
        names = {m.filename for m in members}
        if "word/document.xml" not in names:
            raise ValueError("not a DOCX file (no word/document.xml)")
        # Declared sizes are what zipfile inflates at most (it stops there and fails the CRC), so
        # checking them before reading anything bounds the memory a crafted file can take.
        expanded = sum(m.file_size for m in members)
        packed = sum(m.compress_size for m in members)
        if expanded > DOCX_MAX_EXPANDED or (expanded > _RATIO_FLOOR and expanded > DOCX_MAX_RATIO * max(1, packed)):
            raise ValueError(f"DOCX rejected: it expands to {expanded / 1e6:.0f} MB (a zip bomb?)")
        try:
            # ElementTree resolves no external entities, and expat >= 2.4 caps entity expansion.
            text = docx_body_text(archive.read("word/document.xml"))
            title = ""
            if "docProps/core.xml" in names:
                title = sensible_title(ElementTree.fromstring(archive.read("docProps/core.xml")).findtext(_DC_TITLE))
        except Exception as exc:  # noqa: BLE001 - bad XML, CRC error, encrypted or unsupported member, ...
            raise ValueError(f"not a readable DOCX ({_cause(exc)})") from None
    return DocxContent(text, title)


def docx_body_text(xml: bytes) -> str:
    """Paragraphs of word/document.xml joined by blank lines; tabs and line breaks kept."""
    inline = {f"{_W}tab": "\t", f"{_W}br": "\n", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}
    paragraphs: list[list[str]] = []
    for el in ElementTree.fromstring(xml).iter():
        if el.tag == f"{_W}p":
            paragraphs.append([])
        elif paragraphs and el.tag == f"{_W}t":
            paragraphs[-1].append(el.text or "")
        elif paragraphs and el.tag in inline:
            paragraphs[-1].append(inline[el.tag])
    return "\n\n".join(text for text in ("".join(p).strip() for p in paragraphs) if text)


def sensible_title(value: object) -> str:
    """A metadata title worth showing: has letters, not too long, not a file name or 'Untitled'."""
    title = " ".join(str(value or "").split())
    if len(title) > 200 or not any(c.isalpha() for c in title) or _JUNK_TITLE_RE.search(title):
        return ""
    return title


def _cause(exc: Exception) -> str:
    """First line of the parser's message, short; the exception's name when it says nothing."""
    lines = str(exc).strip().splitlines()
    message = lines[0].strip() if lines else ""
    return (message[:80] + "…" if len(message) > 80 else message) or type(exc).__name__
