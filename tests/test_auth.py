"""Sign-in, roles, limits and the audit trail: units first, then the real server driven with gradio_client,
and `python app.py` as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import qa
from qa import ui
from qa.access import Access, exposure_check, is_loopback
from qa.audit import AuditEntry, AuditTrail
from qa.errors import ConfigError, RateLimited
from qa.limits import InFlight, LoginBackoff, WindowLimit
from qa.users import Users, allowed

from conftest import ROOT, free_port, run_app_py, serve

READER_PW = "reader-pass-Quokka-71"
EDITOR_PW = "editor-pass-Wombat-39"
SECRET_QUESTION = "Which Hollywood actor is testing Sora in Zanzibar?"


class StubEngine:
    def stream(self, question, history=None, progress=False):
        yield "First part [1]"
        yield qa.Answer("First part [1]", [], question=question, language="en")


def copy_store(seeded: qa.Settings, base: Path, **overrides) -> qa.Settings:
    """A private, writable copy of the seeded corpus and store."""
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    return qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                       mode="offline", **overrides)


def corpus_state(settings: qa.Settings, engine: qa.QAEngine):
    files = sorted(str(p.relative_to(settings.corpus_dir)) for p in Path(settings.corpus_dir).rglob("*"))
    manifest = {s: r.file_hash for s, r in engine.store.manifest().items()}
    return files, manifest, engine.store.count()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(username=None, host="127.0.0.1"):
    """What the handlers read from gr.Request."""
    return SimpleNamespace(username=username, client=SimpleNamespace(host=host))


def make_users(path: Path) -> Users:
    users = Users(path)
    users.add("rita", READER_PW, "reader")
    users.add("ed", EDITOR_PW, "editor")
    return users


# --- units -------------------------------------------------------------------------------------------

def test_users_file_holds_hashes_only_with_mode_0600(tmp_path):
    path = tmp_path / "conf" / "users.json"
    users = make_users(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert READER_PW not in text and EDITOR_PW not in text and "$argon2id$" in text
    assert [(u.name, u.role) for u in users.list()] == [("ed", "editor"), ("rita", "reader")]
    assert users.verify("rita", READER_PW) and not users.verify("rita", EDITOR_PW)
    assert not users.verify("nobody", READER_PW)
    assert users.role_of("ed") == "editor" and users.role_of("nobody") is None and users.role_of(None) is None
    assert not list(path.parent.glob(".users-*")), "the temporary file was left behind"
    # Another process (`qa users remove`) changes the file: a running server sees it.
    Users(path).remove("rita")
    assert users.role_of("rita") is None and not users.verify("rita", READER_PW)
    with pytest.raises(ConfigError, match="too short"):
        users.add("bob", "short", "reader")
    with pytest.raises(ConfigError, match="not a valid user name"):
        users.add("bob smith", READER_PW, "reader")
    with pytest.raises(ConfigError, match="not a role"):
        users.add("bob", READER_PW, "admin")


def test_roles():
    assert all(allowed("reader", a) for a in ("ask", "chat", "export"))
    assert not any(allowed("reader", a) for a in ("upload", "remove", "reingest"))
    assert all(allowed("editor", a) for a in ("ask", "chat", "export", "upload", "remove", "reingest"))
    assert not allowed(None, "ask")


def test_window_limit_triggers_and_recovers():
    clock = Clock()
    limit = WindowLimit(3, 60.0, clock)
    assert all(limit.hit("a").allowed for _ in range(3))
    refused = limit.hit("a")
    assert not refused.allowed and refused.retry_after == pytest.approx(60.0)
    assert limit.hit("b").allowed  # per key
    clock.now += 60.5
    assert limit.hit("a").allowed


def test_in_flight_caps_running_tasks_per_key():
    cap = InFlight(2)
    with cap.slot("a", "busy"), cap.slot("a", "busy"):
        with pytest.raises(RateLimited, match="busy"):
            with cap.slot("a", "busy"):
                pass
        with cap.slot("b", "busy"):
            pass
    with cap.slot("a", "busy"):  # released
        pass


def test_login_backoff_doubles_per_failure_and_resets():
    clock = Clock()
    backoff = LoginBackoff(1.0, cap=5.0, forget=900, clock=clock)
    assert backoff.delay("ed", "1.2.3.4") == 0
    for expected in (1.0, 2.0, 4.0, 5.0):
        backoff.failed("ed", "1.2.3.4")
        assert backoff.delay("ed", "1.2.3.4") == expected
    assert backoff.delay("ed", "5.6.7.8") == 0 and backoff.delay("rita", "1.2.3.4") == 0
    backoff.succeeded("ed", "1.2.3.4")
    assert backoff.delay("ed", "1.2.3.4") == 0
    backoff.failed("ed", "1.2.3.4")
    clock.now += 901
    assert backoff.delay("ed", "1.2.3.4") == 0


def test_exposure_check(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    assert exposure_check(qa.Settings(host="127.0.0.1")) is None
    with pytest.raises(ConfigError, match="QA_USERS_FILE"):
        exposure_check(qa.Settings(host="0.0.0.0"))
    assert "QA_ALLOW_ANONYMOUS" in exposure_check(qa.Settings(host="0.0.0.0", allow_anonymous=True))
    with pytest.raises(ConfigError, match="holds no users"):
        exposure_check(qa.Settings(host="0.0.0.0", users_file=tmp_path / "none.json"))
    make_users(tmp_path / "users.json")
    assert exposure_check(qa.Settings(host="0.0.0.0", users_file=tmp_path / "users.json")) is None


@pytest.mark.parametrize("name, value, field, expected", [
    ("QA_USERS_FILE", "/x/users.json", "users_file", Path("/x/users.json")),
    ("QA_ALLOW_ANONYMOUS", "true", "allow_anonymous", True),
    ("QA_QUESTIONS_PER_MINUTE", "5", "questions_per_minute", 5),
    ("QA_UPLOADS_PER_HOUR", "7", "uploads_per_hour", 7),
    ("QA_MAX_CONCURRENT_PER_USER", "3", "max_concurrent_per_user", 3),
    ("QA_AUDIT_FILE", "/x/audit.jsonl", "audit_file", Path("/x/audit.jsonl")),
    ("QA_LOG_QUESTIONS", "true", "log_questions", True),
])
def test_auth_settings_by_their_env_names(monkeypatch, tmp_path, name, value, field, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert getattr(qa.Settings().auth, field) == expected


def test_audit_file_defaults_next_to_the_store(tmp_path):
    assert qa.Settings(persist_dir=tmp_path / "s").audit_path == tmp_path / "s" / "audit.jsonl"


def test_handlers_refuse_over_the_limits_and_without_the_role(tmp_path):
    make_users(tmp_path / "users.json")
    settings = qa.Settings(users_file=tmp_path / "users.json", questions_per_minute=3, max_concurrent_per_user=2,
                           persist_dir=tmp_path / "store", corpus_dir=tmp_path / "corpus")
    handler = ui.UI(StubEngine(), settings)
    rita = request("rita")
    # Two answers in progress at once are fine, a third is refused until one ends.
    first, second = handler.api_chat("Why?", None, request=rita), handler.api_chat("Why?", None, request=rita)
    next(first), next(second)
    with pytest.raises(ui.gr.Error, match="2 answers in progress"):
        next(handler.api_chat("Why?", None, request=rita))
    first.close(), second.close()
    with pytest.raises(ui.gr.Error, match="too many questions: the limit is 3 a minute"):
        handler.api_ask("Why?", None, request=rita)
    assert handler.api_ask("Why?", None, request=request("ed"))["text"]  # another user has their own budget
    for nobody in (request(None), request("removed")):
        with pytest.raises(ui.gr.Error, match="may not ask"):
            handler.api_ask("Why?", None, request=nobody)
    # The page shows the editing controls to editors only.
    assert handler.page_for(rita)[1]["visible"] is False
    assert handler.page_for(request("ed"))[1]["visible"] is True


def test_question_text_stays_out_of_the_log_unless_asked_for(caplog):
    class Broken(StubEngine):
        def stream(self, question, history=None, progress=False):
            raise RuntimeError("boom")
            yield

    for log_questions, shown in ((False, False), (True, True)):
        caplog.clear()
        list(ui.UI(Broken(), qa.Settings(log_questions=log_questions)).respond(SECRET_QUESTION, [], [], request=None))
        assert "boom" in caplog.text and (SECRET_QUESTION in caplog.text) is shown


def test_cli_users_and_audit(tmp_path):
    env = {**os.environ, "QA_USERS_FILE": str(tmp_path / "users.json"), "QA_AUDIT_FILE": str(tmp_path / "a.jsonl"),
           "PYTHONPATH": str(ROOT)}

    def qa_cmd(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "qa.cli", *args], input=stdin, capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    out = qa_cmd("users", "add", "ed", "--role", "editor", "--password-stdin", stdin=EDITOR_PW + "\n")
    assert out.returncode == 0, out.stderr
    assert Users(tmp_path / "users.json").verify("ed", EDITOR_PW)
    out = qa_cmd("users", "add", "rita", "--role", "reader", "--password-stdin", stdin="short\n")
    assert out.returncode == 1 and out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1
    assert qa_cmd("users", "list").stdout == "ed\teditor\n"
    out = qa_cmd("users", "remove", "nobody")
    assert out.returncode == 1 and "no user 'nobody'" in out.stderr
    assert qa_cmd("users", "remove", "ed").returncode == 0 and qa_cmd("users", "list").stdout == ""
    AuditTrail(tmp_path / "a.jsonl").append(AuditEntry("ed", "upload", "a.txt", "ab" * 32, "added"))
    out = qa_cmd("audit", "--json")
    assert json.loads(out.stdout)["who"] == "ed" and json.loads(out.stdout)["sha256"] == "ab" * 32
    assert "ed  upload  a.txt" in qa_cmd("audit").stdout
    out = subprocess.run([sys.executable, "-m", "qa.cli", "users", "list"], capture_output=True, text=True,
                         env={k: v for k, v in env.items() if k != "QA_USERS_FILE"}, cwd=tmp_path, timeout=120)
    assert out.returncode == 1 and "QA_USERS_FILE" in out.stderr


# --- the real server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secured(seeded, engine, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    make_users(base / "users.json")
    settings = copy_store(seeded, base, max_upload_bytes=20_000, port=free_port(), users_file=base / "users.json",
                          login_delay=0.5, questions_per_minute=4)
    with serve(settings, engine.embed_model) as served_app:
        yield served_app


def sign_in(url, user, password):
    return Client(url, auth=(user, password), verbose=False, download_files=False)


@pytest.mark.slow
def test_anonymous_access_is_refused(secured):
    url = secured[0]
    with pytest.raises(Exception, match="(?i)login|auth|401"):
        Client(url, verbose=False)
    for path in ("config", "gradio_api/info"):
        response = httpx.get(url + path, timeout=30)
        assert response.status_code in (401, 403), (path, response.status_code)
    response = httpx.post(url + "gradio_api/call/ask", json={"data": ["Why?", None]}, timeout=30)
    assert response.status_code in (401, 403)
    response = httpx.post(url + "gradio_api/queue/join", json={"data": [[]], "fn_index": 0, "session_hash": "x"},
                          timeout=30)
    assert response.status_code in (401, 403)
    response = httpx.post(url + "gradio_api/upload", files={"files": ("x.txt", b"hello")}, timeout=30)
    assert response.status_code in (401, 403)


@pytest.mark.slow
def test_wrong_password_is_refused_and_slowed_down(secured):
    url = secured[0]
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        response = httpx.post(url + "login", data={"username": "rita", "password": "wrong-password"}, timeout=30)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 400
    assert timings[1] >= 0.5 and timings[2] >= 1.0, timings  # 0.5 s, then 1 s
    with pytest.raises(Exception, match="(?i)credentials|login|auth"):
        sign_in(url, "nobody", READER_PW)
    # Another name from the same address is not slowed down by rita's failures; the right password works.
    started = time.perf_counter()
    assert httpx.post(url + "login", data={"username": "ed", "password": EDITOR_PW}, timeout=30).status_code == 200
    assert time.perf_counter() - started < 0.5


@pytest.mark.slow
def test_reader_asks_but_cannot_change_the_corpus(secured, tmp_path):
    url, settings, app_engine, _ = secured
    reader = sign_in(url, "rita", READER_PW)
    assert reader.predict("Which Hollywood actor is testing OpenAI's Sora model?", None, api_name="/ask")["citations"]
    before = corpus_state(settings, app_engine)
    path = tmp_path / "intrusion.txt"
    path.write_text("The Quentaria intrusion report says the harbour closed for nine days.\n", encoding="utf-8")
    with pytest.raises(AppError, match=r"your role \(reader\) may not add documents"):
        reader.predict([handle_file(str(path))], api_name="/upload")
    with pytest.raises(AppError, match="may not remove documents"):
        reader.predict(["000_5eaa805196ca9fd9.txt"], api_name="/remove")
    with pytest.raises(AppError, match="may not re-index"):
        reader.predict(api_name="/reingest")
    assert corpus_state(settings, app_engine) == before
    trail = AuditTrail(settings.audit_path).read()
    refused = [e for e in trail if e.who == "rita"]
    assert [e.action for e in refused] == ["upload", "remove", "reingest"]
    assert refused[0].file == "intrusion.txt" and refused[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert all(e.outcome.startswith("refused") for e in refused)


@pytest.mark.slow
def test_editor_upload_is_answerable_and_audited(secured, tmp_path):
    url, settings, app_engine, _ = secured
    editor = sign_in(url, "ed", EDITOR_PW)
    path = tmp_path / "Glimmerfen regatta.txt"
    path.write_text("Glimmerfen regatta\n\nThe Glimmerfen regatta drew 310 rowing boats to the lagoon.\n"
                    "The winning crew rowed the lagoon course in eleven minutes.\n", encoding="utf-8")
    message = editor.predict([handle_file(str(path))], api_name="/upload")[0]
    assert "Added uploads/Glimmerfen_regatta.txt" in message, message
    answer = sign_in(url, "rita", READER_PW).predict("How many rowing boats came to the Glimmerfen regatta?", None,
                                                     api_name="/ask")
    assert answer["citations"][0]["source"] == "uploads/Glimmerfen_regatta.txt"
    entry = [e for e in AuditTrail(settings.audit_path).read() if e.who == "ed"][-1]
    assert (entry.action, entry.file, entry.outcome) == ("upload", "Glimmerfen regatta.txt",
                                                         "added as uploads/Glimmerfen_regatta.txt")
    assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # The editor may remove it again; the trail says so.
    assert "Removed uploads/Glimmerfen_regatta.txt" in editor.predict(["uploads/Glimmerfen_regatta.txt"],
                                                                      api_name="/remove")
    assert AuditTrail(settings.audit_path).read()[-1].outcome == "removed"
    assert "unchanged" in editor.predict(api_name="/reingest")
    last = AuditTrail(settings.audit_path).read()[-1]
    assert (last.who, last.action, last.outcome) == ("ed", "reingest", "0 added, 0 updated, 0 removed")
    assert "Glimmerfen" not in json.dumps([e.outcome for e in AuditTrail(settings.audit_path).read()]).replace(
        "Glimmerfen_regatta", "")  # file names yes, text of the document no


@pytest.mark.slow
def test_question_rate_limit_triggers_and_recovers(secured):
    url, _, _, demo = secured
    access: Access = demo.qa_ui.access
    clock = Clock()
    clock.now = time.monotonic()
    access.questions.clock = clock  # the real server and route; only the minute passes faster
    client = sign_in(url, "ed", EDITOR_PW)
    for _ in range(4):
        assert client.predict("Who leaked access to Sora on Hugging Face?", None, api_name="/ask")["citations"]
    with pytest.raises(AppError, match=r"too many questions: the limit is 4 a minute; try again in \d+ s"):
        client.predict("Who leaked access to Sora on Hugging Face?", None, api_name="/ask")
    with pytest.raises(AppError, match="too many questions"):
        client.predict("Who leaked access to Sora on Hugging Face?", None, api_name="/chat")
    assert sign_in(url, "rita", READER_PW).predict("Who leaked access to Sora on Hugging Face?", None, api_name="/ask")["citations"]
    clock.now += 61
    assert client.predict("Who leaked access to Sora on Hugging Face?", None, api_name="/ask")["citations"]


@pytest.mark.slow
def test_app_py_refuses_the_network_without_users(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["QA_USERS_FILE"] = ""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--host", "0.0.0.0", "--port", str(free_port())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "QA_USERS_FILE" in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60  # refused before any model is loaded


@pytest.mark.slow
def test_app_py_with_users_on_the_network_keeps_secrets_out_of_logs(seeded, tmp_path):
    settings = copy_store(seeded, tmp_path)
    make_users(tmp_path / "users.json")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") and k != "OPENAI_API_KEY"}
    env.update(QA_CORPUS_DIR=str(settings.corpus_dir), QA_PERSIST_DIR=str(settings.persist_dir),
               QA_COLLECTION=settings.collection, QA_MODE="offline", QA_USERS_FILE=str(tmp_path / "users.json"),
               QA_LOGIN_DELAY="0.1")
    log_path = tmp_path / "app.log"
    url = f"http://127.0.0.1:{port}/"  # bound to every address; reached on loopback only
    with run_app_py(["--host", "0.0.0.0", "--port", str(port)], env, tmp_path, log_path, url, ready_status=(200, 401)):
        assert httpx.post(url + "login", data={"username": "rita", "password": EDITOR_PW}).status_code == 400
        reader = sign_in(url, "rita", READER_PW)
        reader.predict(SECRET_QUESTION, None, api_name="/ask")
        doc = tmp_path / "note.txt"
        doc.write_text("A note about the Quentaria harbour lanterns, 900 of them.\n", encoding="utf-8")
        with pytest.raises(AppError):
            reader.predict([handle_file(str(doc))], api_name="/upload")
        sign_in(url, "ed", EDITOR_PW).predict([handle_file(str(doc))], api_name="/upload")
    written = [log_path, tmp_path / "users.json", settings.audit_path]
    assert settings.audit_path.is_file()
    for path in written + [p for p in tmp_path.rglob("*.log") if p not in written]:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert READER_PW not in text and EDITOR_PW not in text, path
        assert SECRET_QUESTION not in text and "Zanzibar" not in text, path
    assert "failed sign-in" in log_path.read_text()


def test_loopback_without_users_is_the_local_operator_without_limits(tmp_path):
    handler = ui.UI(StubEngine(), qa.Settings(questions_per_minute=1, persist_dir=tmp_path / "store"))
    assert handler.access.identify(request()).role == "editor" and not handler.access.limited
    for _ in range(3):
        assert handler.api_ask("Why?", None, request=request())["text"]
    anonymous = ui.UI(StubEngine(), qa.Settings(host="0.0.0.0", allow_anonymous=True, questions_per_minute=1,
                                                persist_dir=tmp_path / "store"))
    assert anonymous.access.identify(request(host="10.0.0.7")).role == "reader"
    assert anonymous.api_ask("Why?", None, request=request(host="10.0.0.7"))["text"]
    with pytest.raises(ui.gr.Error, match="too many questions"):
        anonymous.api_ask("Why?", None, request=request(host="10.0.0.7"))
    assert anonymous.api_ask("Why?", None, request=request(host="10.0.0.8"))["text"]  # per address
    with pytest.raises(ui.gr.Error, match="may not add documents"):
        anonymous.add_documents([], request(host="10.0.0.7"))


def test_uploads_per_hour_per_user(tmp_path):
    make_users(tmp_path / "users.json")
    handler = ui.UI(StubEngine(), qa.Settings(users_file=tmp_path / "users.json", uploads_per_hour=1,
                                              persist_dir=tmp_path / "store"))
    handler.add_documents([], request("ed"))
    with pytest.raises(ui.gr.Error, match="too many uploads: the limit is 1 an hour; try again in 60 min"):
        handler.add_documents([], request("ed"))
