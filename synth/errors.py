"""One error family. Every message names the key or file, what would be valid, and the fix."""

from __future__ import annotations


class SynthError(Exception):
    """Base of every error synth raises on purpose. The CLI maps it to exit code 2."""


class ConfigError(SynthError):
    """A pipeline file, a --set override or a step parameter is invalid."""


class InputError(SynthError):
    """A data source, a manifest or a run directory cannot be used as given."""


def did_you_mean(name: str, options: list[str]) -> str:
    """A short hint listing the valid options, closest first."""
    import difflib

    close = difflib.get_close_matches(name, options, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Valid options: {', '.join(sorted(options))}.{hint}"
