"""HTML rendering of answers and sources: escaped text, marker badges, highlighted quotes."""

from __future__ import annotations

import re

import pytest

from qa import render as ui
from qa.schema import Answer, Citation

XSS = "<img src=x onerror=alert(1)>"
MD_IMG = "![x](http://attacker/?q=1)"

def cite(n=1, **kw) -> Citation:
    base = dict(number=n, source="a/doc.txt", title="Title", snippet="The quoted sentence.", score=0.7,
                language="en", passage="Before it. The quoted sentence. After it.")
    return Citation(**{**base, **kw})


def test_answer_text_is_escaped_never_markup():
    html = ui.render_answer_html(f"Hello {XSS} and {MD_IMG} **bold** [1] [7]", [cite(1)])
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert MD_IMG in html  # Markdown shows as its characters (the chatbot renders no Markdown)
    assert "<strong>" not in html
    assert '<span class="qa-cite" title="Title">[1]</span>' in html
    assert "[7]" in html and "[7]</span>" not in html  # a marker with no citation stays plain text
    assert 'dir="auto"' in html


def test_streaming_answer_marks_every_marker_and_shows_pending():
    html = ui.render_answer_html("Part one [1] part two [2]", pending=True)
    assert html.count('class="qa-cite"') == 2 and "qa-typing" in html


def test_sources_panel_lists_each_citation_escaped_with_highlight():
    evil = cite(
        2,
        source='x/<b>"evil".txt',
        title=f"Title {XSS}",
        snippet=f"Snippet {MD_IMG} <script>alert(2)</script>.",
        passage=f"Intro {XSS}. Snippet {MD_IMG} <script>alert(2)</script>. Outro.",
        language="fr",
        url="javascript:alert(3)",
    )
    arabic = cite(1, title="عنوان", snippet="هذه جملة.", passage="قبل. هذه جملة. بعد.", language="ar")
    chinese = cite(3, title="标题", snippet="这是一句话。", passage="前面。这是一句话。后面。", language="zh")
    answer = Answer("t [1] [2] [3]", [arabic, evil, chinese], question=f"Q {XSS}", mode="extractive",
                    timings={"total": 0.2})
    html = ui.render_sources_html(answer)
    for raw in (XSS, "<script>", "<b>", '"evil"', "javascript:"):
        assert raw not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count('class="qa-source"') == 3
    assert [int(n) for n in re.findall(r'id="qa-src-(\d+)"', html)] == [1, 2, 3]
    assert "<mark>هذه جملة.</mark>" in html and "<mark>这是一句话。</mark>" in html
    assert "<mark>Snippet ![x](http://attacker/?q=1) &lt;script&gt;alert(2)&lt;/script&gt;.</mark>" in html
    assert 'class="qa-passage" dir="auto" lang="ar"' in html and 'class="qa-snippet" dir="auto" lang="zh"' in html
    assert "x/&lt;b&gt;&quot;evil&quot;.txt" in html  # the file name is shown, escaped
    assert "· <span class=\"qa-lang\">fr</span>" in html


def test_refused_answer_has_no_source_cards():
    html = ui.render_sources_html(Answer("no", refused=True, question="q"))
    assert "qa-source" not in html.replace("qa-sources", "") and "No passage" in html


@pytest.mark.parametrize(
    "passage,snippet,expected",
    [
        ("A b.  Two\n words here. C.", "Two words here.", "A b.  <mark>Two\n words here.</mark> C."),
        ("No match here.", "Absent sentence.", "No match here."),
        ("x < y. Then.", "x < y.", "<mark>x &lt; y.</mark> Then."),
    ],
)
def test_highlight(passage, snippet, expected):
    assert ui.highlight(passage, snippet) == expected
