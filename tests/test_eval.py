"""The evaluation: metric arithmetic on hand-computed cases, schema errors, and the quality bar."""

import json

import pytest

import qa
from qa.evaluation import (
    CaseResult,
    citation_checks,
    doc_ranking,
    facts_found,
    load_testset,
    reciprocal_rank,
    summarize,
)

from conftest import ROOT

TESTSET = ROOT / "tests" / "eval" / "testset.jsonl"


def test_ranking_metrics():
    docs = doc_ranking(["b", "b", "a", "c", "a"])
    assert docs == ["b", "a", "c"]
    assert reciprocal_rank(docs, ["a"]) == 0.5
    assert reciprocal_rank(docs, ["z"]) == 0.0
    assert reciprocal_rank(docs, ["c", "b"]) == 1.0


def test_fact_alternatives_are_case_insensitive():
    assert facts_found("Ashton KUTCHER teste [1]", [["Kutcher", "كوتشر"], ["1080p"]]) == [True, False]


def test_citation_validity():
    corpus = {"a.txt": "Sora peut générer une minute de vidéo. Autre phrase."}
    good = [{"number": 1, "source": "a.txt", "snippet": "Sora peut générer une minute de vidéo."}]
    assert citation_checks("Réponse [1]", good, corpus) == (1, 1)
    # A snippet that is not verbatim in its source is invalid.
    forged = [{"number": 1, "source": "a.txt", "snippet": "Sora génère dix minutes."}]
    assert citation_checks("Réponse [1]", forged, corpus) == (0, 1)
    # A marker with no citation behind it makes the answer's citations invalid.
    assert citation_checks("Réponse [1] [2]", good, corpus)[0] == 0
    # A citation never referenced in the text does not count as valid.
    assert citation_checks("Réponse sans marqueur", good, corpus) == (0, 1)


def _result(**kw):
    base = dict(id="x", language="en", answerable=True, question="q", retrieved=["a"], hit1=True, hit5=True, rr=1.0,
                facts=[True], cited=["a"], cited_expected=1, citations_valid=1, citations_total=1, refused=False,
                latency_ms=10.0, answer="a [1]")
    base.update(kw)
    return CaseResult(**base)


def test_summary_on_hand_computed_cases():
    results = [
        _result(),
        _result(id="y", hit1=False, rr=0.5, facts=[True, False], cited=["a", "b"], cited_expected=1,
                citations_total=2, citations_valid=1, latency_ms=30.0),
        _result(id="z", answerable=False, refused=True, facts=[], cited=[], cited_expected=0, citations_total=0,
                citations_valid=0, latency_ms=20.0),
        _result(id="w", refused=True, hit5=False, hit1=False, rr=0.0, facts=[False], cited=[], cited_expected=0,
                citations_total=0, citations_valid=0, latency_ms=40.0),
    ]
    s = summarize(results)
    assert s["hit@1"] == pytest.approx(1 / 3)
    assert s["hit@5"] == pytest.approx(2 / 3)
    assert s["mrr"] == pytest.approx(0.5)
    assert s["fact_recall"] == pytest.approx(2 / 4)
    assert s["citation_precision"] == pytest.approx(2 / 3)
    assert s["citation_validity"] == pytest.approx(2 / 3)
    assert s["refusal_accuracy"] == 1.0
    assert s["false_refusal_rate"] == pytest.approx(1 / 3)
    assert s["latency_p50_ms"] == 25.0


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "invalid JSON"),
        ('{"id": "a", "question": "q", "language": "en", "expected_sources": [], "expected_facts": [], '
         '"answerable": true}', "at least one expected source"),
        ('{"id": "a", "question": "q", "language": "en", "expected_sources": ["x"], "expected_facts": ["str"], '
         '"answerable": true}', "expected_facts"),
        ('{"id": 3, "question": "q", "language": "en", "expected_sources": ["x"], "expected_facts": [], '
         '"answerable": "yes"}', "'id' must be a str"),
    ],
)
def test_schema_errors_name_the_line(tmp_path, line, message):
    good = json.dumps({"id": "ok", "question": "q", "language": "en", "expected_sources": ["x"],
                       "expected_facts": [["a"]], "answerable": True})
    path = tmp_path / "set.jsonl"
    path.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(qa.ConfigError, match=rf"set.jsonl:3: .*{message}"):
        load_testset(path)


def test_fixed_testset_meets_its_own_contract():
    cases = load_testset(TESTSET)
    langs = {lang: sum(c.language == lang for c in cases) for lang in ("en", "fr", "ar", "zh")}
    assert len(cases) >= 60 and all(langs[lang] >= 8 for lang in ("fr", "ar", "zh")), langs
    assert sum(not c.answerable for c in cases) >= 8
    assert sum(bool(c.history) for c in cases) >= 5
    seeds = {p.name for p in (ROOT / "seeds").iterdir()}
    covered = {s for c in cases for s in c.expected_sources}
    assert covered == seeds


def _use_store(monkeypatch, settings) -> None:
    for key, value in {"QA_CORPUS_DIR": settings.corpus_dir, "QA_PERSIST_DIR": settings.persist_dir,
                       "QA_COLLECTION": settings.collection}.items():
        monkeypatch.setenv(key, str(value))


@pytest.mark.slow
def test_dev_set_keeps_its_figures_and_beats_every_baseline(seeded, monkeypatch, tmp_path, capsys):
    """The Sora dev set (settings were chosen on it): a regression check, not evidence of quality."""
    from qa.cli import main

    _use_store(monkeypatch, seeded)
    out = tmp_path / "eval.json"
    code = main(["eval", "--testset", str(TESTSET), "--json", str(out), "--markdown", str(tmp_path / "eval.md"),
                 "--min", "hit@5=0.95", "--min", "mrr=0.95", "--min", "fact_recall=0.85",
                 "--min", "citation_validity=1.0", "--min", "citation_precision=0.93",
                 "--min", "refused_off_topic=1.0", "--min", "refused_absent=0.6", "--max", "false_refusal_rate=0.03"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "ours" in printed.out and "llamaindex_default" in printed.out
    report = json.loads(out.read_text(encoding="utf-8"))
    ours = report["systems"]["ours"]["overall"]
    for name in ("bm25_only", "dense_only", "llamaindex_default"):
        base = report["systems"][name]["overall"]
        for metric in ("hit@5", "mrr", "fact_recall"):
            assert ours[metric] > base[metric], (name, metric, ours[metric], base[metric])
    assert (tmp_path / "eval.png").stat().st_size > 1000


# Held-out figures measured once the settings were frozen (README, "Evaluation"), with a small margin. They sit
# below the generalisation issue's bar where the README says so; these tests keep them from getting worse.
@pytest.mark.slow
def test_held_out_sora_questions(seeded, monkeypatch, capsys):
    from qa.cli import main

    _use_store(monkeypatch, seeded)
    code = main(["eval", "--testset", str(ROOT / "tests" / "eval" / "heldout.jsonl"), "--no-baselines",
                 "--min", "hit@5=0.96", "--min", "mrr=0.90", "--min", "passage_hit@1=0.83", "--min", "fact_recall=0.80",
                 "--min", "citation_validity=1.0", "--min", "citation_precision=0.86",
                 "--min", "refused_off_topic=1.0", "--min", "refused_absent=0.15", "--max", "false_refusal_rate=0.05"])
    assert code == 0, capsys.readouterr().err


# Floors on the XQuAD held-out fold, per scenario: English questions over Arabic + Chinese articles, and the
# hard negatives (on the topic of an indexed article, asking for a fact that was cut out of it).
HELD_OUT_XQUAD = {
    "en-over-ar-zh": {"min": {"hit@5": 0.98, "passage_hit@1": 0.83, "fact_recall": 0.79, "citation_validity": 1.0,
                              "refused_absent": 0.70}, "max": {"false_refusal_rate": 0.075}},
    "gaps": {"min": {"hit@5": 0.96, "passage_hit@1": 0.78, "fact_recall": 0.76, "citation_validity": 1.0,
                     "refused_absent": 0.48}, "max": {"false_refusal_rate": 0.10}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HELD_OUT_XQUAD))
def test_held_out_xquad_scenario(name, tmp_path, capsys):
    from qa.cli import main

    scenario = ROOT / "tests" / "eval" / "xquad" / "heldout" / name
    bounds = [arg for kind in ("min", "max") for metric, value in HELD_OUT_XQUAD[name][kind].items()
              for arg in (f"--{kind}", f"{metric}={value}")]
    code = main(["eval", "--corpus", str(scenario / "corpus"), "--store", str(tmp_path / "store"),
                 "--testset", str(scenario / "testset.jsonl"), "--no-baselines", *bounds])
    assert code == 0, capsys.readouterr().err


def test_a_failed_threshold_exits_non_zero(seeded, monkeypatch, capsys):
    from qa.cli import main

    _use_store(monkeypatch, seeded)
    assert main(["eval", "--testset", str(TESTSET), "--no-baselines", "--min", "hit@1=1.01"]) == 1
    assert "threshold failed: hit@1" in capsys.readouterr().err
    assert main(["eval", "--min", "nonsense=1"]) == 1


def test_llm_answers_are_checked_apart_from_the_guard():
    from qa.evaluation import shown_claims

    citations = [{"number": 1, "passage": "Sora makes videos of 20 seconds."}, {"number": 2, "snippet": "In 2024."}]
    assert shown_claims("Videos last 20 seconds [1]. It came in 2024 [2].", citations, "How long?") == (0, 0)
    assert shown_claims("Videos last 60 seconds [1]. It is great.", citations, "How long?") == (1, 1)
    assert shown_claims("It costs 20 dollars [7].", citations, "Price in 2024?") == (1, 0)  # [7] is no source
    assert shown_claims("Videos last 20 seconds. [1] It came in 2024. [2]", citations, "How long?") == (0, 0)
