"""Pure score functions on strings and numpy arrays: the functional core of the quality filters.

Every function here is deterministic, has no I/O and imports nothing heavy, so each can be tested
directly on crafted inputs. The filter classes only load payloads, call these, and compare the
results with their thresholds.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

# ---- text ------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SEGMENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_BASIC_PUNCT = set(".,!?;:'\"’‘“”()-–—/&%$€£#@+=*")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, inner apostrophes)."""
    return [w.lower() for w in _WORD.findall(text)]


def char_count(text: str) -> int:
    """Characters after stripping surrounding whitespace."""
    return len(text.strip())


def segments(text: str) -> list[str]:
    """Lines and sentences, normalised (lower case, inner whitespace collapsed), empty ones dropped."""
    out = []
    for seg in _SEGMENT_SPLIT.split(text):
        norm = " ".join(words(seg))
        if norm:
            out.append(norm)
    return out


def dup_segment_frac(text: str) -> float:
    """Share of lines/sentences that repeat an earlier one (Gopher's duplicate-line fraction,
    extended to sentences because generations are often one line)."""
    segs = segments(text)
    if len(segs) < 2:
        return 0.0
    return (len(segs) - len(set(segs))) / len(segs)


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def top_ngram_frac(tokens: Sequence[str], n: int, min_count: int = 2) -> float:
    """Share of word characters covered by the most frequent word ``n``-gram, counted only when it
    occurs at least ``min_count`` times (Gopher's top n-gram share counts every gram, which on a
    ten-word message flags any phrase said twice)."""
    total = sum(len(t) for t in tokens)
    grams = _ngrams(tokens, n)
    if not grams or total == 0:
        return 0.0
    gram, count = Counter(grams).most_common(1)[0]
    if count < min_count:
        return 0.0
    return min(1.0, count * sum(len(t) for t in gram) / total)


def dup_ngram_frac(tokens: Sequence[str], n: int) -> float:
    """Share of word characters inside word ``n``-grams that occur more than once (Gopher)."""
    total = sum(len(t) for t in tokens)
    grams = _ngrams(tokens, n)
    if not grams or total == 0:
        return 0.0
    counts = Counter(grams)
    covered = np.zeros(len(tokens), dtype=bool)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i : i + n] = True
    return float(sum(len(t) for t, c in zip(tokens, covered) if c) / total)


def alpha_frac(text: str) -> float:
    """Alphabetic characters / non-whitespace characters (1.0 for an empty text)."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 1.0


def symbol_frac(text: str) -> float:
    """Characters that are neither letters, digits, whitespace nor common punctuation, over
    non-whitespace characters: markup, emoji runs, mojibake, code (0.0 for an empty text)."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    odd = sum(1 for c in chars if not c.isalnum() and c not in _BASIC_PUNCT and not unicodedata.category(c).startswith("P"))
    return odd / len(chars)


def pattern_hits(text: str, patterns: Iterable[re.Pattern[str]]) -> int:
    """How many of ``patterns`` occur in ``text``."""
    return sum(1 for p in patterns if p.search(text))


def containment(a: Sequence[str], b: Sequence[str], n: int) -> float:
    """Share of the word ``n``-grams of ``a`` that also occur in ``b`` (texts shorter than ``n``
    words compare as one gram of all their words)."""
    ga = set(_ngrams(a, min(n, len(a)))) if a else set()
    if not ga:
        return 0.0
    gb = set(_ngrams(b, min(n, len(a)))) if b else set()
    return len(ga & gb) / len(ga)


def copy_frac(text: str, references: Iterable[str], n: int = 3) -> float:
    """How much ``text`` copies one of ``references`` (the prompt, few-shot examples): the largest
    containment either way, so echoing the prompt, repeating an example, and an example embedded
    in a longer text all score near 1."""
    a = words(text)
    best = 0.0
    for ref in references:
        b = words(ref)
        if a and b:
            best = max(best, containment(a, b, n), containment(b, a, n))
    return best


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ---- images ------------------------------------------------------------------------------------


def to_gray(image: np.ndarray) -> np.ndarray:
    """A 2-D float64 luminance array in 0..255 from gray (H, W), gray+alpha, RGB or RGBA (H, W, C)
    arrays of any integer or float dtype in 0..255 (ITU-R 601 weights, as PIL's ``convert('L')``)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim != 3:
        raise ValueError(f"expected an image array of shape (H, W) or (H, W, C), got {a.shape}")
    c = a.shape[2]
    if c in (1, 2):
        return a[..., 0]
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (the classic blur score; OpenCV's
    ``cv2.Laplacian(img, cv2.CV_64F).var()`` with its default reflect-101 border). Low = blurry or
    flat. Scale-dependent: a 512 px photo and an 8x8 digit need different thresholds."""
    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {g.shape}")
    if min(g.shape) < 2:
        return 0.0
    p = np.pad(g, 1, mode="reflect")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * g
    return float(lap.var())


def brightness(gray: np.ndarray) -> float:
    """Mean luminance in 0..1."""
    return float(np.mean(gray) / 255.0)


def contrast(gray: np.ndarray) -> float:
    """Standard deviation of luminance in 0..1 (RMS contrast; ~0 for a constant image)."""
    return float(np.std(gray) / 255.0)


def aspect_ratio(width: int, height: int) -> float:
    """Long side / short side (>= 1; infinite for a degenerate image)."""
    lo, hi = min(width, height), max(width, height)
    return float(hi / lo) if lo > 0 else float("inf")


def image_stats(image: np.ndarray) -> dict[str, float]:
    """Size, aspect, sharpness (Laplacian variance), brightness and contrast of one image array."""
    gray = to_gray(image)
    h, w = gray.shape
    return {
        "width": float(w),
        "height": float(h),
        "aspect": aspect_ratio(w, h),
        "sharpness": laplacian_variance(gray),
        "brightness": brightness(gray),
        "contrast": contrast(gray),
    }
