"""kill -9 at any moment, then a re-run, gives exactly the manifest of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "tests" / "data" / "resume.yaml"


def _env():
    env = dict(os.environ, SYNTH_PLUGINS="plugins.slow_steps", SYNTH_PROGRESS="0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    return env


def _synth(*args):
    return [sys.executable, "-m", "synth", *args]


def _comparable(run_dir: Path):
    t = pq.read_table(run_dir / "manifest.parquet").drop_columns(["created_at"])
    return t.sort_by("id").to_pylist()


def _payloads(run_dir: Path):
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted((run_dir / "data").rglob("*")) if p.is_file()}


def test_sigkill_mid_run_then_resume_equals_clean_run(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(_synth("run", str(PIPELINE), "--out", str(clean)), check=True, env=_env(), cwd=ROOT, capture_output=True)

    proc = subprocess.Popen(
        _synth("run", str(PIPELINE), "--out", str(killed)), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    shard_dir = killed / "state" / "segment-0"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = list(shard_dir.glob("shard-*.parquet")) if shard_dir.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; raise the delay in resume.yaml"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = sorted(p.name for p in shard_dir.glob("shard-*.parquet"))
    assert 2 <= len(finished_before) < 6
    assert not (killed / "manifest.parquet").exists()
    mtimes = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("shard-*.parquet")}

    rerun = subprocess.run(_synth("run", str(PIPELINE), "--out", str(killed)), env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    # finished shards were skipped, not redone
    for name, mtime in mtimes.items():
        assert (shard_dir / name).stat().st_mtime_ns == mtime
    assert _comparable(killed) == _comparable(clean)
    assert not list(killed.rglob("*.tmp")), "no temporary files left behind"
    ids = [r["id"] for r in _comparable(killed)]
    assert len(ids) == len(set(ids))


def test_resume_with_other_shard_count_is_an_error(tmp_path):
    out = tmp_path / "r"
    subprocess.run(
        _synth("run", str(PIPELINE), "--out", str(out), "--set", "steps.slow_text.delay=0"),
        check=True,
        env=_env(),
        cwd=ROOT,
        capture_output=True,
    )
    r = subprocess.run(
        _synth("run", str(PIPELINE), "--out", str(out), "--set", "steps.slow_text.delay=0", "--set", "shards=3"),
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "shards=6" in r.stderr and "shards=3" in r.stderr
    r = subprocess.run(
        _synth("run", str(PIPELINE), "--out", str(out), "--set", "seed=99"), env=_env(), cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 2 and "different pipeline" in r.stderr


def test_results_do_not_depend_on_shard_count(tmp_path):
    from synth.config import load_pipeline
    from synth.executors.local import LocalExecutor

    rows = {}
    for shards in (1, 4):
        p = load_pipeline(PIPELINE, ["steps.slow_text.delay=0", f"shards={shards}"])
        LocalExecutor().run(p, tmp_path / str(shards))
        rows[shards] = _comparable(tmp_path / str(shards))
    assert rows[1] == rows[4]
    synthetic = [r for r in rows[1] if r["origin"] == "synthetic"]
    assert len(synthetic) == 24 and all(r["generator"] == "slow_text" and r["seed"] is not None for r in synthetic)
