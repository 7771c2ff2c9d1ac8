"""The ``mix`` output step: one mix (or a grid of ratios) of the finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field

from synth.mix import MixSpec, mix_run
from synth.outputs import under
from synth.registry import register
from synth.steps import Context, Output, Resources

Ratio = Annotated[float, Field(ge=0)]


class MixParams(MixSpec):
    """The parameters of ``synth mix`` (see :class:`synth.mix.MixSpec`), a list of ratios allowed."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    ratio: Ratio | list[Ratio] = Field(description="n_synthetic / n_real; a list writes one mix per ratio")
    out: str = Field("mixes", description="mix directory (relative to the run dir); with a list of ratios, OUT/ratio-<R> per ratio")


@register("mix")
class MixOutput(Output):
    """Mix the run's kept rows at a synthetic:real ratio (stratified, seeded, pure).

    Reads: RUN_DIR/manifest.parquet. Writes: OUT/manifest.parquet + OUT/mix.json (or
    OUT/ratio-<R>/... for a list of ratios). Drops: nothing (rows not chosen stay in the run).
    Example: ``{type: mix, ratio: [0, 0.5, 1, 2], real_per_class: 20, out: mixes}``
    """

    Params: ClassVar[type[MixParams]] = MixParams
    default_resources: ClassVar[Resources] = Resources(cpus=1)

    def specs(self) -> list[tuple[str, MixSpec]]:
        p = self.params
        fields = p.model_dump(exclude={"ratio", "out"})
        if isinstance(p.ratio, list):
            return [(f"{p.out}/ratio-{r:g}", MixSpec(ratio=r, **fields)) for r in p.ratio]
        return [(p.out, MixSpec(ratio=p.ratio, **fields))]

    def write(self, run_dir: Path, ctx: Context) -> dict[str, Any]:
        return {out: mix_run(run_dir, under(run_dir, out), spec) for out, spec in self.specs()}
