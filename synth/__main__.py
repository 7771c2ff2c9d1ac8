from synth.cli import entrypoint

entrypoint()
