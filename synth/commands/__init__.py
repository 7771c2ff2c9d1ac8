"""CLI verbs beyond the core ones: each module adds its commands to ``synth.cli.app``."""
