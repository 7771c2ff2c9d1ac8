"""A Hugging Face dataset: a ``save_to_disk`` folder or a name for ``load_dataset``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from synth.errors import InputError
from synth.registry import register
from synth.sample import Sample
from synth.sources._base import RealSource, SourceParams
from synth.steps import Context
from synth.util import sha256_text


class HFParams(SourceParams):
    path: str = Field(description="a save_to_disk folder, or a dataset name / local loading script for load_dataset")
    config: str | None = Field(None, description="dataset configuration name (load_dataset only)")
    revision: str | None = None
    splits: dict[str, str] = Field(
        default_factory=lambda: {"train": "train"}, description="dataset split -> synth split, e.g. {train: train, test: eval}"
    )
    image_column: str | None = None
    text_column: str | None = None
    label_column: str | None = "label"
    id_column: str | None = None


@register("hf_dataset")
class HFDatasetSource(RealSource):
    """Reads image or text rows from a Hugging Face dataset.

    Writes: samples with ``uri`` ``hf://<path>[/<config>]/<split>/<row>``; images are copied into
    the run dir; ClassLabel ids become their names. Exactly one of ``image_column`` /
    ``text_column`` is set. Drops: undecodable images as ``source:unreadable`` rejections.
    """

    Params = HFParams

    def _load(self, split: str):
        import datasets

        p = self.params
        local = Path(p.path).expanduser()
        try:
            if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
                ds = datasets.load_from_disk(str(local))
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise InputError(f"source {self.name!r}: split {split!r} not in {str(local)!r}. Available splits: {', '.join(ds)}.")
                    ds = ds[split]
                return ds
            return datasets.load_dataset(p.path, p.config, split=split, revision=p.revision)
        except InputError:
            raise
        except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
            raise InputError(f"source {self.name!r}: cannot load dataset {p.path!r} split {split!r}: {e}") from None

    def rows(self, ctx: Context) -> Iterator[tuple[Sample, bytes | None]]:
        import datasets

        p = self.params
        if (p.image_column is None) == (p.text_column is None):
            raise InputError(f"source {self.name!r}: set exactly one of image_column or text_column.")
        for hf_split, split in p.splits.items():
            ds = self._load(hf_split)
            cols = list(ds.column_names)
            missing = [c for c in (p.image_column, p.text_column, p.label_column, p.id_column) if c and c not in cols]
            if missing:
                raise InputError(
                    f"source {self.name!r}: column(s) {', '.join(map(repr, missing))} not in the dataset. Available columns: {', '.join(cols)}."
                )
            names = None
            if p.label_column and isinstance(ds.features[p.label_column], datasets.ClassLabel):
                names = ds.features[p.label_column].names
            if p.image_column:
                ds = ds.cast_column(p.image_column, datasets.Image(decode=False))
            base = f"hf://{p.path}" + (f"/{p.config}" if p.config else "") + f"/{hf_split}"
            for i, rec in enumerate(ds):
                key = str(rec[p.id_column]) if p.id_column else f"{hf_split}-{i:06d}"
                sid = f"{self.name}-{key}"
                label = rec.get(p.label_column) if p.label_column else None
                if names is not None and label is not None:
                    label = names[label]
                s = Sample(
                    id=sid,
                    modality="image" if p.image_column else "text",
                    origin="real",
                    label=None if label is None else str(label),
                    split=split,
                    uri=f"{base}/{i}",
                )
                data = None
                if p.image_column:
                    img = rec[p.image_column] or {}
                    data = img.get("bytes") or (Path(img["path"]).read_bytes() if img.get("path") and Path(img["path"]).is_file() else b"")
                    s.path = f"{sid}{Path(img.get('path') or 'x.png').suffix or '.png'}"
                else:
                    text = rec[p.text_column]
                    if isinstance(text, str) and text.strip():
                        s.text, s.content_sha256 = text, sha256_text(text)
                    else:
                        s.reject("source:missing_text")
                yield s, data
