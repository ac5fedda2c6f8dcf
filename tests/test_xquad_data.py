"""The committed XQuAD test sets (tests/eval/xquad) are what benchmarks/xquad.py makes, and keep their promises.

Fast, no models. Only the regeneration test needs the XQuAD source data; the others read committed files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.evaluation import load_testset

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "eval" / "xquad"
SRC = Path("/work/shared/datasets/xquad-dev")
TESTSETS = sorted(DATA.glob("*/*/testset.jsonl"))


def _cases(testset: Path) -> list[dict]:
    return [json.loads(line) for line in testset.read_text(encoding="utf-8").splitlines() if line.strip()]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_committed_data_is_present():
    # Six scenarios: a missing folder would otherwise make the per-file tests below pass vacuously.
    assert [str(t.parent.relative_to(DATA)) for t in TESTSETS] == [
        f"{fold}/{s}" for fold in ("heldout", "tune") for s in ("en-over-ar-zh", "gaps", "mixed", "zh-over-en-ar")]


@pytest.mark.skipif(not SRC.is_dir(), reason=f"XQuAD source data not on this machine ({SRC})")
def test_converter_reproduces_committed_data(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "xquad.py"), "--src", str(SRC), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    made, committed = _files(tmp_path), _files(DATA)
    assert sorted(made) == sorted(committed)
    changed = [name for name in made if made[name] != committed[name]]
    assert not changed, f"differ from a fresh run (edited by hand, or the script changed): {changed[:5]}"


@pytest.mark.parametrize("testset", TESTSETS, ids=lambda p: str(p.parent.relative_to(DATA)))
def test_validator_accepts(testset):
    assert load_testset(testset)


def test_no_article_in_both_folds():
    def articles(fold: str) -> tuple[set[str], set[str]]:
        # Titles from corpus file names, and question ids, which XQuAD shares across languages.
        titles = {p.stem.split("_", 1)[1] for p in (DATA / fold).glob("*/corpus/*.txt")}
        ids = {c["xquad_id"] for t in (DATA / fold).glob("*/testset.jsonl") for c in _cases(t)}
        return titles, ids

    (tune_titles, tune_ids), (held_titles, held_ids) = articles("tune"), articles("heldout")
    assert tune_titles and held_titles and tune_ids and held_ids
    assert not tune_titles & held_titles
    assert not tune_ids & held_ids


@pytest.mark.parametrize("testset", TESTSETS, ids=lambda p: str(p.parent.relative_to(DATA)))
def test_question_language_differs_from_article_language_in_most_cases(testset):
    answerable = [c for c in _cases(testset) if c["answerable"]]
    same = [c for c in answerable if c["language"] == c["expected_sources"][0].split("_", 1)[0]]
    if "mixed" in str(testset):  # one question in six on purpose, to keep same-language matches honest
        assert 0.1 < len(same) / len(answerable) < 0.25, len(same)
    else:
        assert same == []


@pytest.mark.parametrize("testset", TESTSETS, ids=lambda p: str(p.parent.relative_to(DATA)))
def test_answer_span_is_in_its_corpus_file(testset):
    corpus = testset.parent / "corpus"
    for case in _cases(testset):
        if case["answerable"]:
            # The converter puts the span in the article's own language first.
            text = (corpus / case["expected_sources"][0]).read_text(encoding="utf-8")
            assert case["expected_facts"][0][0] in text, case["id"]
        else:
            assert case["expected_sources"] == [] and case["expected_facts"] == [], case["id"]
