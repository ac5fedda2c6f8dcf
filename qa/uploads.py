"""Checking and storing uploaded files: name, size and content are checked before anything is written.

`qa.ingest.add_documents` uses these; the UI and the API only hand it the uploaded paths.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qa.loading import parse, parse_docx, parse_pdf

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".pdf", ".docx")
# What a document format's file must start with: a .pdf that is not a PDF is refused before pypdf reads it.
_DOCUMENT_SIGNATURES = {".pdf": (b"%PDF-", "a PDF"), ".docx": (b"PK\x03\x04", "a DOCX (a ZIP archive)")}
UPLOAD_DIR = "uploads"

# Signatures of common binary formats, for a clear message when one arrives with a text suffix.
_BINARY_SIGNATURES = {
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (or Office document)",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x7fELF": "an executable",
    b"MZ": "a Windows executable",
    b"{\\rtf": "an RTF document",
    b"\x1f\x8b": "a gzip archive",
    b"\xd0\xcf\x11\xe0": "an old Office document",
}



class UploadRejected(ValueError):
    """A file the upload box refuses; the message says why."""


@dataclass
class CheckedUpload:
    name: str
    raw: bytes
    title: str
    language: str


def safe_filename(name: str) -> str:
    """Basename only, NFKC, letters/digits/._- kept (any script), no leading dot, short, allowed suffix."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    base = unicodedata.normalize("NFKC", base)
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = "." + suffix.lower() if suffix else ""
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadRejected(
            f"only {', '.join(UPLOAD_SUFFIXES)} files are accepted (got {suffix or 'no extension'})"
        )
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._-")[:80].rstrip("._-")
    return (stem or "document") + suffix


def check_upload(path: Path, name: str, max_bytes: int) -> CheckedUpload:
    """Validate one uploaded file by name, size and content; raise UploadRejected with the reason."""
    safe = safe_filename(name)
    try:
        size = path.stat().st_size
    except OSError:
        raise UploadRejected("the upload could not be read") from None
    if size > max_bytes:
        raise UploadRejected(f"too large ({size:,} bytes; the limit is {max_bytes:,}, QA_MAX_UPLOAD_BYTES)")
    if size == 0:
        raise UploadRejected("the file is empty")
    raw = path.read_bytes()[: max_bytes + 1]
    if len(raw) > max_bytes:
        raise UploadRejected(f"too large (the limit is {max_bytes:,} bytes, QA_MAX_UPLOAD_BYTES)")
    suffix = Path(safe).suffix
    if suffix in _DOCUMENT_SIGNATURES:
        signature, kind = _DOCUMENT_SIGNATURES[suffix]
        if not raw.startswith(signature):
            raise UploadRejected(f"the file is named {suffix} but its content is not {kind}")
        reader = parse_pdf if suffix == ".pdf" else parse_docx
        try:
            doc = reader(raw, f"{UPLOAD_DIR}/{safe}")
        except ValueError as exc:  # encrypted, scanned, damaged, zip bomb, too many pages: the reader says which
            raise UploadRejected(str(exc)) from None
        return CheckedUpload(safe, raw, doc.title, doc.language)
    for signature, kind in _BINARY_SIGNATURES.items():
        if raw.startswith(signature):
            raise UploadRejected(f"the content is {kind}, not text")
    try:
        doc = parse(raw, f"{UPLOAD_DIR}/{safe}")
    except ValueError as exc:
        raise UploadRejected(f"the content is not usable text ({exc})") from None
    return CheckedUpload(safe, raw, doc.title, doc.language)


def write_new(folder: Path, name: str, raw: bytes) -> Path:
    """Write atomically under a name that does not exist yet (name, name-2, ...); never overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    # A dot-file is invisible to ingestion, so a half-written upload is never indexed.
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        for i in range(1, 1000):
            dest = folder / (name if i == 1 else f"{stem}-{i}{suffix}")
            try:
                os.link(tmp, dest)  # atomic and fails if dest exists
                return dest
            except FileExistsError:
                continue
        raise UploadRejected("too many files with this name")
    finally:
        Path(tmp).unlink(missing_ok=True)


def safe_display_name(name: str) -> str:
    name = PurePosixPath(str(name).replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    return name[:100] or "file"

