"""Pure helpers: hashing, seeds, fingerprints, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form hashed by fingerprints."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(obj: Any, length: int = 16) -> str:
    """Stable hex fingerprint of a JSON-able object."""
    return sha256_text(canonical_json(obj))[:length]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from (run seed, step name, sample id, ...), never from global state."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def synthetic_id(generator: str, run_seed: int, index: int) -> str:
    """The id of the ``index``-th sample of ``generator`` in a run seeded ``run_seed``."""
    return f"{generator}-s{run_seed}-{index:06d}"


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.

    The rename is what makes a ``kill -9`` safe; ``fsync`` (for stage markers) also survives a
    power loss at the price of a disk flush."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def file_tree_hash(path: str | Path, suffixes: tuple[str, ...] = (".safetensors", ".json", ".txt", ".model")) -> str:
    """Hash of a local model folder (weights and configs), the ``model_revision`` of local models."""
    root = Path(path)
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)
    for p in files:
        h.update(str(p.relative_to(root) if root.is_dir() else p.name).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]
