"""A PDF or DOCX in the corpus is answerable with citations that name the file and, for a PDF, the page."""

from __future__ import annotations

import io

import docx
from fpdf import FPDF

import qa
from qa.loading import chunk_pages, page_in, parse_pdf

PAGES = [
    "Rapport annuel du port de Quentaria. Le port a accueilli de nombreux navires marchands cette annee. "
    "Les quais ont ete renoves au printemps par la ville.",
    "Le phare de Quentaria a ete allume pour la premiere fois en 1867 par l'ingenieure Odile Varnier. "
    "Sa lumiere porte a vingt-deux milles nautiques.",
    "La criee du port vend surtout du merlu et de la sardine. Les pecheurs partent avant l'aube.",
]


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_chunk_pages_locate_each_page_inside_a_chunk():
    f = parse_pdf(make_pdf(PAGES), "port.pdf")
    pages = chunk_pages(f, f.text)
    assert pages.startswith("1:0,2:") and ",3:" in pages
    assert page_in(pages, f.text, "Odile Varnier") == 2 and page_in(pages, f.text, "merlu") == 3
    assert page_in("", f.text, "merlu") == 0


def test_pdf_and_docx_facts_are_answered_with_file_and_page(fresh):
    (fresh.corpus_dir / "port.pdf").write_bytes(make_pdf(PAGES))
    document = docx.Document()
    document.add_heading("Glimmerfen regatta", 1)
    document.add_paragraph("The Glimmerfen regatta drew 310 rowing boats to the lagoon. The winning crew rowed "
                           "the lagoon course in eleven minutes.")
    out = io.BytesIO()
    document.save(out)
    (fresh.corpus_dir / "regatta.docx").write_bytes(out.getvalue())
    report = qa.ingest(fresh)
    assert report.added == 2 and not report.skipped
    engine = qa.QAEngine(fresh)

    answer = engine.ask("Who first lit the Quentaria lighthouse?")
    assert not answer.refused and "Odile Varnier" in answer.text
    cite = answer.citations[0]
    assert cite.source == "port.pdf" and cite.page == 2 and cite.snippet in cite.passage

    answer = engine.ask("How many rowing boats came to the Glimmerfen regatta?")
    assert not answer.refused and "310" in answer.text
    assert answer.citations[0].source == "regatta.docx" and answer.citations[0].page == 0
