"""Pipeline files: load YAML, apply ``--set`` overrides, validate with pydantic, build steps.

The YAML is a lossless view of :class:`Pipeline`: ``Pipeline.from_config(p.to_config())`` gives
the same pipeline, and the run id is the fingerprint of that resolved config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth import registry
from synth.errors import ConfigError, did_you_mean
from synth.steps import Output, Resources, Source, Step
from synth.util import fingerprint

_SECTIONS = {"sources": ("source",), "steps": ("generator", "filter", "barrier"), "outputs": ("output",)}
_STEP_KEYS = ("type", "name", "resources")


class PipelineSpec(BaseModel):
    """Top level of a pipeline file. Steps are validated by their own ``Params`` models."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    seed: int = 0
    shards: int = Field(4, ge=1, le=100_000)
    description: str = ""
    sources: list[dict[str, Any]] = Field(min_length=1)
    steps: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []


def _fmt_loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def format_validation_error(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    """One line per problem, naming the key path and what would be valid."""
    lines = []
    for e in err.errors():
        loc = _fmt_loc(e["loc"], prefix)
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            parent = model
            for part in e["loc"][:-1]:  # descend into nested models for the valid keys
                sub = parent.model_fields.get(str(part)) if isinstance(part, str) else None
                ann = getattr(sub, "annotation", None) if sub else None
                if isinstance(ann, type) and issubclass(ann, BaseModel):
                    parent = ann
            lines.append(f"{loc}: unknown key {key!r}. {did_you_mean(key, list(parent.model_fields))}")
        elif e["type"] == "missing":
            lines.append(f"{loc}: required key is missing.")
        else:
            got = e.get("input")
            lines.append(f"{loc}: {e['msg']}" + ("." if isinstance(got, dict) else f" (got {got!r})."))
    return "\n".join(lines)


def build_step(raw: dict[str, Any], section: str, index: int) -> Step:
    """A step object from its YAML mapping (``type``, optional ``name``/``resources``, params)."""
    where = f"{section}[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {type(raw).__name__}.")
    if "type" not in raw:
        raise ConfigError(f"{where}: missing 'type'. Run `synth steps` to list the step types.")
    kinds = _SECTIONS[section]
    cls = registry.get(str(raw["type"]), kind=None, where=f"{where}.type")
    if cls.kind not in kinds:
        valid = [n for n, c in registry.all_steps().items() if c.kind in kinds]
        raise ConfigError(
            f"{where}.type: {raw['type']!r} is a {cls.kind} step and cannot stand in '{section}'. Valid types there: {', '.join(valid)}."
        )
    params = {k: v for k, v in raw.items() if k not in _STEP_KEYS}
    try:
        p = cls.Params(**params)
        res = Resources(**raw["resources"]) if raw.get("resources") is not None else None
    except ValidationError as e:
        raise ConfigError(
            f"invalid parameters for step {raw.get('name', raw['type'])!r} (type {raw['type']!r}):\n"
            + format_validation_error(e, cls.Params, prefix=where)
        ) from None
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}.name: expected a string, got {name!r}.")
    return cls.from_params(name, p, res)


@dataclass
class Pipeline:
    """A plain list of steps, buildable in Python or from YAML."""

    name: str
    sources: list[Source]
    steps: list[Step] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    seed: int = 0
    shards: int = 4
    description: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in [*self.sources, *self.steps, *self.outputs]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"step names must be unique; repeated: {', '.join(dupes)}. Give each a distinct 'name'.")

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> Pipeline:
        if not isinstance(raw, dict):
            raise ConfigError("a pipeline file must be a YAML mapping with keys name, seed, sources, steps, outputs.")
        raw = {k: ([] if v is None and k in _SECTIONS else v) for k, v in raw.items()}  # `steps:` with only comments
        try:
            spec = PipelineSpec(**raw)
        except ValidationError as e:
            raise ConfigError("invalid pipeline:\n" + format_validation_error(e, PipelineSpec)) from None
        built = {sec: [build_step(r, sec, i) for i, r in enumerate(getattr(spec, sec))] for sec in _SECTIONS}
        return cls(name=spec.name, seed=spec.seed, shards=spec.shards, description=spec.description, **built)

    def to_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": self.name, "seed": self.seed, "shards": self.shards}
        if self.description:
            cfg["description"] = self.description
        cfg["sources"] = [s.to_config() for s in self.sources]
        cfg["steps"] = [s.to_config() for s in self.steps]
        cfg["outputs"] = [s.to_config() for s in self.outputs]
        return cfg

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_config(), sort_keys=False, allow_unicode=True)

    @property
    def run_id(self) -> str:
        """Fingerprint of the resolved config (shards excluded: checked separately on resume)."""
        cfg = self.to_config()
        cfg.pop("shards")
        cfg.pop("outputs")
        return fingerprint(cfg)


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline file {str(p)!r} not found (or not a file). Pass the path of a YAML file such as pipelines/smoke.yaml.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"pipeline file {str(p)!r} cannot be read: {e}.") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"pipeline file {str(p)!r} is not valid YAML{at}: {getattr(e, 'problem', e)}.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"pipeline file {str(p)!r} must hold a mapping (name, seed, sources, steps), not {type(raw).__name__}.")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides. Values are YAML (``3``, ``true``, ``[1, 2]``); list items
    are addressed by index or by step name: ``steps.blur.threshold=50``."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. --set seed=3 or --set steps.0.num_per_label=4.")
        path, value_text = item.split("=", 1)
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError:
            value = value_text
        parts = path.strip().split(".")
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                idx = _list_index(node, part, here)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth])!r} is a value, not a mapping or list.")
    return out


def _list_index(node: list[Any], part: str, here: str) -> int:
    if part.lstrip("-").isdigit():
        idx = int(part)
        if not -len(node) <= idx < len(node):
            raise ConfigError(f"--set: index {here!r} is out of range (the list has {len(node)} items).")
        return idx
    names = [(d.get("name") or d.get("type")) if isinstance(d, dict) else None for d in node]
    if part in names:
        return names.index(part)
    raise ConfigError(f"--set: no item named {part!r} at {here!r}. {did_you_mean(part, [n for n in names if n])}")


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> Pipeline:
    """Read, override and validate a pipeline file; every error is a ConfigError naming the key."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    try:
        return Pipeline.from_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
