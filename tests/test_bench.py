"""Smoke tests of the benchmark command: one --tiny run end to end. No timing or target status is asserted
(the machine is shared); the figures themselves are read from its reports."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--tiny", "--no-app", "--scales", "100", "--workdir", str(out),
            "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md")]
    return out, argv


def test_smoke_tiny_run_writes_every_section_whatever_the_targets_status(tiny_run, capsys):
    out, argv = tiny_run
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    for heading in ("1. ingestion", "2. re-ingestion", "3. cold start", "4. warm latency", "5. scale",
                    "6. baseline", "== targets"):
        assert heading in text, heading
    assert "pipeline / raw throughput" in text
    assert "ours / baseline" in text
    assert "(failed)" not in text

    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert data["errors"] == {}
    assert data["config"]["mode"] == "tiny"
    names = {f["name"] for f in data["figures"]}
    assert "unchanged / first" in names
    assert "qa ask --mode offline: process start to exit" in names
    assert any(n.startswith("100 chunks: peak RSS") for n in names)
    for f in data["figures"]:
        if "median" in f:
            assert f["n"] >= 1 and f["min"] <= f["median"] <= f["max"]
    targets = {t["name"]: t["status"] for t in data["targets"]}
    assert len(targets) == 5 and set(targets.values()) <= {"PASS", "MISS", "n/a"}
    assert targets["app.py ready, existing index"] == "n/a"  # --no-app

    md = (out / "bench.md").read_text(encoding="utf-8")
    assert "| figure | value | n | note |" in md and "#### Targets" in md
    # The work folder is removed at the end (only the reports stay).
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md"]


def test_stat_and_percentile():
    s = bench.Stat([3.0, 1.0, 2.0], "ms")
    assert (s.median, s.min, s.max, s.n) == (2.0, 1.0, 3.0, 3)
    assert s.fmt() == "2.00 [1.00–3.00] ms"
    assert bench.Stat([], "s").fmt() == "n/a"
    assert bench.percentile([1, 2, 3, 4, 5], 50) == 3
    assert bench.percentile([0, 10], 95) == pytest.approx(9.5)


def test_plan_modes_and_section_selection():
    parse = bench.build_parser().parse_args
    quick = bench.make_plan(parse(["--quick", "--no-cache"]))
    full = bench.make_plan(parse(["--no-cache"]))
    assert quick.scales == [1000] and full.scales == [1000, 10_000, 100_000]
    assert full.ingest_runs >= 3 and quick.cache_dir is None
    only = bench.make_plan(parse(["--only", "warm,cold", "--scales", "2e3,500"]))
    assert only.sections == ["warm", "cold"] and only.scales == [500, 2000]
    with pytest.raises(SystemExit):
        bench.make_plan(parse(["--only", "nonsense"]))


def test_qa_bench_runs_the_checkout_benchmark(capsys):
    from qa import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--scales" in out and "--testset" in out  # the benchmark's own parser answered
