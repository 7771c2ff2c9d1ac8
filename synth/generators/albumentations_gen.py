"""Albumentations generator: classic augmentation of real images, declared in albumentations' own
dict format (``A.to_dict`` / ``A.from_dict``), N seeded variants per real image.

This file is the only place synth imports albumentations (licence trap: stay on the MIT 2.0.x
line, never the AGPL AlbumentationsX fork); it is imported lazily with NO_ALBUMENTATIONS_UPDATE=1
so that importing it never calls PyPI.
"""

from __future__ import annotations

import difflib
import os
import random
import warnings
from importlib import metadata
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from synth.errors import ConfigError
from synth.generators._image_common import json_safe, save_png_sample, select_parents, tasks_per_parent, to_pil
from synth.registry import register
from synth.steps import Context, Generator, Params, Task
from synth.util import fingerprint

_INSTALL = "pip install 'albumentations>=2.0.8,<2.1' (or 'synth[augment]')"
_IMAGE_MODES = ("L", "RGB", "RGBA")
_SYNTH_OWNED = ("seed", "save_applied_params")  # set per sample by this step


def import_albumentations():
    """albumentations 2.0.x (MIT), imported without its PyPI update check."""
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
    try:
        version = metadata.version("albumentations")
    except metadata.PackageNotFoundError:
        raise ConfigError(
            f"the albumentations step needs albumentations 2.0.x (MIT licence): {_INSTALL}. The AGPL fork AlbumentationsX is not supported."
        ) from None
    if not version.startswith("2.0."):
        raise ConfigError(f"albumentations {version} is installed; synth supports the MIT 2.0.x line only: {_INSTALL}.")
    import albumentations

    return albumentations


def build_compose(spec: list[Any] | dict[str, Any]):
    """An ``A.Compose`` from a list of transform dicts, a transform dict, or the full ``A.to_dict``
    output (``{"__version__", "transform"}``). Raises ValueError naming the bad key's path."""
    A = import_albumentations()
    if isinstance(spec, list):
        return A.Compose([_build(t, f"transforms[{i}]", A) for i, t in enumerate(spec)])
    if "transform" in spec and "__class_fullname__" not in spec:
        obj = _build(spec["transform"], "transforms.transform", A)
    else:
        obj = _build(spec, "transforms", A)
    return obj if isinstance(obj, A.Compose) else A.Compose([obj])


def _build(d: Any, where: str, A):
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY, register_additional_transforms, shorten_class_name

    register_additional_transforms()
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping with '__class_fullname__', got {type(d).__name__} {d!r}")
    name = d.get("__class_fullname__")
    if not name:
        raise ValueError(f"{where}: missing '__class_fullname__' (the transform class, e.g. HorizontalFlip)")
    cls = SERIALIZABLE_REGISTRY.get(shorten_class_name(str(name)))
    if cls is None:
        close = difflib.get_close_matches(str(name), list(SERIALIZABLE_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"{where}.__class_fullname__: unknown albumentations transform {name!r}.{hint}")
    args = {k: v for k, v in d.items() if k != "__class_fullname__"}
    owned = [k for k in _SYNTH_OWNED if k in args]
    if owned:
        raise ValueError(f"{where}.{owned[0]}: set by synth per sample (seeded, recorded); remove it")
    if "p" not in args and name not in ("Compose", "Sequential"):
        args["p"] = 0.5  # as A.from_dict does
    if "transforms" in args:
        if not isinstance(args["transforms"], list):
            raise ValueError(f"{where}.transforms: expected a list of transform mappings")
        args["transforms"] = [_build(t, f"{where}.transforms[{i}]", A) for i, t in enumerate(args["transforms"])]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown arguments are reported below instead
            obj = cls(**args)
    except Exception as e:  # albumentations validates with pydantic: ValueError, TypeError, ...
        detail = " ".join(line.strip() for line in str(e).splitlines()[:3])
        raise ValueError(f"{where} ({name}): invalid arguments: {detail}") from None
    invalid = getattr(obj, "invalid_args", None)
    if invalid:
        schema = getattr(cls, "InitSchema", None)
        valid = sorted(set(getattr(schema, "model_fields", {})) - {"strict"} | {"p"})
        raise ValueError(f"{where}.{invalid[0]}: not an argument of {name}. Valid: {', '.join(valid)}")
    return obj


class AlbumentationsParams(Params):
    transforms: list[Any] | dict[str, Any] = Field(
        description="albumentations transforms in A.to_dict format: a list of {__class_fullname__, p, ...}, a Compose dict, or A.to_dict output"
    )
    num_per_parent: int = Field(1, ge=1, description="variants per real image")
    labels: list[str] | None = Field(None, description="only real images with these labels (default: all)")
    max_parents_per_label: int | None = Field(None, ge=1, description="at most this many real images per label (the first by id)")

    @field_validator("transforms")
    @classmethod
    def _valid_transforms(cls, v):
        build_compose(v)  # fails at build time, naming the key
        return v


@register("albumentations")
class AlbumentationsGenerator(Generator):
    """Augmented variants of real images with any albumentations transform.

    Reads: kept train image rows (their payload PNGs). Writes: ``num_per_parent`` PNGs per real
    image at ``data/<name>/<id>.png`` (path = uri, same mode as the parent: L, RGB or RGBA),
    ``parent_id`` = the real sample, ``seed`` = the per-sample seed that fixes every random draw,
    ``params`` = the transforms actually applied with their drawn parameters (JSON), the
    albumentations version and a fingerprint of the declared transforms. Drops: nothing.

    Draws are deterministic per sample and independent of processing order: before each image the
    Compose gets fresh numpy / python generators seeded with that sample's seed, shared by all
    its transforms (so transforms do not repeat each other's draws).

    Example::

        {type: albumentations, num_per_parent: 2, transforms: [
           {__class_fullname__: HorizontalFlip, p: 0.5},
           {__class_fullname__: Affine, rotate: [-15, 15], p: 1.0}]}
    """

    Params: ClassVar[type[AlbumentationsParams]] = AlbumentationsParams
    modality: ClassVar[Literal["image", "text"]] = "image"

    def setup(self, ctx: Context) -> None:
        try:
            self._compose = build_compose(self.params.transforms)
        except ValueError as e:
            raise ConfigError(f"step {self.name!r}: {e}") from None
        self._compose.save_applied_params = True
        self._version = metadata.version("albumentations")
        self._fingerprint = fingerprint(self.params.transforms)

    def teardown(self) -> None:
        self._compose = None

    def plan(self, real, ctx: Context) -> list[Task]:
        p = self.params
        return tasks_per_parent(select_parents(real, p.labels, p.max_parents_per_label), p.num_per_parent)

    def generate(self, tasks: list[Task], ctx: Context):
        import numpy as np

        for task in tasks:
            seed = self.sample_seed(task, ctx)
            img = task.parent.load_image(ctx.run_dir)
            if img.mode not in _IMAGE_MODES:
                img = img.convert("RGB")
            self._compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
            out = self._compose(image=np.asarray(img))
            result = out["image"]
            if result.dtype != np.uint8 or result.ndim not in (2, 3):
                raise ConfigError(
                    f"step {self.name!r}: the transforms output a {result.dtype} array of shape {result.shape}; "
                    "images are saved as PNG, so the result must be uint8 H x W (x C). Remove Normalize / ToTensor-like transforms."
                )
            applied = [{"transform": name, "params": json_safe(params)} for name, params in out.get("applied_transforms", [])]
            params = {"applied": applied, "albumentations_version": self._version, "transforms_fingerprint": self._fingerprint}
            yield save_png_sample(
                self, task, ctx, to_pil(result), seed, model="albumentations", model_revision=self._version, params=params
            )
