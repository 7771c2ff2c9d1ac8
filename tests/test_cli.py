"""The command line: smoke run end to end, manifest verbs, and exit codes (0 / 2 / 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from synth.cli import main
from synth.manifest import read_manifest, write_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    r = subprocess.run(
        [sys.executable, "-m", "synth", "run", "pipelines/smoke.yaml", "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_smoke_run_writes_the_run_directory(smoke_run):
    for name in ("manifest.parquet", "pipeline.yaml", "stats.json", "run.json"):
        assert (smoke_run / name).is_file(), name
    assert main(["manifest", "validate", str(smoke_run)]) == 0
    stats = json.loads((smoke_run / "stats.json").read_text())
    assert stats["manifest"]["by_origin"]["real"] > 0 and stats["steps"]["digits"]["read"] > 0
    table = read_manifest(smoke_run)
    assert set(table.column("modality").to_pylist()) == {"image", "text"}
    assert len(set(table.column("run_id").to_pylist())) == 1


def test_manifest_stats_json_counts_origin_and_status(smoke_run, capsys):
    assert main(["manifest", "stats", str(smoke_run), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["total"] == sum(s["by_origin"].values()) == sum(s["by_status"].values())
    assert "real/kept" in s["by_origin_status"]


def test_manifest_query(smoke_run, capsys):
    assert main(["manifest", "query", str(smoke_run), "select origin, count(*) as n from manifest group by 1 order by 1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["origin"] == "real" and rows[0]["n"] > 0
    assert main(["manifest", "query", str(smoke_run), "select nope from manifest"]) == 2


def test_rerun_resumes_without_changes(smoke_run):
    before = pq.read_table(smoke_run / "manifest.parquet").drop_columns(["created_at"])
    r = subprocess.run(
        [sys.executable, "-m", "synth", "run", "pipelines/smoke.yaml", "--out", str(smoke_run)], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert pq.read_table(smoke_run / "manifest.parquet").drop_columns(["created_at"]).equals(before)


def test_invalid_manifest_exits_2(smoke_run, tmp_path, capsys):
    t = read_manifest(smoke_run)
    bad = t.set_column(t.column_names.index("origin"), "origin", [["alien"] * t.num_rows])
    write_table(bad, tmp_path / "bad.parquet")
    assert main(["manifest", "validate", str(tmp_path / "bad.parquet")]) == 2
    assert "origin" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["run", "validate"])
def test_bogus_key_exits_2_naming_it(verb, tmp_path):
    raw = yaml.safe_load((ROOT / "pipelines" / "smoke.yaml").read_text())
    raw["bogus_key"] = 1
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(raw))
    r = subprocess.run(
        [sys.executable, "-m", "synth", verb, str(p), "--out", str(tmp_path / "o")]
        if verb == "run"
        else [sys.executable, "-m", "synth", verb, str(p)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "bogus_key" in r.stderr and "Traceback" not in r.stderr


def test_exit_codes(tmp_path, capsys):
    assert main(["validate", "pipelines/smoke.yaml"]) == 0
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert main(["run", "pipelines/smoke.yaml", "--no-such-flag"]) == 2
    assert main(["steps"]) == 0
    assert "digits" in capsys.readouterr().out
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "e", "sources": [{"type": "text_file", "path": str(empty)}]}))
    assert main(["run", str(p), "--out", str(tmp_path / "r")]) == 2
    assert "produced no samples" in capsys.readouterr().err


def test_unexpected_failure_exits_1(smoke_run, monkeypatch, capsys):
    import synth.manifest_ops as ops

    monkeypatch.setattr(ops, "stats", lambda t: 1 / 0)
    assert main(["manifest", "stats", str(smoke_run)]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
    assert main(["manifest", "validate", "no-such-dir"]) == 2
