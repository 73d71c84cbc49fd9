"""Text typed into cells: numbers written with separators, and ids that must mean one thing and print safely.

Kept apart from ``validate`` because the same rules apply to a cell, a Scenarios value and a ``--set`` override.
"""

from __future__ import annotations

import re
import unicodedata

# ---- numbers typed as text ------------------------------------------------------------------------------------------
_COMMA_GROUPED = re.compile(r"[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?")  # 1,234  1,234,567.5
_DOT_GROUPED = re.compile(r"[+-]?[1-9]\d{0,2}(\.\d{3})+(,\d*)?")  # 1.234,5  1.234.567
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")  # 8,5  0,25  ,5  1234,567
_ONE_GROUP = re.compile(r"[+-]?[1-9]\d{0,2}[.,]\d{3}")  # 1,000 or 1.000: a group, or three decimals?


def _bare(text: str) -> tuple[str, float]:
    t = text.strip().replace("_", "")
    if t.endswith("%"):
        return t[:-1].strip(), 0.01
    return t, 1.0


def number_style(text: str) -> str:
    """How a number typed as text uses separators.

    ``plain`` (no comma; a dot is the decimal point), ``grouping`` (separators group thousands: 1,234,567,
    1,234.5, 1.234.567), ``decimal_comma`` (a comma that can only be a decimal point: 8,5, 0,250, 1.234,5),
    ``ambiguous`` (1,000 or 1.000: one group of three digits, a thousand or one depending on the convention) or
    ``invalid`` (1,2,3).
    """
    t, _ = _bare(text)
    if _ONE_GROUP.fullmatch(t):
        return "ambiguous"
    if "," not in t:
        return "grouping" if t.count(".") > 1 and _DOT_GROUPED.fullmatch(t) else "plain"
    if _COMMA_GROUPED.fullmatch(t):
        return "grouping"
    if _DOT_GROUPED.fullmatch(t) or _DECIMAL_COMMA.fullmatch(t):
        return "decimal_comma"
    return "invalid"


def parse_number(text: str, decimal_comma: bool = False) -> tuple[float | None, str | None]:
    """A number typed as text → ``(value, None)`` or ``(None, problem code)``.

    Each separator is read by what it can mean: "8,5" only as 8.5 (a decimal comma: it was read as 85),
    "1,234.5" and "1,234,567" only with commas grouping thousands, "1.234,5" only with dots grouping. "1,000"
    and "1.000" can mean either: they are read as a dot-decimal workbook writes them (1000 and 1) unless
    ``decimal_comma`` says the workbook writes decimal commas elsewhere, and then they are refused
    (``ambiguous_number``), never guessed. A trailing % divides by 100.
    """
    t, scale = _bare(text)
    style = number_style(t)
    if style == "ambiguous" and decimal_comma:
        return None, "ambiguous_number"
    if style == "invalid":
        return None, "not_a_number"
    if style == "decimal_comma":
        t = t.replace(".", "").replace(",", ".")
    elif style == "grouping" and "," not in t:  # 1.234.567
        t = t.replace(".", "")
    else:
        t = t.replace(",", "")
    try:
        return float(t) * scale, None
    except ValueError:
        return None, "not_a_number"


# ---- ids: one spelling, printable, look-alikes named --------------------------------------------------------------
_HIDDEN = {"Cc": "a control character", "Cf": "an invisible formatting character", "Zl": "a line separator",
           "Zp": "a paragraph separator"}


def char_name(ch: str) -> str:
    """'U+00A0 NO-BREAK SPACE'."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}"


def hidden_chars(text: str) -> list[tuple[str, str]]:
    """Characters that do not print or that change how the rest prints (C0/C1 controls, bidi overrides,
    zero-width spaces, line separators), each with what it is."""
    return [(ch, _HIDDEN[unicodedata.category(ch)]) for ch in dict.fromkeys(text)
            if unicodedata.category(ch) in _HIDDEN]


def nfc(text: str) -> str:
    """One spelling per text: "Café" typed with a combining accent (NFD) and precomposed (NFC) are one id."""
    return unicodedata.normalize("NFC", text)


# Cyrillic and Greek letters drawn like Latin ones in the fonts spreadsheets use (after case folding), from
# Unicode's confusables (UTS #39) for these scripts: "НВМ4" typed on a Russian layout is "HBM4" on screen.
_LATIN_LOOKALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ё": "ë",
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
})


def skeleton(text: str) -> str:
    """What an id looks like: compatibility-normalised (full-width letters, no-break and ideographic spaces),
    case-folded, Cyrillic and Greek look-alikes of Latin letters read as Latin, whitespace runs collapsed. Two ids
    with one skeleton cannot be told apart on screen."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().translate(_LATIN_LOOKALIKES).split())


def look_alike_difference(a: str, b: str) -> str:
    """The characters that tell two look-alike ids apart, named ('U+00A0 NO-BREAK SPACE')."""
    diff = [ch for ch in dict.fromkeys(a + b) if (ch in a) != (ch in b) and not ch.isascii()]
    return ", ".join(char_name(ch) for ch in diff[:3]) or "letter case or spacing"
