"""The Ray executor on a local 2-CPU Ray instance: same manifests as the local executor, the
distributed dedup equal to the local one, a killed worker retried, a killed driver resumed."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synth.config import Pipeline, load_pipeline
from synth.executors.local import LocalExecutor
from synth.steps import Filter, Params

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
RESUME = ROOT / "tests" / "data" / "resume.yaml"


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance (2 CPUs) for the module: in-process runs reuse it, CLI runs get --address."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=300 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


@pytest.fixture
def plugin_env(monkeypatch):
    """What `synth run` needs to find the test plug-ins; the executor forwards it to Ray workers."""
    monkeypatch.setenv("SYNTH_PLUGINS", "plugins.slow_steps")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
    return dict(os.environ)


def _synth(*args: str) -> list[str]:
    return [sys.executable, "-m", "synth", "run", *args]


def _comparable(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / "manifest.parquet").drop_columns(["created_at"]).sort_by("id").to_pylist()


def _payloads(run_dir: Path) -> dict[str, bytes]:
    data = run_dir / "data"
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()} if data.exists() else {}


# ---------------------------------------------------------------- same results as the local executor


def test_smoke_pipeline_on_ray_equals_local(tmp_path):
    """Runs first and without the shared instance: the CLI starts its own local Ray and stops it."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    LocalExecutor().run(load_pipeline(ROOT / "pipelines" / "smoke.yaml"), local)
    r = subprocess.run(_synth("pipelines/smoke.yaml", "--out", str(on_ray), "--executor", "ray"), cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _comparable(on_ray) == _comparable(local)
    assert _payloads(on_ray) == _payloads(local)


def test_driver_killed_mid_run_resumes_and_equals_local(tmp_path, ray_address, plugin_env):
    """tests/data/resume.yaml through the CLI on the shared instance: SIGKILL the driver after two
    shards, re-run the same command: finished shards are kept, the manifest equals a local run."""
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    LocalExecutor().run(load_pipeline(RESUME, ["steps.slow_text.delay=0.15"]), clean)
    cmd = _synth(str(RESUME), "--out", str(killed), "--executor", "ray", "--address", ray_address, "--set", "steps.slow_text.delay=0.15")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard_dir = killed / "state" / "segment-0"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if shard_dir.exists() and len(list(shard_dir.glob("shard-*.parquet"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; raise the delay"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the driver's actors die with it; a shard in flight may still land (atomically)
    before = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("shard-*.parquet")}
    assert 2 <= len(before) < 6 and not (killed / "manifest.parquet").exists()
    r = subprocess.run(cmd, cwd=ROOT, env=plugin_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert {n: (shard_dir / n).stat().st_mtime_ns for n in before} == before, "finished shards were redone"
    rows = _comparable(killed)
    assert rows == _comparable(clean)
    assert sum(row["origin"] == "synthetic" for row in rows) == 24
    assert not list(killed.rglob("*.tmp"))


def test_a_step_needing_more_than_the_cluster_has_is_a_config_error(tmp_path, ray_address, plugin_env):
    from synth.errors import ConfigError
    from synth.executors.ray import RayExecutor

    p = load_pipeline(RESUME, ["steps.slow_text.delay=0", "steps.min_words.resources={gpus: 1}"])
    with pytest.raises(ConfigError, match=r"min_words.*gpus=1.*GPU=0"):
        RayExecutor().run(p, tmp_path / "gpu")


class CrashParams(Params):
    marker: str


class CrashOnce(Filter):
    """Test-only (not registered): the first worker to score a sample creates ``marker`` and dies."""

    type_name = "crash_once"
    Params = CrashParams

    def score(self, samples, ctx):
        marker = Path(self.params.marker)
        if samples and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)  # the whole worker process, as an OOM kill or a lost node would
        return [{"crash_once": 1.0} for _ in samples]

    def decide(self, scores):
        return None


def test_an_unreachable_address_is_a_usage_error(tmp_path):
    r = subprocess.run(
        _synth("pipelines/smoke.yaml", "--out", str(tmp_path / "r"), "--executor", "ray", "--address", "127.0.0.1:1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no Ray cluster answers" in r.stderr and "ray start --head" in r.stderr


def test_a_step_the_workers_cannot_import_is_a_config_error(tmp_path, ray_address, monkeypatch):
    from synth.errors import ConfigError
    from synth.executors.ray import RayExecutor

    monkeypatch.delenv("PYTHONPATH", raising=False)  # the workers cannot import this test module
    base = load_pipeline(RESUME, ["steps.slow_text.delay=0"])
    p = Pipeline(name=base.name, sources=base.sources, steps=[CrashOnce(name="crash_once", marker=str(tmp_path / "m"))], shards=2)
    with pytest.raises(ConfigError, match=r"cannot import 'test_ray_executor'.*PYTHONPATH"):
        RayExecutor().run(p, tmp_path / "run")


def test_dedup_pipeline_with_a_killed_worker_equals_local(tmp_path, ray_address, plugin_env):
    """slow_text -> dedup -> min_words + a filter that kills its worker once: the dedup barrier runs
    through the Ray path, the dead actor is restarted and its shard retried, and the manifest
    equals the local run's."""
    from synth.dedup.distributed import has_dedup_seam
    from synth.executors.ray import RayExecutor

    marker = tmp_path / "crashed"
    config = load_pipeline(RESUME, ["steps.slow_text.delay=0"]).to_config()
    # one-word shingles at a low threshold: the generator's 8-words-of-16 texts overlap a lot
    config["steps"].insert(1, {"type": "dedup", "ngram": 1, "threshold": 0.5, "verify": "exact"})

    def pipeline():
        p = Pipeline.from_config(config)
        return Pipeline(
            name=p.name, sources=p.sources, steps=[*p.steps, CrashOnce(name="crash_once", marker=str(marker))], seed=p.seed, shards=p.shards
        )

    marker.write_text("reference run: do not crash")
    LocalExecutor().run(pipeline(), tmp_path / "local")
    marker.unlink()
    executor = RayExecutor(max_retries=2)
    executor.run(pipeline(), tmp_path / "ray")
    assert marker.exists(), "no worker was killed: the test did not exercise a retry"
    assert int(marker.read_text()) != os.getpid()
    rows = _comparable(tmp_path / "ray")
    assert rows == _comparable(tmp_path / "local")
    assert "dedup:near_duplicate" in {r["reject_reason"] for r in rows}
    seg0, seg1 = executor.segment_report
    assert seg0["barrier"] == ("ray" if has_dedup_seam() else "driver")
    assert seg0["shards_run"] == seg1["shards_run"] == 6


# ---------------------------------------------------------------- distributed dedup


def _corpus_with_duplicates() -> list[str]:
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words, size=int(rng.integers(20, 60)))) for _ in range(300)]
    texts = list(base)
    for i in range(0, 300, 4):  # near copies: one word changed
        t = base[i].split()
        t[len(t) // 2] = "changed"
        texts.append(" ".join(t))
    texts += [base[1]] * 3  # exact copies
    texts += [base[2].upper() + "!"] * 12  # a bucket larger than the pairing window
    texts += ["", "   ", "short"]  # empty documents are nobody's duplicate
    order = rng.permutation(len(texts))
    return [texts[i] for i in order]


def test_distributed_dedup_equals_local_dedup(ray_address):
    from synth.dedup import distributed, lsh, minhash

    texts = _corpus_with_duplicates()
    local = lsh.near_duplicate_clusters(minhash.text_signatures(texts, 64), threshold=0.7)
    assert len(np.unique(local.labels)) < len(texts) - 50  # the corpus really has duplicates
    sign = functools.partial(minhash.text_signatures, num_perm=64)
    for block_rows, partitions in ((97, 3), (1000, 1)):
        got = distributed.distributed_clusters(distributed.split_rows(texts, block_rows), sign, threshold=0.7, partitions=partitions)
        assert got.params == local.params and got.n_candidates == local.n_candidates
        np.testing.assert_array_equal(got.labels, local.labels)
        np.testing.assert_array_equal(got.pairs, local.pairs)
        np.testing.assert_array_equal(got.jaccard, local.jaccard)
    ids = [f"doc-{i:04d}" for i in range(len(texts))]
    np.testing.assert_array_equal(lsh.choose_representatives(got.labels, ids), lsh.choose_representatives(local.labels, ids))


def test_distributed_dedup_handles_tiny_inputs(ray_address):
    from synth.dedup import distributed, minhash

    sign = functools.partial(minhash.text_signatures, num_perm=32)
    assert distributed.distributed_clusters([], sign).labels.tolist() == []
    one = distributed.distributed_clusters([["only one document here"]], sign)
    assert one.labels.tolist() == [0] and one.n_candidates == 0
    two = distributed.distributed_clusters([["same text again and again"], ["same text again and again"]], sign, threshold=0.5)
    assert two.labels.tolist() == [0, 0] and two.pairs.tolist() == [[0, 1]]


def test_step_clustering_on_ray_equals_the_local_computation(ray_address):
    from synth.dedup import distributed, lsh, minhash, phash

    texts = _corpus_with_duplicates()
    sig = minhash.text_signatures(texts, 64, seed=3, ngram=3)
    for verify, sim in (("exact", functools.partial(minhash.exact_jaccard, texts, ngram=3)), ("estimated", None)):
        local = lsh.near_duplicate_clusters(sig, 0.6, similarity=sim)
        got = distributed.text_clusters(texts, 0.6, num_perm=64, seed=3, ngram=3, verify=verify)
        np.testing.assert_array_equal(got.labels, local.labels)
        np.testing.assert_array_equal(got.pairs, local.pairs)
        np.testing.assert_array_equal(got.jaccard, local.jaccard)

    rng = np.random.default_rng(0)
    base = [rng.integers(0, 256, (24, 24), dtype=np.uint8) for _ in range(40)]
    noisy = [np.clip(b.astype(int) + rng.integers(-6, 7, b.shape), 0, 255).astype(np.uint8) for b in base[:15]]
    images = base + noisy + [base[0]] * 3
    local = phash.near_duplicate_images(phash.image_hashes(images), max_bits=6, num_perm=64)
    got = distributed.image_clusters(images, max_bits=6, num_perm=64)
    assert len(local.pairs) >= 15  # the noisy and exact copies are found
    np.testing.assert_array_equal(got.labels, local.labels)
    np.testing.assert_array_equal(got.pairs, local.pairs)
