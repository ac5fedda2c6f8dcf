"""The handlers of the page and the API that change or list the corpus: upload, remove, re-ingest, documents.

A mixin of qa.ui.UI (self.engine, self.settings, self.access): every corpus change passes the caller's role
and limits (qa.access) and is written to the audit trail, whichever route it came by.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from qa.access import Identity
from qa.audit import sha256_of
from qa.errors import ConfigError, PermissionDenied, QAError, RateLimited
from qa.render import render_documents_html, render_notice_html, render_status_html

if TYPE_CHECKING:  # qa.ingest loads LlamaIndex: imported where it is used, after the page is served
    from qa.ingest import RemoveReport, UploadReport

log = logging.getLogger("qa.ui")


def _short_error(exc: BaseException) -> str:
    from qa.ui import short_error  # the UI's one way of wording errors (imported late: qa.ui imports this)

    return short_error(exc)


class CorpusHandlers:
    # --- documents -------------------------------------------------------------------------------
    def api_documents(self) -> list[dict]:
        """The indexed documents: source, title, language, chunks, ingested_at (ISO UTC, "" if unknown), url, date."""
        from dataclasses import asdict

        return [asdict(d) for d in self.engine.documents()]

    def remove(self, sources: list[str] | str | None, request: gr.Request = None) -> RemoveReport:
        """Remove documents from the index and the corpus, then refresh the engine; editors only, audited.

        The one place the page and the API remove documents. Unknown names remove nothing (ConfigError); the
        last document cannot be removed from the page (PermissionDenied when the role may not remove).
        """
        names = _as_list(sources)
        try:
            who = self.access.require(request, "remove")
        except PermissionDenied as exc:
            self.access.record(self.access.identify(request).who, "remove", ",".join(names), "", f"refused: {exc}")
            raise
        if not names:
            raise ConfigError("no document was selected")
        known = {d.source for d in self.engine.documents()}
        from qa.documents import resolve_sources

        resolved = resolve_sources(names, known, self.settings.corpus_dir)
        if set(resolved) >= known:
            raise ConfigError("the last documents cannot all be removed from the page; keep at least one "
                              "(`qa remove` in a terminal can empty the index)")
        digests = {name: sha256_of(Path(self.settings.corpus_dir) / name) for name in resolved}
        with _INGEST:
            try:
                report = self.engine.remove(resolved)
            except QAError as exc:
                for name in resolved:
                    self.access.record(who.who, "remove", name, digests[name], f"failed: {exc}")
                raise
        for name in report.removed:
            self.access.record(who.who, "remove", name, digests.get(name, ""), "removed")
        return report

    def api_remove(self, sources: list[str] | str, request: gr.Request = None) -> str:
        """Remove documents (their source keys, as cited) from the index and the corpus folder; editors only.
        Returns one line per document; a refusal or an unknown name is an error and removes nothing."""
        try:
            report = self.remove(sources, request)
        except QAError as exc:
            raise gr.Error(_short_error(exc) if not isinstance(exc, (ConfigError, PermissionDenied)) else str(exc),
                           print_exception=False) from None
        return "\n".join(f"Removed {name}." for name in report.removed)

    def remove_selected(self, sources: list[str] | str | None, request: gr.Request = None):
        """The Remove button: returns (report, status, document list, the three selections)."""
        try:
            report = self.remove(sources, request)
            summary = report.summary()
            message, kind = summary[:1].upper() + summary[1:] + ".", "ok"
        except Exception as exc:
            if not isinstance(exc, QAError):
                log.exception("removing %r failed", sources)
            message = f"Nothing was removed: {exc}." if isinstance(exc, ConfigError) else _short_error(exc)
            kind = "error"
        return (render_notice_html(message, kind), render_status_html(self.engine), *self.document_views())

    def document_views(self):
        """(document list html, remove selection, source filter, language filter) for the current snapshot."""
        docs = self.engine.documents()
        choices = [(f"{d.title[:60]} ({d.source})", d.source) for d in docs]
        languages = sorted({d.language for d in docs})
        # The selections are cleared: one naming a removed document would be refused by the dropdown.
        return (render_documents_html(docs), gr.update(choices=choices, value=[]),
                gr.update(choices=choices, value=[]), gr.update(choices=languages, value=[]))

    # --- uploads ---------------------------------------------------------------------------------
    def add_documents(self, files: list | str | None, request: gr.Request = None,
                      progress: gr.Progress = gr.Progress()):
        """Check, store and ingest uploaded .txt/.md/.html/.pdf/.docx files (editors only); returns (report, status
        html)."""
        paths = _paths(files)
        try:
            who = self.access.upload(request)
        except (PermissionDenied, RateLimited) as exc:
            for path in paths:  # a refused attempt is part of the trail too; nothing was changed
                self.access.record(self.access.identify(request).who, "upload", _given_name(path), sha256_of(path),
                                   f"refused: {exc}")
            raise gr.Error(str(exc), print_exception=False) from None
        report = self.upload(files, progress=progress)
        self._audit_upload(who, paths, report)
        kind = "error" if (report.rejected or report.error) and not report.added else (
            "warning" if report.rejected or report.error else "ok")
        return render_notice_html(report.message(), kind), render_status_html(self.engine), None

    def _audit_upload(self, who: Identity, paths: list[Path], report: UploadReport) -> None:
        added = {sha256_of(Path(self.settings.corpus_dir) / source): source for source in report.added}
        rejected = dict(report.rejected)
        for path in paths:
            digest, name = sha256_of(path), _given_name(path)
            if digest in added:
                outcome = f"added as {added[digest]}"
            else:
                from qa.uploads import safe_display_name

                outcome = f"rejected: {rejected.get(safe_display_name(name), report.error or 'not added')}"
            self.access.record(who.who, "upload", name, digest, outcome)

    def reingest(self, request: gr.Request = None) -> str:
        """Re-index corpus_dir (new, changed and deleted files); editors only. Returns the report's summary."""
        try:
            who = self.access.require(request, "reingest")
        except PermissionDenied as exc:
            self.access.record(self.access.identify(request).who, "reingest", "", "", f"refused: {exc}")
            raise gr.Error(str(exc), print_exception=False) from None
        try:
            from qa.ingest import ingest

            report = ingest(self.settings, embed_model=self.engine.embed_model)
        except QAError as exc:
            self.access.record(who.who, "reingest", str(self.settings.corpus_dir), "", f"failed: {exc}")
            raise gr.Error(_short_error(exc), print_exception=False) from None
        self.access.record(who.who, "reingest", str(self.settings.corpus_dir), "",
                           f"{report.added} added, {report.updated} updated, {report.removed} removed")
        self.engine.refresh()
        return report.summary()

    def upload(self, files: list | str | None, progress=None) -> UploadReport:
        from qa.ingest import UploadReport, add_documents

        if not files:
            return UploadReport()
        paths = _paths(files)

        def tick(done: int, total: int, source: str) -> None:
            if progress is not None:
                progress((done, total), desc=f"Indexing {source}", unit="chunks")

        if progress is not None:
            progress(0, desc="Checking and indexing the new documents…")
        with _INGEST:
            report = add_documents(self.settings, paths, embed_model=self.engine.embed_model, progress=tick,
                                   max_bytes=min(self.settings.ui.max_upload_bytes, self.settings.max_file_bytes))
            if report.added:
                self.engine.refresh()
        return report



def _paths(files: list | str | None) -> list[Path]:
    if not files:
        return []
    items = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    return [Path(getattr(p, "name", None) or str(p)) for p in items]


def _given_name(path: Path) -> str:
    return path.name  # Gradio keeps the uploader's file name in a temporary folder of its own


def _as_list(sources: list[str] | str | None) -> list[str]:
    if not sources:
        return []
    items = [sources] if isinstance(sources, str) else list(sources)
    return [str(s).strip() for s in items if str(s).strip()]


_INGEST = threading.Lock()  # uploads and removals of the page's sessions wait for each other

