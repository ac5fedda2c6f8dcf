"""The package's layers (README, "Layout"): a module imports only from its own layer or the layers above it."""

import re

from conftest import ROOT

LAYERS = [
    ["errors", "settings", "schema", "timing"],
    ["text", "readers", "loading", "chunking", "answer_types", "references"],
    ["embeddings", "store", "lexical", "sentences", "snapshot", "documents"],
    ["uploads", "ingest"],
    ["query", "retrievers", "postprocessors", "support", "rerank", "evidence", "choice", "answering", "overview"],
    ["llm", "guard", "generation"],
    ["engine"],
    ["users", "limits", "audit", "access"],
    ["ui", "ui_corpus", "render", "openai_api", "cli", "evaluation", "baselines", "conversations", "loader"],
]


def test_every_module_is_in_a_layer_and_imports_only_upwards():
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    modules = {p.stem for p in (ROOT / "qa").glob("*.py")} - {"__init__"}
    assert modules == set(layer_of), f"modules missing from the README's table: {modules ^ set(layer_of)}"
    wrong = []
    for name in sorted(modules):
        text = (ROOT / "qa" / f"{name}.py").read_text(encoding="utf-8")
        for dep in set(re.findall(r"^\s*(?:from qa\.(\w+) import|import qa\.(\w+))", text, re.M)):
            dep = dep[0] or dep[1]
            if layer_of[dep] > layer_of[name]:
                wrong.append(f"{name} (layer {layer_of[name]}) imports {dep} (layer {layer_of[dep]})")
    assert not wrong, wrong
