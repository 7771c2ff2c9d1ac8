"""Executors run the same pipeline on one machine (``local``) or on a Ray cluster (``ray``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from synth.config import Pipeline
from synth.errors import ConfigError


class Executor(Protocol):
    def run(self, pipeline: Pipeline, run_dir: Path, fresh: bool = False) -> dict[str, Any]: ...


def get_executor(name: str, **options: Any) -> Executor:
    if name == "local":
        from synth.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        try:
            from synth.executors.ray import RayExecutor
        except ModuleNotFoundError as e:
            raise ConfigError(f"--executor ray needs Ray: pip install 'synth[ray]' ({e}).") from None
        return RayExecutor(**options)
    raise ConfigError(f"--executor {name!r} is not known. Valid options: local, ray.")
