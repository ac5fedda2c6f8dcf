"""The sign-in page in a real headless browser: a wrong password is refused, a reader gets the chat without
the upload box, an editor gets both (Debian's chromium driven by Playwright, as in test_browser.py)."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, sync_playwright

import qa
from qa.users import Users

from conftest import CHROMIUM, CHROMIUM_ARGS, free_port, serve

READER_PW = "reader-pass-Quokka-71"
EDITOR_PW = "editor-pass-Wombat-39"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url(seeded, engine, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth-browser")
    shutil.copytree(seeded.corpus_dir, base / "corpus")
    shutil.copytree(seeded.persist_dir, base / "store")
    users = Users(base / "users.json")
    users.add("rita", READER_PW, "reader")
    users.add("ed", EDITOR_PW, "editor")
    settings = qa.Settings(corpus_dir=base / "corpus", persist_dir=base / "store", collection=seeded.collection,
                           mode="offline", port=free_port(), users_file=base / "users.json", login_delay=0.1)
    with serve(settings, engine.embed_model) as served:
        yield served[0]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def sign_in(browser, url: str, user: str, password: str) -> Page:
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US").new_page()
    page.goto(url)
    page.wait_for_selector("input[type=password]")
    page.locator("input:not([type=password])").first.fill(user)
    page.fill("input[type=password]", password)
    page.keyboard.press("Enter")
    return page


def test_login_page_guards_the_chat_and_roles_shape_it(browser, url):
    page = sign_in(browser, url, "rita", "wrong-password")
    page.wait_for_selector("text=/incorrect credentials/i")
    assert page.locator("#qa-question").count() == 0
    page.context.close()

    page = sign_in(browser, url, "rita", READER_PW)
    page.wait_for_selector("#qa-question textarea")
    page.wait_for_selector("#qa-signed-in >> text=Signed in as")
    assert "rita" in page.inner_text("#qa-signed-in") and "reader" in page.inner_text("#qa-signed-in")
    assert not page.locator("#qa-upload-box").is_visible()
    page.context.close()

    page = sign_in(browser, url, "ed", EDITOR_PW)
    page.wait_for_selector("#qa-question textarea")
    page.wait_for_selector("#qa-upload-box", state="visible")
    assert "editor" in page.inner_text("#qa-signed-in")
    page.context.close()
