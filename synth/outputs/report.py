"""The ``report`` output step: RUN_DIR/report.html at the end of a pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from synth.registry import register
from synth.steps import Context, Output, Params


class ReportParams(Params):
    ablation: str | None = Field(None, description="ablation directory, relative to the run dir (default: one found there)")
    per_label: int = Field(12, ge=1, description="samples shown per label and column")


@register("report")
class Report(Output):
    """Writes RUN_DIR/report.html: funnel, samples, score histograms, diagnostics, ablation, config.

    Put it last in ``outputs`` so it finds the ablation written before it.
    Example: ``{type: report}``
    """

    Params = ReportParams

    def write(self, run_dir: Path, ctx: Context) -> dict[str, Any]:
        from synth.report import build_report

        abl = run_dir / self.params.ablation if self.params.ablation else None
        return {"report": str(build_report(run_dir, abl, self.params.per_label))}
