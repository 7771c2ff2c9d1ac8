"""Export a run or a mix as a Hugging Face dataset (``save_to_disk``), Parquet shards or JSONL.

Every format gets the same columns: ``id``, ``image`` (``datasets.Image``, PNG bytes) or ``text``,
``label`` (``ClassLabel`` with the label names; -1 for unlabelled rows), ``origin``,
``is_synthetic``, and the provenance columns ``generator``, ``model``, ``model_revision``,
``seed``, ``parent_id``, ``prompt``, ``params`` and ``scores`` (JSON strings), ``content_sha256``
(of the run's payload), ``uri``, ``dedup_cluster``, ``duplicate_of`` (+ ``status`` and
``reject_reason`` with ``include_rejected``). One dataset per modality: a run with images and
texts exports OUT/image and OUT/text (or pass ``modality``), each with its own card, plus a root
card. Layouts: ``hf`` = ``DatasetDict.save_to_disk(OUT)`` (splits train, eval, ...);
``parquet`` = OUT/data/<split>-NNNNN-of-NNNNN.parquet with the features in the schema metadata
(``load_dataset("parquet", data_dir=OUT)``); ``jsonl`` = OUT/data/<split>-00000-of-00001.jsonl with label names
and images as files OUT/images/<hash>.png (the ``image`` field is that relative path).

Safety and honesty: payloads are read only from inside the run directory (a ``path``, or a
scheme-less ``uri``, that leaves it is an InputError); synthetic PNGs are re-encoded with an IPTC
``trainedAlgorithmicMedia`` marker (the run's payloads stay untouched); the Hub token comes from
HF_TOKEN only and is never logged or written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from synth.card import IPTC_TRAINED, build_card
from synth.errors import InputError
from synth.mix import resolve_payload, resolve_source
from synth.util import atomic_write_json, sha256_text

log = logging.getLogger(__name__)
Format = Literal["hf", "parquet", "jsonl"]
FORMATS = ("hf", "parquet", "jsonl")
MARKER = "synth_export.json"
SHARD_ROWS = 50_000
PROVENANCE = [
    "generator",
    "model",
    "model_revision",
    "seed",
    "parent_id",
    "prompt",
    "params",
    "scores",
    "content_sha256",
    "uri",
    "dedup_cluster",
    "duplicate_of",
]
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    f'Iptc4xmpExt:DigitalSourceType="{IPTC_TRAINED}"/></rdf:RDF></x:xmpmeta>'
)


def mark_synthetic_png(data: bytes, generator: str | None, model: str | None, model_revision: str | None) -> bytes:
    """Re-encode an image as PNG with text chunks declaring it AI-generated (IPTC digital source type)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("DigitalSourceType", IPTC_TRAINED)
    info.add_text("synth:generator", generator or "")
    info.add_text("synth:model", model or "")
    info.add_text("synth:model_revision", model_revision or "")
    info.add_itxt("XML:com.adobe.xmp", _XMP)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        buf = io.BytesIO()
        im.save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def check_uri(uri: str | None, run_dir: Path, sample_id: str) -> None:
    """A URI with a scheme is provenance only; a bare path must stay inside the run directory."""
    if uri and not _SCHEME.match(uri):
        resolve_payload(run_dir, uri, sample_id)


def label_names(labels: list[str | None]) -> list[str]:
    names = {x for x in labels if x is not None}
    return sorted(names, key=lambda x: (0, int(x), x) if x.lstrip("-").isdigit() else (1, 0, x))


def features(modality: str, names: list[str], include_rejected: bool):
    import datasets as hfd

    s = hfd.Value("string")
    cols = {
        "id": s,
        modality: hfd.Image() if modality == "image" else s,
        "label": hfd.ClassLabel(names=names),
        "origin": s,
        "is_synthetic": hfd.Value("bool"),
    }
    cols.update({c: (hfd.Value("int64") if c == "seed" else s) for c in PROVENANCE})
    if include_rejected:
        cols.update(status=s, reject_reason=s)
    return hfd.Features(cols)


def to_dataset_dict(rows: pa.Table, run_dir: Path, include_rejected: bool = False):
    """A ``datasets.DatasetDict`` (one Dataset per split) of one modality's manifest rows."""
    import datasets as hfd

    modality = rows.column("modality")[0].as_py()
    data = rows.to_pylist()
    for r in data:  # validate every path before reading anything
        check_uri(r["uri"], run_dir, r["id"])
        if modality == "image":
            if r["path"] is None:
                raise InputError(f"sample {r['id']!r} is an image without a payload path; the manifest is incomplete.")
            r["_file"] = resolve_payload(run_dir, r["path"], r["id"])
    names = label_names([r["label"] for r in data])
    feats = features(modality, names, include_rejected)
    index = {n: i for i, n in enumerate(names)}
    splits: dict[str, dict[str, list]] = {}
    for r in data:
        cols = splits.setdefault(r["split"], {k: [] for k in feats})
        if modality == "image":
            try:
                payload = r["_file"].read_bytes()
            except OSError as e:
                raise InputError(f"sample {r['id']!r}: cannot read payload {r['path']!r} in {run_dir} ({e}).") from None
            if r["origin"] == "synthetic":
                payload = mark_synthetic_png(payload, r["generator"], r["model"], r["model_revision"])
            cols["image"].append({"bytes": payload, "path": None})
        else:
            cols["text"].append(r["text"] or "")
        cols["id"].append(r["id"])
        cols["label"].append(-1 if r["label"] is None else index[r["label"]])
        cols["origin"].append(r["origin"])
        cols["is_synthetic"].append(r["origin"] == "synthetic")
        for c in PROVENANCE + (["status", "reject_reason"] if include_rejected else []):
            cols[c].append(r[c])
    order = sorted(splits, key=lambda s: (s != "train", s != "eval", s))
    return hfd.DatasetDict({s: hfd.Dataset.from_dict(splits[s], features=feats) for s in order})


def parquet_configs(splits: list[str], prefix: str = "", config_name: str = "default") -> list[dict[str, Any]]:
    return [{"config_name": config_name, "data_files": [{"split": s, "path": f"{prefix}data/{s}-*.parquet"} for s in splits]}]


def write_dataset(dd, dest: Path, fmt: str) -> dict[str, list[str]]:
    """Write a DatasetDict in ``fmt`` under ``dest``; the files written per split."""
    dest.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        dd.save_to_disk(str(dest))
        return {s: [s] for s in dd}
    files: dict[str, list[str]] = {}
    (dest / "data").mkdir(exist_ok=True)
    for split, ds in dd.items():
        if fmt == "parquet":
            n = max(1, -(-len(ds) // SHARD_ROWS))
            for i in range(n):
                name = f"data/{split}-{i:05d}-of-{n:05d}.parquet"
                ds.select(range(i * SHARD_ROWS, min(len(ds), (i + 1) * SHARD_ROWS))).to_parquet(str(dest / name))
                files.setdefault(split, []).append(name)
        else:
            lines = []
            names = ds.features["label"].names
            for row in _raw_rows(ds):
                if "image" in row:
                    rel = f"images/{sha256_text(split + '/' + row['id'])[:20]}.png"  # hex names: never mistaken for split files
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    (dest / rel).write_bytes(row["image"]["bytes"])
                    row["image"] = rel
                row["label"] = None if row["label"] < 0 else names[row["label"]]
                lines.append(json.dumps(row, ensure_ascii=False, sort_keys=False))
            (dest / f"data/{split}-00000-of-00001.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
            files[split] = [f"data/{split}-00000-of-00001.jsonl"]
    return files


def _raw_rows(ds) -> list[dict[str, Any]]:
    """Rows without decoding images (bytes stay bytes)."""
    return ds.with_format("arrow")[0 : len(ds)].to_pylist() if len(ds) else []


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """datasets' own progress bars follow synth's (off in tests and when not a TTY)."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    from synth.progress import enabled

    change = not enabled() and not are_progress_bars_disabled() and "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ
    if change:
        disable_progress_bars()
    try:
        yield
    finally:
        if change:
            enable_progress_bars()


def _claim(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise InputError(f"--out {out} exists and is not a synth export; choose a new folder (an earlier export is replaced in place).")


def export(
    src: str | Path,
    out: str | Path,
    fmt: Format = "hf",
    *,
    modality: str | None = None,
    include_rejected: bool = False,
    license: str = "unknown",
    pretty_name: str | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Export the run or mix at ``src`` to ``out``; optionally push the Parquet layout to the Hub."""
    if private and not push_to_hub:
        raise InputError("--private only applies with --push-to-hub REPO_ID (it makes the new Hub repo private).")
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r} is not known. Valid options: {', '.join(FORMATS)}.")
    source = resolve_source(src)
    table = source.table
    if not include_rejected:
        table = table.filter(pc.equal(table["status"], "kept"))
    present = sorted(set(table.column("modality").to_pylist()))
    if modality is not None:
        if modality not in present:
            raise InputError(
                f"--modality {modality}: {src} has no {'' if include_rejected else 'kept '}rows of that modality. Present: {present or 'none'}."
            )
        present = [modality]
    if not present:
        raise InputError(f"{src}: no {'' if include_rejected else 'kept '}rows to export.")
    out = Path(out)
    _claim(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # same filesystem: the final rename is atomic
    try:
        with quiet_datasets():
            info = _write_all(table, present, source, tmp, fmt, include_rejected, license, pretty_name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"dir": str(out), "format": fmt, "splits": info["splits"]}
    if push_to_hub:
        if fmt == "parquet":
            result["hub"] = push(out, push_to_hub, private)
        else:
            with tempfile.TemporaryDirectory(prefix="synth-push-") as d, quiet_datasets():
                _write_all(table, present, source, Path(d), "parquet", include_rejected, license, pretty_name)
                result["hub"] = push(Path(d), push_to_hub, private)
    return result


def _write_all(
    table, modalities, source, dest: Path, fmt: str, include_rejected: bool, license: str, pretty_name: str | None
) -> dict[str, Any]:
    multi = len(modalities) > 1
    splits: dict[str, dict[str, int]] = {}
    root_configs: list[dict[str, Any]] = []
    for m in modalities:
        rows = table.filter(pc.equal(table["modality"], m))
        sub = dest / m if multi else dest
        dd = to_dataset_dict(rows, source.run_dir, include_rejected)
        write_dataset(dd, sub, fmt)
        splits[m] = {s: len(ds) for s, ds in dd.items()}
        configs = parquet_configs(list(dd)) if fmt == "parquet" else None
        if fmt == "parquet":
            root_configs += parquet_configs(list(dd), prefix=f"{m}/" if multi else "", config_name=m if multi else "default")
        build_card(
            rows,
            source.run_dir,
            fmt=fmt,
            mix=source.mix,
            license=license,
            pretty_name=pretty_name,
            configs=configs,
            include_rejected=include_rejected,
        ).save(str(sub / "README.md"))
    if multi:
        build_card(
            table.filter(pc.is_in(table["modality"], pa.array(modalities))),
            source.run_dir,
            fmt=fmt,
            mix=source.mix,
            license=license,
            pretty_name=pretty_name,
            configs=root_configs or None,
            include_rejected=include_rejected,
        ).save(str(dest / "README.md"))
    info = {
        "format": fmt,
        "modalities": modalities,
        "layout": "one folder per modality" if multi else "single",
        "splits": splits,
        "include_rejected": include_rejected,
        "source": {
            "run_dir": str(source.run_dir),
            "manifest_sha256": source.manifest_sha256,
            "mix_fingerprint": (source.mix or {}).get("fingerprint"),
        },
    }
    atomic_write_json(dest / MARKER, info)
    return info


def push(folder: Path, repo_id: str, private: bool) -> dict[str, Any]:
    """Upload a Parquet export (data + README card) to a Hub dataset repo. Token: HF_TOKEN only."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise InputError(
            "--push-to-hub needs a Hugging Face write token in the HF_TOKEN environment variable "
            "(https://huggingface.co/settings/tokens); synth reads it from there only."
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            ignore_patterns=[MARKER],
            commit_message="Upload dataset exported by synth",
        )
    except HfHubHTTPError as e:
        raise InputError(f"--push-to-hub {repo_id}: the Hub refused the upload ({type(e).__name__}: {str(e).splitlines()[0]}).") from None
    log.info("pushed %s to %s", folder, repo_id)
    return {"repo_id": repo_id, "private": private, "url": str(url), "commit": str(getattr(commit, "oid", commit))}
