"""Test parameters for every registered step, one module per step family.

Each module defines ``EXAMPLES = {type_name: callable(tmp_path) -> params dict}``; generator and
filter families may define ``INPUTS = {type_name: callable(ctx) -> list[Sample]}`` (default: real
digits for image steps, tests/conftest.TEXTS for text steps). The registry contract test fails
for a registered step without an entry.
"""
