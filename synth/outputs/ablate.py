"""The ``ablate`` output step: the ratio x seed (x budget x generator x control) ablation grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from synth.ablate import AblationSpec, ablate
from synth.outputs import under
from synth.registry import register
from synth.steps import Context, Output, Resources


class AblateParams(AblationSpec):
    """The parameters of ``synth ablate`` (see :class:`synth.ablate.AblationSpec`)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    out: str = Field("ablation", description="ablation directory (relative to the run dir)")


@register("ablate")
class AblateOutput(Output):
    """Train a probe on each mix of the grid and evaluate it on the run's real eval rows.

    Reads: RUN_DIR/manifest.parquet, payloads, RUN_DIR/pipeline.yaml (augmentation steps).
    Writes: OUT/results.csv, OUT/summary.csv, OUT/ablation.png, OUT/ablation.json, OUT/cells/*.json
    (the per-cell cache: re-running resumes). Drops: nothing.
    Example: ``{type: ablate, ratios: [0, 1, 2], seeds: 3, real_per_class: [5, 20], controls: [real_repeat]}``
    """

    Params: ClassVar[type[AblateParams]] = AblateParams
    default_resources: ClassVar[Resources] = Resources(cpus=1)

    def write(self, run_dir: Path, ctx: Context) -> dict[str, Any]:
        spec = AblationSpec(**self.params.model_dump(exclude={"out"}))
        return ablate(run_dir, under(run_dir, self.params.out), spec)
