"""A phonetic key of English words (Lawrence Philips' Metaphone, in its common form), for the classifier's view of
how a clause sounds rather than how it is spelt.

The recogniser's mistakes on accented speech are mostly sound-alikes ("change my dress" for "change my address",
"my voice looks wrong" for "my invoice looks wrong"). A word's key keeps its consonant skeleton: spellings of one
sound made one letter ("ph" F, "ck" K, soft "c" S, "tion" XN), silent letters dropped ("kn", "wr", "gh" before a
consonant), vowels dropped but for a leading one (written ``A``), so "address" is ATRS, "dress" TRS, "invoice"
ANFS and "voice" FS. Keys use upper-case letters, ``0`` for "th" and ``X`` for "sh"; a word without letters
(a number, a placeholder such as "num" is letters and keyed like a word) keys to itself.
"""

from __future__ import annotations

import functools

_VOWELS = frozenset("AEIOU")
_FRONT = frozenset("EIY")
# Leading pairs whose first letter is silent: "knee", "gnome", "pneumatic", "aesthetic", "write".
_SILENT_FIRST = ("KN", "GN", "PN", "AE", "WR")
_SAME = {"F": "F", "J": "J", "L": "L", "M": "M", "N": "N", "R": "R", "Q": "K", "V": "F", "Z": "S"}


@functools.lru_cache(maxsize=8192)
def metaphone(word: str) -> str:
    """The Metaphone key of one word ("" for a word without letters a-z)."""
    w = "".join(c for c in word.upper() if "A" <= c <= "Z")
    if not w:
        return ""
    # A doubled letter sounds once, but "cc" ("accept": K S).
    w = w[0] + "".join(c for prev, c in zip(w, w[1:], strict=False) if c != prev or c == "C")
    if w[:2] in _SILENT_FIRST:
        w = w[1:]
    elif w[0] == "X":
        w = "S" + w[1:]
    elif w[:2] == "WH":
        w = "W" + w[2:]
    out: list[str] = []
    n = len(w)
    for i, c in enumerate(w):
        prev = w[i - 1] if i else ""
        nxt = w[i + 1] if i + 1 < n else ""
        after = w[i + 2] if i + 2 < n else ""
        if c in _VOWELS:
            if i == 0:
                out.append("A")
        elif c in _SAME:
            out.append(_SAME[c])
        elif c == "B":
            if not (prev == "M" and i == n - 1):  # "dumb", "climb"
                out.append("B")
        elif c == "C":
            if nxt == "I" and after == "A" or nxt == "H":
                out.append("K" if prev == "S" else "X")  # "school" / "special", "check"
            elif nxt in _FRONT:
                if prev != "S":  # "science": the S already sounds
                    out.append("S")
            else:
                out.append("K")
        elif c == "D":
            out.append("J" if nxt == "G" and after in _FRONT else "T")  # "edge"
        elif c == "G":
            if nxt == "H" and i > 0:
                continue  # "night", "bought", "through" (English spells F as "gh" too rarely to guess)
            if nxt == "N" and (i + 2 == n or w[i + 2:] == "ED"):
                continue  # "sign", "signed"
            if prev == "D" and nxt in _FRONT:
                continue  # "edge": the D said it
            out.append("J" if nxt in _FRONT and prev != "G" else "K")
        elif c == "H":
            if prev and prev in "CSPTG":
                continue  # part of ch, sh, ph, th, gh
            if prev in _VOWELS and nxt not in _VOWELS:
                continue  # "oh", "ah"
            out.append("H")
        elif c == "K":
            if prev != "C":
                out.append("K")
        elif c == "P":
            out.append("F" if nxt == "H" else "P")
        elif c == "S":
            if nxt == "H" or nxt == "I" and after in ("O", "A"):
                out.append("X")  # "ship", "session", "Asia"
            else:
                out.append("S")
        elif c == "T":
            if nxt == "I" and after in ("O", "A"):
                out.append("X")  # "nation"
            elif nxt == "H":
                out.append("0")  # "the", "think"
            elif not (nxt == "C" and after == "H"):  # "watch": the CH said it
                out.append("T")
        elif c in "WY":
            if nxt in _VOWELS or i == 0:  # "why" keeps its W
                out.append(c)
        elif c == "X":
            out.append("KS")
    return "".join(out)


def sounds(view: str) -> str:
    """A classifier view (lower-case words separated by spaces) as the keys of its words, separated by spaces; a word
    without a key (no letters) is left out."""
    return " ".join(k for k in (metaphone(w) for w in view.split()) if k)
