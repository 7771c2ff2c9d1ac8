"""The default executor: every stage in this process, shard after shard."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from synth.config import Pipeline
from synth.engine import Run
from synth.progress import track

log = logging.getLogger(__name__)


class LocalExecutor:
    def run(self, pipeline: Pipeline, run_dir: Path, fresh: bool = False) -> dict[str, Any]:
        t0 = time.perf_counter()
        run = Run(pipeline, run_dir)
        run.prepare(fresh)
        try:
            run.run_sources()
            for seg in run.segments:
                done = 0
                for rank in track(range(pipeline.shards), f"segment {seg.index} ({', '.join(s.name for s in seg.steps) or 'pass'})"):
                    done += run.run_shard(seg.index, rank)
                log.info("segment %d: %d shards run, %d already done", seg.index, done, pipeline.shards - done)
                if seg.barrier is not None:
                    run.run_barrier(seg.index)
            table = run.finalize(time.perf_counter() - t0)
        finally:
            run.teardown()
        return run_outputs(pipeline, run, table.num_rows)


def run_outputs(pipeline: Pipeline, run: Run, n_rows: int) -> dict[str, Any]:
    """Run the pipeline's output steps (mix, ablate, export, report) on the finished run."""
    ctx = run.context()
    written: dict[str, Any] = {"run_dir": str(run.run_dir), "manifest": str(run.run_dir / "manifest.parquet"), "rows": n_rows}
    for out in pipeline.outputs:
        out.setup(ctx)
        try:
            written[out.name] = out.write(run.run_dir, ctx)
        finally:
            out.teardown()
    return written
