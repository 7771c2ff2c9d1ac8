"""What every quality filter shares: namespaced scores, threshold rules and the reference set.

A filter's scores are stored as ``<step name>.<score>`` (two filters of one family never collide)
and its rejections read ``filter:<step name>.<reason>``. ``decide`` is generic: it walks the
filter's :class:`Rule` list (built from its parameters) over the stored scores, so it depends on
nothing else and ``synth refilter`` can re-apply new thresholds without rescoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from synth.errors import InputError
from synth.sample import Sample
from synth.steps import Context, Filter

Op = Literal[">=", "<="]


@dataclass(frozen=True)
class Rule:
    """Keep a sample iff ``score op value``; ``value=None`` turns the rule off. A missing score
    (not computable for that sample) never rejects."""

    score: str
    op: Op
    value: float | None
    reason: str

    def passes(self, v: float) -> bool:
        return v >= self.value if self.op == ">=" else v <= self.value  # type: ignore[operator]


class QualityFilter(Filter):
    """Base of the built-in filters. Subclasses implement ``compute`` (local score names) and
    ``rules``; ``decision_params`` names the parameters that only move thresholds (the ones
    ``synth refilter --set`` may change)."""

    decision_params: ClassVar[frozenset[str]] = frozenset()

    def key(self, score: str) -> str:
        return f"{self.name}.{score}"

    def rules(self) -> list[Rule]:
        return []

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        raise NotImplementedError

    def score(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        out = []
        for d in self.compute(samples, ctx):
            out.append({self.key(k): round(float(v), 6) for k, v in d.items() if v is not None and math.isfinite(v)})
        return out

    def decide(self, scores: dict[str, float]) -> str | None:
        for r in self.rules():
            if r.value is None:
                continue
            v = scores.get(self.key(r.score))
            if v is not None and not r.passes(v):
                return f"{self.name}.{r.reason}"
        return None

    def thresholds(self) -> dict[str, list[tuple[str, float]]]:
        """``{score key: [(op, value), ...]}`` for the active rules: a sample is kept iff every
        listed ``score op value`` holds (the report draws these on the score histograms)."""
        out: dict[str, list[tuple[str, float]]] = {}
        for r in self.rules():
            if r.value is not None:
                out.setdefault(self.key(r.score), []).append((r.op, float(r.value)))
        return out

    def reasons(self) -> list[str]:
        """Every reject reason this filter can give, as stored after ``filter:``."""
        return sorted({f"{self.name}.{r.reason}" for r in self.rules()})

    def record_model(self, ctx: Context, model: str, revision: str | None) -> None:
        """Note the scoring model in stats.json (``filter_models``) for provenance."""
        ctx.extra.setdefault("filter_models", {})[self.name] = {"model": model, "revision": revision}


# ---- the real reference set (label consistency, diagnostics) ------------------------------------


def reference_rows(reference: str | Path | None, ctx: Context | None, modality: str, split: str = "train") -> tuple[list[Sample], Path]:
    """Kept, labelled real rows of ``modality`` and ``split`` and the folder their paths are relative to.

    ``reference`` may be a run directory (its sources checkpoint ``state/sources.parquet``, else its
    ``manifest.parquet``), a manifest/sources ``.parquet`` file, or a ``.jsonl`` file with ``text``
    and ``label`` fields; ``None`` means the current run's sources checkpoint.
    """
    from synth.manifest import read_samples

    if reference is None:
        if ctx is None:
            raise InputError("no reference set: pass `reference` (a run dir, manifest .parquet or .jsonl with text/label).")
        path = Path(ctx.run_dir) / "state" / "sources.parquet"
        if not path.exists():
            raise InputError(
                f"no real reference rows at {path}: this filter needs the run's real train split (run it inside `synth run`) "
                "or an explicit `reference` (a run dir, manifest .parquet or .jsonl with text/label)."
            )
        root = Path(ctx.run_dir)
    else:
        path = Path(reference)
        if path.is_dir():
            cands = [path / "state" / "sources.parquet", path / "manifest.parquet"]
            found = [p for p in cands if p.exists()]
            if not found:
                raise InputError(
                    f"reference {str(path)!r} is a folder without state/sources.parquet or manifest.parquet; pass a run dir or a file."
                )
            root, path = path, found[0]
        elif not path.exists():
            raise InputError(f"reference {str(path)!r} does not exist; pass a run dir, a manifest .parquet or a .jsonl with text/label.")
        else:
            root = path.parent.parent if path.parent.name == "state" else path.parent
    if path.suffix == ".jsonl":
        rows = _jsonl_rows(path)
    else:
        rows = read_samples(path)
    out = [s for s in rows if s.origin == "real" and s.modality == modality and s.split == split and s.kept and s.label is not None]
    if not out:
        raise InputError(f"reference {str(path)!r} holds no kept real {modality} rows with a label in split {split!r}.")
    return out, root


def _jsonl_rows(path: Path) -> list[Sample]:
    import json

    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            r: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{i + 1}: not valid JSON ({e.msg}).") from None
        if "text" not in r or "label" not in r:
            raise InputError(f"{path}:{i + 1}: a reference .jsonl row needs 'text' and 'label' fields.")
        out.append(
            Sample(
                id=str(r.get("id", f"ref-{i}")),
                modality="text",
                origin="real",
                label=str(r["label"]),
                split=str(r.get("split", "train")),
                text=str(r["text"]),
            )
        )
    return out


def load_images(samples: list[Sample], root: str | Path | None) -> list[Any]:
    """Decoded PIL images, ``None`` where a payload is missing or undecodable (image_quality
    rejects those as ``unreadable``; the other image filters leave them unscored)."""
    out = []
    for s in samples:
        try:
            out.append(s.load_image(root))
        except (OSError, ValueError, SyntaxError):
            out.append(None)
    return out
