"""The registry of named steps. Built-in steps register by decorator in their own module; the
modules of ``synth.sources``, ``synth.generators``, ``synth.filters`` and ``synth.outputs`` (and
``synth.dedup.step``) are discovered; plug-ins register through the ``synth.steps`` entry point or
the ``SYNTH_PLUGINS`` environment variable (comma-separated importable modules)."""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points

from synth.errors import ConfigError, did_you_mean
from synth.steps import Step

_REGISTRY: dict[str, type[Step]] = {}
_PACKAGES = ("synth.sources", "synth.generators", "synth.filters", "synth.outputs")  # every public module is a step module
_MODULES = ("synth.dedup.step",)  # synth.dedup also holds the pure core (numba kernels, Ray): import only the step
_loaded = False


def register(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step available under ``type: <name>`` in pipeline files."""

    def deco(cls: type[Step]) -> type[Step]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"step type {name!r} registered twice ({_REGISTRY[name]} and {cls})")
        cls.type_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def load_builtin_steps() -> None:
    """Import every built-in step module (cheap: heavy libraries load in ``setup``)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError as e:
            if e.name == pkg_name:
                continue
            raise
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    for mod_name in _MODULES:
        try:
            importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
    for ep in entry_points(group="synth.steps"):
        ep.load()
    for mod in filter(None, os.environ.get("SYNTH_PLUGINS", "").split(",")):
        importlib.import_module(mod.strip())  # user modules that @register their own steps


def all_steps() -> dict[str, type[Step]]:
    load_builtin_steps()
    return dict(sorted(_REGISTRY.items()))


def get(name: str, kind: str | None = None, where: str = "type") -> type[Step]:
    """The step class registered as ``name``; a ConfigError naming the valid ones otherwise."""
    steps = all_steps()
    valid = [n for n, c in steps.items() if kind is None or c.kind == kind]
    cls = steps.get(name)
    if cls is None or (kind is not None and cls.kind != kind):
        what = f"{kind} step" if kind else "step"
        extra = f" ({name!r} is a {cls.kind} step)" if cls is not None else ""
        raise ConfigError(f"{where}: unknown {what} type {name!r}{extra}. {did_you_mean(name, valid)}")
    return cls
