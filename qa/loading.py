"""Reading corpus files: decoding, cleaning HTML/Markdown/feed residue, and deriving metadata.

PDF and DOCX bytes are turned into text by qa.readers; the same cleaning then applies to every format.
"""

from __future__ import annotations

import bisect
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qa.readers import read_docx, read_pdf
from qa.text import detect_language, split_sentences

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
MAX_PAGES = 500
PAGE_SEPARATOR = "\n\n"


@dataclass
class CorpusFile:
    """One readable article, cleaned, with the metadata that is stored and cited."""

    source: str  # path relative to corpus_dir, with forward slashes
    text: str  # cleaned text: what gets chunked, embedded and quoted
    file_hash: str  # sha256 of the raw bytes
    title: str
    language: str
    url: str = ""
    date: str = ""
    # PDF only: (offset in text where the page starts, page number from 1), in order; pages without
    # text are left out. Empty for other formats.
    pages: list[tuple[int, int]] = field(default_factory=list)


def page_at(file: CorpusFile, offset: int) -> int | None:
    """The page number of the character at offset in file.text; None when the file has no pages."""
    if not file.pages or not 0 <= offset < len(file.text):
        return None
    i = bisect.bisect_right([start for start, _ in file.pages], offset) - 1
    return file.pages[max(i, 0)][1]


def chunk_pages(file: CorpusFile, text: str) -> str:
    """Where the pages of a file begin inside one of its chunks, as "page:offset,..." (Chroma metadata holds
    strings); "" for a file without pages. The first entry is the page the chunk starts on, at offset 0."""
    start = file.text.find(text) if file.pages else -1
    if start < 0:
        return ""
    end = start + len(text)
    breaks = [f"{page_at(file, start)}:0"]
    breaks += [f"{page}:{offset - start}" for offset, page in file.pages if start < offset < end]
    return ",".join(breaks)


def page_in(pages: str, passage: str, snippet: str) -> int:
    """The page a snippet of a passage is on, from its chunk's chunk_pages(); 0 when unknown."""
    if not pages:
        return 0
    at = max(passage.find(snippet), 0)
    page = 0
    for item in pages.split(","):
        number, _, offset = item.partition(":")
        if number.isdigit() and offset.isdigit() and int(offset) <= at:
            page = int(number)
    return page


@dataclass
class SkippedFile:
    source: str
    reason: str


@dataclass
class LoadResult:
    files: list[CorpusFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def list_corpus(corpus_dir: Path) -> list[Path]:
    """Supported files under corpus_dir, recursively, sorted, skipping hidden files and folders."""
    paths = []
    for p in sorted(corpus_dir.rglob("*")):
        rel = p.relative_to(corpus_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES:
            paths.append(p)
    return paths


def decode(raw: bytes) -> str:
    """Decode UTF-8 text (BOM allowed); raise ValueError for binary or non-UTF-8 content."""
    if b"\x00" in raw[:8192]:
        raise ValueError("binary content (NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    controls = sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\r\t\f")
    if controls > 0.01 * max(1, len(text[:8192])):
        raise ValueError("binary content (control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_file(path: Path, source: str, max_bytes: int, max_pages: int = MAX_PAGES) -> CorpusFile:
    """Read and clean one file; raise ValueError with a human reason when it cannot be used."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"too large ({size} bytes; the limit is {max_bytes}, QA_MAX_FILE_BYTES)")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return parse_pdf(raw, source, max_pages)
    if suffix == ".docx":
        return parse_docx(raw, source)
    return parse(raw, source)


def parse(raw: bytes, source: str) -> CorpusFile:
    cleaned, meta = clean(decode(raw))
    return _corpus_file(raw, source, cleaned, meta)


def parse_pdf(raw: bytes, source: str, max_pages: int = MAX_PAGES) -> CorpusFile:
    """Pages cleaned one by one and joined by a blank line, each page's start offset recorded."""
    content = read_pdf(raw, max_pages)
    parts: list[str] = []
    pages: list[tuple[int, int]] = []
    meta: dict[str, str] = {}
    offset = 0
    for number, page_text in enumerate(content.pages, start=1):
        cleaned, page_meta = clean(page_text)
        if not cleaned:
            continue
        if parts:
            offset += len(PAGE_SEPARATOR)
        else:
            meta = {"date": page_meta["date"]} if "date" in page_meta else {}  # a date on the first page only
        pages.append((offset, number))
        parts.append(cleaned)
        offset += len(cleaned)
    if content.title:
        meta["title"] = content.title
    return _corpus_file(raw, source, PAGE_SEPARATOR.join(parts), meta, pages)


def parse_docx(raw: bytes, source: str) -> CorpusFile:
    content = read_docx(raw)
    cleaned, meta = clean(content.text)
    if content.title:
        meta["title"] = content.title
    return _corpus_file(raw, source, cleaned, meta)


def _corpus_file(
    raw: bytes, source: str, text: str, meta: dict[str, str], pages: list[tuple[int, int]] | None = None
) -> CorpusFile:
    if not text.strip():
        raise ValueError("empty (no text after cleaning)")
    return CorpusFile(
        source=source,
        text=text,
        file_hash=hashlib.sha256(raw).hexdigest(),
        title=meta.get("title") or derive_title(text),
        language=detect_language(text),
        url=meta.get("url", ""),
        date=meta.get("date", ""),
        pages=pages or [],
    )


def load_corpus(corpus_dir: Path, max_bytes: int, max_pages: int = MAX_PAGES) -> LoadResult:
    result = LoadResult()
    for path in list_corpus(corpus_dir):
        source = path.relative_to(corpus_dir).as_posix()
        try:
            result.files.append(read_file(path, source, max_bytes, max_pages))
        except (OSError, ValueError) as exc:
            result.skipped.append(SkippedFile(source, str(exc) if isinstance(exc, ValueError) else exc.strerror or str(exc)))
    return result


# --- cleaning -------------------------------------------------------------------------------------

_TAG_RE = re.compile(r"<[a-zA-Z/!][^>]*>")
_MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\((https?://[^)\s]+)\)")
_BLOCK_END_RE = re.compile(r"</?(?:p|div|br|hr|li|ul|ol|h[1-6]|tr|table|section|article|blockquote)\b[^>]*>", re.I)
_DROP_BLOCK_RE = re.compile(r"<(script|style|noscript|iframe|svg)\b.*?</\1\s*>", re.I | re.S)
_COMMENT_RE = re.compile(r"<!--(.*?)-->", re.S)
_DATE_DMY_RE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_DATE_ISO_RE = re.compile(r"\b(20\d\d|19\d\d)-(\d\d)-(\d\d)\b")

# Lines that are feed, advertising or translation residue, not article text.
_BOILERPLATE_LINE_RE = re.compile(
    r"""^\s*(?:
        publicité|advertisement|advertising|publicidad|anuncio|werbung|إعلان|广告
      | -{3,}|={3,}|\*{3,}
      | 获取更多RSS.*|https?://\S+
      | nous\ pouvons\ gagner\ une\ commission.*|we\ may\ earn\ a\ commission.*
      | please\ note\ that\ the\b.*|tag\ with\ twitter\ widgets.*
    )\s*$""",
    re.I | re.X,
)


def clean(text: str) -> tuple[str, dict[str, str]]:
    """Strip HTML tags, entities, Markdown link syntax and feed boilerplate; return text and metadata.

    Plain text keeps its exact characters (only boilerplate lines go), so quotes from it can be found
    in the original file.
    """
    meta: dict[str, str] = {}
    for m in _COMMENT_RE.finditer(text):
        stamp = m.group(1).strip()
        if stamp.isdigit() and len(stamp) in (10, 13):  # epoch seconds or milliseconds
            secs = int(stamp) / (1000 if len(stamp) == 13 else 1)
            meta.setdefault("date", datetime.fromtimestamp(secs, tz=UTC).date().isoformat())
    text = _COMMENT_RE.sub("", text)
    # A leading Markdown link (after the feed's timestamp comment) is the title line: "[Title](url)".
    first = _MD_LINK_RE.match(text.lstrip())
    if first:
        meta["title"] = html.unescape(first.group(1)).strip()
        meta["url"] = first.group(2)
    text = _MD_LINK_RE.sub(lambda m: m.group(1), text)
    has_html = bool(_TAG_RE.search(text))
    if has_html:
        text = _DROP_BLOCK_RE.sub(" ", text)
        text = _BLOCK_END_RE.sub("\n", text)
        text = _TAG_RE.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    lines = []
    for line in text.split("\n"):
        if _BOILERPLATE_LINE_RE.match(line):
            continue
        if has_html:
            line = re.sub(r"[ \t\u3000\xa0]+", " ", line).strip()
        lines.append(line.rstrip())
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if "date" not in meta:
        m = _DATE_ISO_RE.search(text[:500])
        d = _DATE_DMY_RE.search(text[:500])
        if m:
            meta["date"] = m.group(0)
        elif d and int(d.group(2)) <= 12:
            meta["date"] = f"{d.group(3)}-{int(d.group(2)):02d}-{int(d.group(1)):02d}"
    return text, meta


def derive_title(text: str) -> str:
    """A Markdown heading, else a short first line, else the first sentence (cut at 100 characters)."""
    for line in text.split("\n")[:5]:
        if line.startswith("#"):
            return line.lstrip("#").strip()[:150]
    first_line = text.strip().split("\n", 1)[0].strip()
    if 0 < len(first_line) <= 120 and not first_line.endswith((".", "。", "؟", "?", "!")):
        return first_line
    sentence = split_sentences(first_line)[0].strip() if first_line else ""
    return sentence if len(sentence) <= 100 else sentence[:99].rstrip() + "…"
