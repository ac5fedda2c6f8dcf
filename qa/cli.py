"""The `qa` command: ingest, status, documents, remove, ask, eval, bench, users, audit. Domain errors become one
line and exit code 1."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from qa.errors import ConfigError, QAError


def _settings(args: argparse.Namespace):
    from qa.settings import load_settings

    overrides = {}
    if getattr(args, "top_k", None) is not None:
        overrides["top_k"] = args.top_k
    if getattr(args, "mode", None) == "offline":
        overrides["mode"] = "offline"
    elif getattr(args, "mode", None) == "llm":
        overrides["mode"] = "llm"
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from qa.ingest import ingest

    settings = _settings(args)
    try:
        report = ingest(settings, rebuild=args.rebuild)
    except QAError as exc:
        _audit(settings, "reingest", f"failed: {exc}")
        raise
    _audit(settings, "reingest", f"{report.added} added, {report.updated} updated, {report.removed} removed")
    print(f"store: {report.location}")
    print(report.summary())
    return 0


def _audit(settings, action: str, outcome: str, file: str = "") -> None:
    import getpass

    from qa.audit import AuditEntry, AuditTrail

    try:
        who = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (containers)
        who = "cli"
    try:
        AuditTrail(settings.audit_path).append(AuditEntry(who=who, action=action, file=file or str(settings.corpus_dir),
                                                          outcome=outcome))
    except OSError as exc:
        print(f"warning: the audit trail {settings.audit_path} was not written ({exc.strerror or exc})",
              file=sys.stderr)


def _users(settings):
    from qa.users import Users

    if settings.auth.users_file is None:
        raise ConfigError("no users file: set QA_USERS_FILE to its path (e.g. QA_USERS_FILE=/etc/qa/users.json)")
    return Users(settings.auth.users_file)


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was changed")
    if not password:
        raise ConfigError("the password is empty; nothing was changed")
    return password


def cmd_users(args: argparse.Namespace) -> int:
    users = _users(_settings(args))
    if args.users_command == "add":
        user = users.add(args.name, _read_password(args), args.role)
        print(f"{user.name} ({user.role}) saved in {users.path}")
    elif args.users_command == "remove":
        users.remove(args.name)
        print(f"{args.name} removed from {users.path}")
    else:
        listed = users.list()
        for user in listed:
            print(f"{user.name}\t{user.role}")
        if not listed:
            print(f"no users in {users.path}; add one with `qa users add NAME --role editor`", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from qa.audit import AuditTrail

    settings = _settings(args)
    entries = AuditTrail(settings.audit_path).read()
    for e in entries[-args.last:] if args.last else entries:
        if args.json:
            print(json.dumps(asdict(e), ensure_ascii=False, sort_keys=True))
        else:
            digest = f" sha256:{e.sha256[:12]}" if e.sha256 else ""
            print(f"{e.when}  {e.who}  {e.action}  {e.file}{digest}  {e.outcome}")
    if not entries:
        print(f"the audit trail {settings.audit_path} is empty", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from qa.engine import QAEngine

    stats = QAEngine(_settings(args)).stats()
    if args.json:
        print(json.dumps(asdict(stats), ensure_ascii=False, indent=2))
        return 0
    print(f"store:      {stats.location}")
    print(f"embedding:  {stats.embedding}")
    print(f"documents:  {stats.documents}")
    print(f"chunks:     {stats.chunks}")
    print("languages:  " + ", ".join(f"{k} ({v})" for k, v in sorted(stats.languages.items())))
    for source, title in stats.titles.items():
        print(f"  {source}: {title}")
    return 0


def cmd_documents(args: argparse.Namespace) -> int:
    from qa.documents import list_documents
    from qa.store import describe_location

    settings = _settings(args)
    docs = list_documents(settings)
    if args.json:
        print(json.dumps([{**asdict(d), "file": d.file} for d in docs], ensure_ascii=False, indent=2))
        return 0
    if not docs:
        print(f"no documents in {describe_location(settings)}; run `qa ingest`")
        return 0
    rows = [("TITLE", "FILE", "LANG", "CHUNKS", "INGESTED")]
    rows += [(_cut(d.title, 48), d.source, d.language, str(d.chunks), d.ingested_at or "-") for d in docs]
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell + " " * (w - _width(cell)) for cell, w in zip(row, widths)]
        print("  ".join(cells).rstrip())
    print(f"{len(docs)} documents, {sum(d.chunks for d in docs)} chunks")
    return 0


def _cut(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _width(text: str) -> int:
    """Columns a string takes in a terminal (CJK characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cmd_remove(args: argparse.Namespace) -> int:
    from qa.ingest import remove_documents

    settings = _settings(args)
    try:
        report = remove_documents(settings, args.paths, delete_files=not args.keep_files, strict=True)
    except QAError as exc:
        _audit(settings, "remove", f"failed: {exc}", ",".join(args.paths))
        raise
    for name in report.removed:
        _audit(settings, "remove", "removed", name)
    print(report.summary())
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.engine import QAEngine
    from qa.query import clean_question

    settings = _settings(args)
    question = clean_question(" ".join(args.question), settings.max_question_chars)  # before loading anything
    engine = QAEngine(settings)
    filters = dict(sources=_split(args.source), languages=_split(args.language))
    if args.json:
        answer = engine.ask(question, **filters)
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    answer = None
    for event in engine.stream(question, **filters):
        if isinstance(event, str):
            print(event, end="", flush=True)
        else:
            answer = event
    print()
    if answer.notice:
        print(f"note: {answer.notice}")
    if answer.citations:
        print("\nSources:")
    for c in answer.citations:
        page = f", page {c.page}" if c.page else ""
        print(f"[{c.number}] {c.title} ({c.source}{page}, {c.language})")
        print(f"    “{c.snippet}”")
    return 0


def _split(values: list[str] | None) -> list[str] | None:
    """--source a.txt --source b.txt, or --language fr,zh."""
    out = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    return out or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Question answering with citations over a news corpus.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index corpus_dir into the store (incremental)")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything into a fresh collection")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("status", help="show the store, model, documents, chunks and languages")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("documents", help="list the indexed documents (title, file, language, chunks, ingestion time)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_documents)

    p = sub.add_parser("remove", help="remove documents from the index and their files from corpus_dir")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a file in corpus_dir, its path relative to it, or its name")
    p.add_argument("--keep-files", action="store_true", dest="keep_files",
                   help="leave the files in corpus_dir (the next `qa ingest` indexes them again)")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("ask", help="answer a question with numbered sources")
    p.add_argument("question", nargs="+")
    p.add_argument("--source", action="append", metavar="FILE",
                   help="answer only from this document (repeat, or separate with commas)")
    p.add_argument("--language", action="append", metavar="CODE",
                   help="answer only from documents in this language, e.g. fr (repeat, or separate with commas)")
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--mode", choices=["auto", "offline", "llm"])
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("users", help="manage who may sign in to the web UI (QA_USERS_FILE)")
    users = p.add_subparsers(dest="users_command", required=True)
    u = users.add_parser("add", help="add a user, or change their password and role")
    u.add_argument("name")
    u.add_argument("--role", choices=["reader", "editor"], required=True,
                   help="reader: ask, chat, export; editor: also upload, remove, re-ingest")
    u.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    u = users.add_parser("remove", help="remove a user (their open sessions lose every right at once)")
    u.add_argument("name")
    users.add_parser("list", help="list names and roles")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("audit", help="print the audit trail of corpus changes (QA_AUDIT_FILE)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--last", type=int, default=0, help="only the last N entries")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("eval", help="evaluate against the fixed test set, with baselines")
    from qa.evaluation import add_arguments, cmd_eval

    add_arguments(p)
    p.set_defaults(func=cmd_eval)

    sub.add_parser("bench", help="benchmark speed, memory and scale (see `qa bench --help`)")
    return parser


def run_bench(argv: list[str]) -> int:
    """`qa bench` runs benchmarks/bench.py of the source checkout (measurement code is not in the package)."""
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
    if not script.is_file():
        raise ConfigError(f"qa bench needs the source checkout's benchmarks/ folder (not found at {script.parent}); "
                          f"run it from a clone: python benchmarks/bench.py")
    namespace = runpy.run_path(str(script), run_name="qa_bench")
    return namespace["main"](argv) or 0


def main(argv: list[str] | None = None) -> int:
    from qa.settings import apply_process_defaults

    apply_process_defaults()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # every option goes to the benchmark's own parser
        try:
            return run_bench(argv[1:])
        except QAError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
