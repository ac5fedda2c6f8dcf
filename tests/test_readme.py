"""The README's two set-up commands stay the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme.split("## Set up on a fresh machine")[1].split("\n## ")[0], re.S)
    assert len(blocks) == 2, "the README keeps exactly two set-up commands"
    run, test = (b.strip() for b in blocks)
    assert "app.py" in run and ".venv" in run
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines(), "the test command in .ci/run must be the README's, verbatim"
