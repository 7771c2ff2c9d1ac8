"""The ``export`` output step: the run (or a mix written by a ``mix`` output) as a HF dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from synth.export import export
from synth.outputs import under
from synth.registry import register
from synth.steps import Context, Output, Params, Resources


class ExportParams(Params):
    out: str = Field("export", description="export directory (relative to the run dir)")
    format: Literal["hf", "parquet", "jsonl"] = Field("hf", description="hf (save_to_disk), parquet shards or jsonl")
    source: str | None = Field(None, description="a mix directory to export instead of the run (relative to the run dir)")
    modality: Literal["image", "text"] | None = Field(None, description="export one modality (default: each present, OUT/<modality>)")
    include_rejected: bool = Field(False, description="add rejected rows with status and reject_reason")
    license: str = Field("unknown", description="the dataset card's license field")
    pretty_name: str | None = Field(None, description="the dataset card's title")
    push_to_hub: str | None = Field(None, description="Hub dataset repo id to upload to (token from HF_TOKEN)")
    private: bool = Field(False, description="create the Hub repo private")


@register("export")
class ExportOutput(Output):
    """Export kept rows as a DatasetDict / Parquet / JSONL with Features, provenance and a dataset card.

    Reads: the run's (or mix's) manifest and payloads (never outside the run dir). Writes: OUT/
    (save_to_disk layout, or data/<split>-*.parquet, or data/<split>.jsonl) + OUT/README.md +
    OUT/synth_export.json; synthetic PNGs re-encoded with an IPTC AI-generation marker. Drops:
    rejected rows unless include_rejected.
    Example: ``{type: export, source: mixes/ratio-1, format: hf, out: export}``
    """

    Params: ClassVar[type[ExportParams]] = ExportParams
    default_resources: ClassVar[Resources] = Resources(cpus=1)

    def write(self, run_dir: Path, ctx: Context) -> dict[str, Any]:
        p = self.params
        src = under(run_dir, p.source) if p.source else run_dir
        return export(
            src,
            under(run_dir, p.out),
            p.format,
            modality=p.modality,
            include_rejected=p.include_rejected,
            license=p.license,
            pretty_name=p.pretty_name,
            push_to_hub=p.push_to_hub,
            private=p.private,
        )
