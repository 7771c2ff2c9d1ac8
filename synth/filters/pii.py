"""Personal data in generated text: e-mail addresses, phone numbers, card numbers, IP addresses.

Detectors are conservative regular expressions: a card number must pass the Luhn check, an IPv4
address needs four octets <= 255, a phone number needs a leading ``+`` or a grouped national
format (``(555) 123-4567``, ``555-123-4567``, ``020 7946 0958``), so order numbers such as
``12984`` or ``#A-77341`` are not flagged.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from synth.filters._base import QualityFilter, Rule
from synth.filters._scores import luhn_valid
from synth.registry import register
from synth.sample import Sample
from synth.steps import Context, Params
from synth.util import sha256_text

Kind = Literal["email", "phone", "card", "ip"]
KINDS: tuple[Kind, ...] = ("email", "phone", "card", "ip")
PLACEHOLDER = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.])")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}(?![\w:])"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"  # +44 20 7946 0958, +1-555-123-4567
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567, 555.123.4567
    r"|0\d{2,4}[\s-]\d{3,4}[\s-]\d{3,4}"  # 020 7946 0958
    r")(?![\w-])"
)


def find_pii(text: str, kinds: tuple[str, ...] | list[str] = KINDS) -> list[tuple[str, int, int]]:
    """Non-overlapping ``(kind, start, end)`` spans, checked in the order email, card, ip, phone
    (a Luhn-valid digit run is a card, not a phone)."""
    spans: list[tuple[str, int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for _, s, e in spans)

    for kind in ("email", "card", "ip", "phone"):
        if kind not in kinds:
            continue
        if kind == "email":
            found = [(m.start(), m.end()) for m in _EMAIL.finditer(text)]
        elif kind == "card":
            found = [(m.start(), m.end()) for m in _CARD.finditer(text) if luhn_valid(re.sub(r"\D", "", m.group()))]
        elif kind == "ip":
            found = [(m.start(), m.end()) for p in (_IPV4, _IPV6) for m in p.finditer(text)]
        else:
            found = [(m.start(), m.end()) for m in _PHONE.finditer(text) if 7 <= len(re.sub(r"\D", "", m.group())) <= 15]
        spans.extend((kind, a, b) for a, b in found if free(a, b))
    return sorted(spans, key=lambda t: t[1])


def redact(text: str, spans: list[tuple[str, int, int]]) -> str:
    """``text`` with every span replaced by its placeholder (``[EMAIL]``, ``[PHONE]``, ...)."""
    out, last = [], 0
    for kind, a, b in sorted(spans, key=lambda t: t[1]):
        out.append(text[last:a])
        out.append(PLACEHOLDER[kind])
        last = b
    out.append(text[last:])
    return "".join(out)


class PiiParams(Params):
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS), description="which kinds of personal data to look for")
    action: Literal["reject", "redact"] = Field(
        "reject", description="reject the sample, or replace each match with a placeholder and keep it"
    )


@register("pii")
class PiiFilter(QualityFilter):
    """Finds personal data in synthetic text; rejects the sample or redacts the matches.

    Reads: ``text``.
    Writes: scores ``<name>.email`` / ``.phone`` / ``.card`` / ``.ip`` (matches found, before any
    redaction). With ``action: redact`` also ``text`` (matches become ``[EMAIL]`` etc.),
    ``content_sha256`` (of the new text) and ``params["<name>.redacted"] = {kind: count}``.
    Drops: ``filter:<name>.<kind>`` with ``action: reject`` (the first kind found, in the order of
    ``kinds``).
    Example: ``{type: pii, action: redact, kinds: [email, phone, card]}``
    """

    Params = PiiParams
    modality: ClassVar = "text"
    batch_size: ClassVar[int] = 256
    decision_params: ClassVar[frozenset[str]] = frozenset()  # the action changes text: re-run instead

    def rules(self) -> list[Rule]:
        if self.params.action != "reject":
            return []
        return [Rule(k, "<=", 0, k) for k in self.params.kinds]

    def compute(self, samples: list[Sample], ctx: Context) -> list[dict[str, float]]:
        out = []
        for s in samples:
            spans = find_pii(s.text or "", self.params.kinds)
            out.append({k: float(sum(1 for kind, _, _ in spans if kind == k)) for k in self.params.kinds})
        return out

    def process(self, samples: list[Sample], ctx: Context) -> list[Sample]:
        samples = super().process(samples, ctx)
        if self.params.action == "redact":
            for s in samples:
                if not self.applies_to(s) or not s.text:
                    continue
                spans = find_pii(s.text, self.params.kinds)
                if spans:
                    s.text = redact(s.text, spans)
                    s.content_sha256 = sha256_text(s.text)
                    counts: dict[str, int] = {}
                    for kind, _, _ in spans:
                        counts[kind] = counts.get(kind, 0) + 1
                    s.params[f"{self.name}.redacted"] = counts
                    ctx.count(self.name, "redacted")
        return samples
