"""What the image generators share: task plans, per-sample draws, prompt templates, JSON-safe
provenance, batching with out-of-memory halving, writing a PNG payload as a sample, and model
resolution (local folder hash or Hub commit) and scheduler swaps for the diffusion backends.

Pure functions except ``save_png_sample`` (writes a payload), ``resolve_model`` (reads the model
folder or the HF cache / Hub) and ``swap_scheduler``. No heavy imports at module level: numpy,
PIL and huggingface_hub inside the functions that need them; torch never (callers pass it in).
"""

from __future__ import annotations

import logging
import math
import random
import string
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from synth.errors import ConfigError, InputError
from synth.sample import Sample
from synth.steps import Context, Generator, Task
from synth.util import atomic_write_bytes, file_tree_hash, sha256_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
MAX_ARRAY_ITEMS = 64  # arrays in provenance above this size are recorded by shape and hash


# ---- plans --------------------------------------------------------------------------------------
def select_parents(real: Sequence[Sample], labels: Sequence[str] | None = None, max_per_label: int | None = None) -> list[Sample]:
    """Real samples to derive from: sorted by id, optionally only ``labels``, at most
    ``max_per_label`` per label (the first by id). Rows without a payload path are skipped."""
    wanted = None if labels is None else set(labels)
    seen: dict[str | None, int] = {}
    out = []
    for s in sorted(real, key=lambda s: s.id):
        if s.path is None or (wanted is not None and s.label not in wanted):
            continue
        seen[s.label] = seen.get(s.label, 0) + 1
        if max_per_label is None or seen[s.label] <= max_per_label:
            out.append(s)
    return out


def label_set(real: Sequence[Sample], labels: Sequence[str] | None = None) -> list[str]:
    """The labels to generate: ``labels`` as given (in order), else every label of the real rows, sorted."""
    if labels is not None:
        return list(dict.fromkeys(labels))
    return sorted({s.label for s in real if s.label is not None})


def tasks_per_label(labels: Sequence[str], n: int, group: int = 1) -> list[Task]:
    """``n`` tasks per label, label-major; ``extra['group']`` is the index of the first task of
    the run of ``group`` consecutive tasks that share one prompt draw."""
    return [Task(li * n + k, label=lab, extra={"group": li * n + (k // group) * group}) for li, lab in enumerate(labels) for k in range(n)]


def tasks_per_parent(parents: Sequence[Sample], n: int, group: int = 1) -> list[Task]:
    """``n`` tasks per parent sample (variants of one real image), parent-major."""
    return [
        Task(pi * n + k, label=par.label, parent=par, extra={"group": pi * n + (k // group) * group})
        for pi, par in enumerate(parents)
        for k in range(n)
    ]


# ---- per-sample draws ---------------------------------------------------------------------------
def sample_rng(seed: int) -> random.Random:
    """The rng of one sample's parameter draws (template, strength): seeded, never global state."""
    return random.Random(seed)


def template_fields(template: str) -> set[str]:
    """Names of the ``{fields}`` a prompt template uses; ValueError if it does not parse."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def check_templates(templates: Sequence[str], where: str) -> None:
    """Every template may use ``{label}`` and nothing else (literal braces: ``{{`` ``}}``)."""
    for i, t in enumerate(templates):
        try:
            bad = template_fields(t) - {"label"}
        except ValueError as e:
            raise ValueError(f"{where}[{i}] {t!r} is not a valid template ({e}); write literal braces as {{{{ }}}}") from None
        if bad:
            raise ValueError(f"{where}[{i}] {t!r} uses {sorted(bad)}; the only field is {{label}}")


def render_prompt(template: str, label: str | None, label_names: dict[str, str]) -> str:
    name = label_names.get(label, label) if label is not None else ""
    return template.format(label=name)


def draw_strength(rng: random.Random, strength: float | Sequence[float], steps: int) -> tuple[float, float]:
    """(strength passed to the pipeline, strength drawn). A fixed strength is used as given; a
    range ``[lo, hi]`` is drawn uniformly and snapped to the grid ``k / steps`` (k >= 1):
    img2img pipelines resolve strength to whole denoising steps, and equal values can share a batch."""
    if isinstance(strength, int | float):
        return float(strength), float(strength)
    lo, hi = strength
    drawn = rng.uniform(lo, hi)
    k = min(steps, max(1, round(drawn * steps)))
    return k / steps, drawn


# ---- provenance ---------------------------------------------------------------------------------
def json_safe(obj: Any, max_items: int = MAX_ARRAY_ITEMS) -> Any:
    """Plain JSON types from numpy scalars/arrays, tuples, enums and sets; arrays longer than
    ``max_items`` become ``{shape, dtype, sha256}``; non-finite floats become strings."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, Enum):
        return json_safe(obj.value, max_items)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v, max_items) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [json_safe(v, max_items) for v in items]
    if hasattr(obj, "dtype") and hasattr(obj, "shape"):  # numpy array or scalar
        import numpy as np

        arr = np.asarray(obj)
        if arr.ndim == 0:
            return json_safe(arr.item(), max_items)
        if arr.size > max_items:
            return {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": sha256_bytes(np.ascontiguousarray(arr).tobytes())[:16]}
        return json_safe(arr.tolist(), max_items)
    return str(obj)


# ---- batching -----------------------------------------------------------------------------------
def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def is_oom(exc: BaseException) -> bool:
    """An accelerator out-of-memory error (CUDA ``torch.OutOfMemoryError`` or MPS's RuntimeError)."""
    return type(exc).__name__ == "OutOfMemoryError" or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def call_halving(items: list[T], fn: Callable[[list[T]], list[R]], on_oom: Callable[[int], None]) -> list[R]:
    """``fn(items)``; on out-of-memory, ``on_oom(len(items))`` then retry each half (down to one
    item, where the error is raised). Results keep the order of ``items``."""
    try:
        return fn(items)
    except Exception as e:
        if not is_oom(e) or len(items) <= 1:
            raise
        on_oom(len(items))
        mid = len(items) // 2
        log.warning("out of memory on a batch of %d; retrying as %d + %d", len(items), mid, len(items) - mid)
    return call_halving(items[:mid], fn, on_oom) + call_halving(items[mid:], fn, on_oom)


def prompt_runs(prompts: Sequence[Any]) -> int:
    """The length ``r`` if ``prompts`` is made of equal-length runs of equal items (so a pipeline
    can take the unique ones with ``num_images_per_prompt=r``), else 1."""
    n = len(prompts)
    for r in range(n, 1, -1):
        if n % r == 0 and all(len(set(prompts[i : i + r])) == 1 for i in range(0, n, r)):
            return r
    return 1


# ---- payloads -----------------------------------------------------------------------------------
def to_pil(array, mode: str | None = None):
    """uint8 [H, W] or [H, W, C] -> PIL image (mode L, RGB or RGBA from the channel count)."""
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)


def save_png_sample(step: Generator, task: Task, ctx: Context, image, seed: int, **fields: Any) -> Sample:
    """A synthetic sample for ``task`` whose payload is ``image`` saved as deterministic PNG bytes
    at ``data/<step>/<sample id>.png``; path and uri are that relative path."""
    from synth.sources._base import png_bytes

    s = step.new_sample(task, ctx, seed=seed, **fields)
    data = png_bytes(image)
    abs_path, rel = ctx.payload_path(step.name, f"{s.id}.png")
    atomic_write_bytes(abs_path, data)
    s.path, s.uri, s.content_sha256 = rel, rel, sha256_bytes(data)
    return s


# ---- models (shared by the pipeline and UNet backends of the diffusion step) ------------------------
def resolve_model(model: str, revision: str | None, allow_patterns: list[str] | None = None) -> tuple[str, str | None, str]:
    """(what to load, the revision to pass to from_pretrained, the revision to record).

    A local folder loads as is and is recorded by ``file_tree_hash``; a Hub id is resolved once to
    its commit hash (pinning every file to that commit; offline, from the HF cache). With
    ``allow_patterns`` a Hub model is first fetched to a local snapshot of only those files."""
    path = Path(model).expanduser()
    if path.is_dir():
        if revision is not None:
            raise ConfigError(f"model {model!r} is a local folder; 'revision' applies to Hub ids only. Remove it.")
        return str(path), None, file_tree_hash(path)
    if path.exists():
        raise ConfigError(f"model {model!r} is a file; pass the folder written by save_pretrained (or a Hub id).")
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RevisionResolutionError

    try:
        commit = huggingface_hub.resolve_revision(model, revision=revision).resolved
        if allow_patterns is not None:
            return huggingface_hub.snapshot_download(model, revision=commit, allow_patterns=allow_patterns), None, commit
    except (HfHubHTTPError, HFValidationError, RevisionResolutionError, OSError) as e:
        raise InputError(
            f"model {model!r} is not a local folder and the Hub cannot resolve it ({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Pass a folder saved with save_pretrained, or a Hub id on a machine with network access or with the model in the HF cache."
        ) from None
    return model, commit, commit


def swap_scheduler(current, name: str, diffusers):
    """A scheduler of class ``name`` built from ``current``'s config; it must be a compatible one."""
    compatible = {c.__name__: c for c in [type(current), *getattr(current, "compatibles", [])]}
    if name not in compatible:
        raise ConfigError(
            f"scheduler {name!r} is not compatible with this model's {type(current).__name__}. "
            f"Valid options: {', '.join(sorted(compatible))}."
        )
    return getattr(diffusers, name).from_config(current.config)
