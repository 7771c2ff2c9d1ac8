"""Output steps: run after the manifest is written (``outputs:`` in a pipeline file).

``mix``, ``ablate`` and ``export`` wrap :mod:`synth.mix`, :mod:`synth.ablate` and
:mod:`synth.export` with the same parameters as the CLI verbs; relative ``out``/``source`` paths
are relative to the run directory.
"""

from __future__ import annotations

from pathlib import Path


def under(run_dir: Path, path: str) -> Path:
    """``path`` resolved against the run directory unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else Path(run_dir) / p
