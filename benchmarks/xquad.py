"""Turn the XQuAD dev split into cross-lingual test sets for this project, with a tune and a held-out fold.

XQuAD (Artetxe, Ruder and Yogatama 2019) has the same 32 articles, paragraphs and questions in six languages.
That lets us index an article in one language, ask its questions in another and score the answer against
the span in either language. XQuAD has no unanswerable questions, so the questions of articles left out of
a scenario's corpus serve as on-topic unanswerable cases.

The 32 articles are split into two folds of 16, `tune` and `heldout`, by sorting their titles on
sha256(f"{SEED}:{title}"): the first 16 go to tune, the rest to heldout. Settings may be chosen on tune only.
Each fold gets three scenarios, each a folder `<out>/<fold>/<scenario>/` holding `corpus/` (one text file
per indexed article) and `testset.jsonl` (the format `qa.evaluation.load_testset` reads):

- en-over-ar-zh: English questions over 6 Arabic and 6 Chinese articles; 4 articles left out.
- zh-over-en-ar: Chinese questions over 6 English and 6 Arabic articles; 4 other articles left out.
- mixed: 2 articles in each of en/ar/zh/de/es/ru; questions rotate over the six languages, so one in six is
  asked in its article's own language (language centring must not hurt a true same-language match) and
  the rest cross languages; the questions of 4 further left-out articles, in rotating languages, are the
  negatives.
- gaps: all 16 articles, in rotating languages, each with one paragraph removed (chosen by hash); questions
  are in the five other languages. The removed paragraphs' questions are the negatives, and the hard kind:
  on the topic of an indexed article, often naming its entities, but asking for a fact that was cut out (a
  question whose answer span still occurs in the indexed text is dropped). This is what "on-topic but
  absent" means on a real corpus, where left-out articles are easy to refuse.

An answerable case's expected_facts is one group: the span in the article's language first, then in the
question's language, then in English (duplicates dropped). Output is deterministic; rerunning overwrites
`<out>/tune` and `<out>/heldout` and must reproduce the committed files byte for byte.

    python benchmarks/xquad.py --src /work/shared/datasets/xquad-dev --out tests/eval/xquad
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

SEED = 20191011  # fixed so the fold split never changes; any value would do
LANGS = ["en", "ar", "zh", "de", "es", "ru"]
FOLDS = ["tune", "heldout"]
LICENSE_NAME = "LICENSE-CC-BY-SA-4.0.txt"
COMMAND = "python benchmarks/xquad.py --src /work/shared/datasets/xquad-dev --out tests/eval/xquad"

# The same set qa.engine strips from questions: zero-width and direction marks are invisible in a file,
# a BOM at the start of a paragraph would become a BOM inside the file, and an answer that an LLM writes
# never contains them, so a span that kept them (one Spanish span has two U+200B) could never match.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")


def clean(text: str) -> str:
    return _INVISIBLE.sub("", text).strip()


def safe_title(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")


def load(src: Path) -> dict[str, list[dict]]:
    data = {lang: json.loads((src / f"xquad-dev.{lang}.json").read_text(encoding="utf-8"))["data"]
            for lang in LANGS}
    # The scenarios pair article i / paragraph j / question k across languages, so refuse data that is not
    # parallel rather than silently pairing the wrong answers.
    for lang in LANGS:
        assert len(data[lang]) == len(data["en"]), lang
        for a, e in zip(data[lang], data["en"]):
            assert a["title"] == e["title"] and len(a["paragraphs"]) == len(e["paragraphs"]), (lang, a["title"])
            for p, q in zip(a["paragraphs"], e["paragraphs"]):
                assert [x["id"] for x in p["qas"]] == [x["id"] for x in q["qas"]], (lang, a["title"])
    return data


def split_folds(titles: list[str]) -> dict[str, list[str]]:
    # A hash order, not random.shuffle: shuffle's output is not guaranteed to stay the same across Pythons.
    order = sorted(titles, key=lambda t: hashlib.sha256(f"{SEED}:{t}".encode()).hexdigest())
    half = len(order) // 2
    return {"tune": order[:half], "heldout": order[half:]}


def scenarios(articles: list[str]) -> dict[str, tuple[list[tuple[str, str]], list[str]]]:
    """Per scenario: (indexed (title, article language) pairs, left-out titles), from a fold's 16 titles."""
    a = articles
    # Each scenario leaves out a different quarter of the fold, so its negatives are not the other scenarios'.
    return {
        "en-over-ar-zh": ([(t, "ar" if i % 2 == 0 else "zh") for i, t in enumerate(a[:12])], a[12:]),
        "zh-over-en-ar": ([(t, "en" if i % 2 == 0 else "ar") for i, t in enumerate(a[4:])], a[:4]),
        "mixed": ([(t, LANGS[i % 6]) for i, t in enumerate(a[:4] + a[8:])], a[4:8]),
        "gaps": ([(t, GAPS_LANGS[i % 6]) for i, t in enumerate(a)], []),
    }


GAPS_LANGS = ["ar", "zh", "en", "de", "es", "ru"]


def removed_paragraph(title: str, paragraphs: int) -> int:
    """The paragraph the gaps scenario cuts out of an article (fixed by hash, like the folds)."""
    return int(hashlib.sha256(f"{SEED}:gap:{title}".encode()).hexdigest(), 16) % paragraphs


def question_language(scenario: str, article_lang: str | None, n: int) -> str:
    """Language of the n-th question of an article (article_lang None: the article is left out)."""
    if scenario == "en-over-ar-zh":
        return "en"
    if scenario == "zh-over-en-ar":
        return "zh"
    if scenario == "gaps":
        return [x for x in LANGS if x != article_lang][n % 5]
    return LANGS[n % 6]


def build(data: dict[str, list[dict]], fold: str, scenario: str, indexed: list[tuple[str, str]],
          left_out: list[str], folder: Path) -> tuple[int, int, int, int]:
    """Write one scenario's corpus and test set; return (answerable, unanswerable, corpus chars, dropped)."""
    index = {a["title"]: i for i, a in enumerate(data["en"])}
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    cases: list[dict] = []
    chars = dropped = 0
    articles: list[tuple[str, str | None]] = [*indexed, *[(t, None) for t in left_out]]
    for title, lang in articles:
        i = index[title]
        source = ""
        gap = removed_paragraph(title, len(data["en"][i]["paragraphs"])) if scenario == "gaps" else -1
        if lang is not None:
            text = "\n\n".join(clean(p["context"]) for j, p in enumerate(data[lang][i]["paragraphs"]) if j != gap)
            source = f"{lang}_{safe_title(title)}.txt"
            (corpus / source).write_text(text, encoding="utf-8")
            chars += len(text)
        n = 0
        for j, paragraph in enumerate(data["en"][i]["paragraphs"]):
            for k, question in enumerate(paragraph["qas"]):
                qlang = question_language(scenario, lang, n)
                n += 1
                item = {x: data[x][i]["paragraphs"][j]["qas"][k] for x in LANGS}
                case = {"id": f"xq-{fold}-{scenario}-{safe_title(title)}-p{j}-{question['id']}",
                        "question": clean(item[qlang]["question"]), "language": qlang,
                        "expected_sources": [], "expected_facts": [], "answerable": False, "kind": "absent"}
                if j == gap:
                    # Still answerable if its span survives elsewhere in the article: not a negative then.
                    spans = [clean(item[x]["answers"][0]["text"]) for x in (lang, "en")]
                    if any(s and s in text for s in spans):
                        dropped += 1
                        continue
                elif lang is not None:
                    spans = [clean(item[x]["answers"][0]["text"]) for x in (lang, qlang, "en")]
                    if not spans[0] or spans[0] not in text:
                        dropped += 1
                        continue
                    case["expected_sources"] = [source]
                    case["expected_facts"] = [list(dict.fromkeys(s for s in spans if s))]
                    case["answerable"] = True
                    del case["kind"]
                case["xquad_id"] = question["id"]
                case["paragraph"] = j
                cases.append(case)
    for case in cases:  # the promise the tests rely on: the first alternative is verbatim in the source
        if case["answerable"]:
            assert case["expected_facts"][0][0] in (corpus / case["expected_sources"][0]).read_text("utf-8")
    lines = [json.dumps(c, ensure_ascii=False) for c in cases]
    (folder / "testset.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    answerable = sum(c["answerable"] for c in cases)
    return answerable, len(cases) - answerable, chars, dropped


def notice(folds: dict[str, list[str]]) -> str:
    listing = "\n".join(f"- **{fold}**: " + ", ".join(sorted(folds[fold])) for fold in FOLDS)
    return f"""# XQuAD-derived cross-lingual test sets

**Source.** XQuAD: Mikel Artetxe, Sebastian Ruder and Dani Yogatama, "On the Cross-lingual Transferability
of Monolingual Representations", 2019 (arXiv:1910.11856), https://github.com/deepmind/xquad. Built from the
project's 32-article development subset of XQuAD (`xquad-dev.{{en,ar,zh,de,es,ru}}.json`).

**Licence.** XQuAD is licensed under CC BY-SA 4.0 (Creative Commons Attribution-ShareAlike 4.0
International). Everything in this folder is derived from it (articles reformatted into text files,
questions and answer spans rearranged into test cases, invisible zero-width and direction characters
removed) and is distributed under the same licence; see `{LICENSE_NAME}` next to this file.

**How it was generated.** From the repository root:

    {COMMAND}

The script is deterministic; `tests/test_xquad_data.py` regenerates it and checks it matches these files,
so do not edit them by hand.

**Folds.** The 32 articles are sorted on sha256("{SEED}:<title>"); the first 16 are `tune`, the rest
`heldout`:

{listing}

**Warning: never use `heldout` to choose settings** (models, thresholds, prompts, top-k, anything). Tune on
`tune` only and run `heldout` once, to report. (XQuAD's 16 other articles are not in the development subset
at all; they stay outside the project as its final test.)

**Scenarios** (each `<fold>/<scenario>/corpus/` plus `testset.jsonl`): `en-over-ar-zh` (English questions,
6 Arabic + 6 Chinese articles indexed), `zh-over-en-ar` (Chinese questions, 6 English + 6 Arabic), `mixed`
(2 articles in each of en/ar/zh/de/es/ru, questions in another language), `gaps` (all 16 articles in rotating
languages, each with one paragraph cut out; questions in the other five languages). The questions of the 4
articles a scenario leaves out are its unanswerable cases; in `gaps`, the questions of the cut paragraphs
(whose answer span does not occur in the indexed text) are. Each case also has `xquad_id` and `paragraph`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="folder with xquad-dev.<lang>.json")
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. tests/eval/xquad")
    args = parser.parse_args()
    data = load(args.src)
    titles = [a["title"] for a in data["en"]]
    assert len({safe_title(t) for t in titles}) == len(titles), "two titles map to the same file name"
    folds = split_folds(titles)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fold in FOLDS:
        # Start from empty so a scenario or file dropped from this script does not linger in the output.
        shutil.rmtree(args.out / fold, ignore_errors=True)
        for scenario, (indexed, left_out) in scenarios(folds[fold]).items():
            counts = build(data, fold, scenario, indexed, left_out, args.out / fold / scenario)
            rows.append((fold, scenario, len(indexed), *counts))
    (args.out / "NOTICE.md").write_text(notice(folds), encoding="utf-8")
    shutil.copyfile(args.src / LICENSE_NAME, args.out / LICENSE_NAME)

    print(f"{'fold':<8} {'scenario':<14} {'indexed':>7} {'answerable':>10} {'unanswerable':>12} "
          f"{'corpus chars':>12} {'dropped':>7}")
    for fold, scenario, n_indexed, answerable, unanswerable, chars, dropped in rows:
        print(f"{fold:<8} {scenario:<14} {n_indexed:>7} {answerable:>10} {unanswerable:>12} {chars:>12} {dropped:>7}")
    total_dropped = sum(r[-1] for r in rows)
    print(f"answer spans not found verbatim in their article (cases dropped): {total_dropped}")


if __name__ == "__main__":
    main()
