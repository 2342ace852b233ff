"""Turn speech-recognition output (or typed text) into one canonical token sequence.

What a caller says reaches us as ASR text: with or without punctuation and capitals, numbers as words
("four five two eight one", "twelve thirty four"), fillers ("uh", "um"), homophones of digits ("for",
"to", "oh") and split compounds ("pass word"). Everything downstream (entities, segmentation, the
classifier) works on the :class:`Normalized` form produced here, so the training examples and the live
input are normalised the same way.

Rules, in order: lower-case and tokenise (punctuation becomes a clause break, other symbols vanish);
expand contractions ("don't" -> "do not"); drop fillers; join split compounds; turn runs of number words
into digit strings; assemble spelled-out e-mail addresses ("j dot doe at example dot com" ->
"j.doe@example.com"); assemble spelled UK postcodes ("s w one a one a a" -> "sw1a 1aa").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Input longer than this is cut: a spoken turn is never this long and the cost must stay bounded.
MAX_CHARS = 2000

_TOKEN = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # a typed e-mail address
    r"|\d{1,3}(?:,\d{3})+(?![\d,])"  # 55,123 (Whisper's thousands separator)
    r"|\d+(?:[./:]\d+)+"  # 3/14, 12.50, 10:30
    r"|[^\W_]+(?:[._][^\W_]+)+"  # bob.jones, example.co.uk, mary_k
    r"|[^\W_]+(?:'[^\W_]+)*"  # words, with inner apostrophes
    r"|[.,;!?]"  # clause punctuation
)
_BREAK = {".", ",", ";", "!", "?"}

FILLERS = frozenset({"uh", "um", "umm", "uhm", "uhh", "uhhh", "er", "erm", "hmm", "hm", "mm", "mmm", "ah", "eh"})

_CONTRACTIONS: dict[str, str] = {
    "can't": "can not", "cant": "can not", "cannot": "can not", "won't": "will not", "wont": "will not",
    "dont": "do not", "doesnt": "does not", "didnt": "did not", "isnt": "is not", "wasnt": "was not",
    "arent": "are not", "werent": "were not", "havent": "have not", "hasnt": "has not", "hadnt": "had not",
    "shouldnt": "should not", "wouldnt": "would not", "couldnt": "could not", "aint": "is not",
    "ain't": "is not", "i'm": "i am", "im": "i am", "i've": "i have", "ive": "i have", "i'd": "i would",
    "i'll": "i will", "it's": "it is", "its": "it is", "what's": "what is", "whats": "what is",
    "where's": "where is", "wheres": "where is", "that's": "that is", "thats": "that is",
    "there's": "there is", "theres": "there is", "how's": "how is", "who's": "who is", "let's": "let us",
    "you're": "you are", "youre": "you are", "we're": "we are", "they're": "they are", "he's": "he is",
    "she's": "she is", "y'all": "you all", "gonna": "going to", "wanna": "want to", "gotta": "got to",
}

# Two ASR tokens that are one word for us, and single-word mishearings.
_COMPOUNDS: dict[tuple[str, str], str] = {
    ("pass", "word"): "password", ("e", "mail"): "email", ("user", "name"): "username",
    ("web", "site"): "website", ("re", "fund"): "refund", ("sub", "scription"): "subscription",
    ("post", "code"): "postcode", ("zip", "code"): "postcode", ("log", "in"): "login",
    ("sign", "in"): "login", ("pass", "code"): "passcode", ("voice", "mail"): "voicemail",
    ("up", "date"): "update",
}
_WORD_FIXES: dict[str, str] = {
    "emails": "email", "adress": "address", "addres": "address", "oder": "order", "recieve": "receive",
    "recieved": "received", "pasword": "password", "passwort": "password", "logon": "login", "okay": "ok",
    "o.k": "ok",
}
# After these a turn-initial "high" is the adjective ("high street", "high charges"), not a greeting.
_HIGH_THINGS = frozenset({"bill", "bills", "price", "prices", "charge", "charges", "fee", "fees", "amount",
                          "street", "speed", "quality", "priority", "definition", "end", "up"})

UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "nil": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
# Words that sound like digits; they count as digits only inside or at the head of a run of numbers.
HOMOPHONES = {"for": 4, "fore": 4, "to": 2, "too": 2, "won": 1, "ate": 8}
# "oh"/"o"/"one" alone are words ("oh no", "a new one"); they become digits only next to other numbers.
_WEAK = {"oh", "o", "one", "nil"}
_RUN_HEAD_CONTEXT = {"number", "is", "was", "order", "code", "pin", "it", "its", "id", "reference", "ref"}


@dataclass
class Normalized:
    """The canonical text: ``tokens`` joined by single spaces is ``text``.

    ``breaks`` holds the indexes of tokens that follow a clause punctuation mark in the input.
    """

    tokens: list[str]
    breaks: set[int] = field(default_factory=set)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def offsets(self) -> list[tuple[int, int]]:
        """Character span of each token within :attr:`text`."""
        spans, pos = [], 0
        for tok in self.tokens:
            spans.append((pos, pos + len(tok)))
            pos += len(tok) + 1
        return spans


def _tokenize(text: str) -> tuple[list[str], set[int]]:
    tokens: list[str] = []
    breaks: set[int] = set()
    text = text[:MAX_CHARS].lower().replace("\u2019", "'").replace("\u2018", "'")
    # Hyphens join number words ("twenty-four") and compounds ("e-mail"): split them except in e-mail
    # addresses, which the tokeniser takes whole.
    for m in _TOKEN.finditer(text.replace("-", " - ") if "@" not in text else text):
        tok = m.group(0)
        if tok in _BREAK:
            breaks.add(len(tokens))
            continue
        if "@" not in tok and tok.endswith("."):
            tok = tok.rstrip(".")
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", tok) or re.fullmatch(r"\d{3,}\.\d", tok):
            tok = tok.replace(",", "").replace(".", "")  # "55,123"; "1234.5" is Whisper for "twelve thirty four five"
        tokens.append(tok)
    return tokens, breaks


def _is_digitlike(tok: str) -> bool:
    return (tok.isdigit() and len(tok) <= 2) or tok in UNITS


def _is_num_word(tok: str) -> bool:
    return tok in UNITS or tok in TEENS or tok in TENS or tok in ("hundred", "thousand", "double", "triple") \
        or tok.isdigit()


def _numbers(tokens: list[str], breaks: set[int]) -> tuple[list[str], set[int]]:
    """Replace runs of number words (and digits) with digit strings; see the module docstring."""
    out: list[str] = []
    out_breaks: set[int] = set()
    i, n = 0, len(tokens)

    def numeric(j: int) -> bool:
        return 0 <= j < n and (_is_num_word(tokens[j]) or tokens[j] in HOMOPHONES)

    def strong(j: int) -> bool:
        return 0 <= j < n and _is_num_word(tokens[j]) and tokens[j] not in _WEAK

    while i < n:
        tok = tokens[i]
        if i in breaks:
            out_breaks.add(len(out))
        starts = _is_num_word(tok) or (
            tok in HOMOPHONES and numeric(i + 1) and numeric(i + 2)
            and (i == 0 or tokens[i - 1] in _RUN_HEAD_CONTEXT)
        )
        if not starts:
            out.append(tok)
            i += 1
            continue
        j = i
        # Whisper writes spoken digits as "3, 9, 4, 4, 1": a comma between single digits does not end the run
        while j < n and (j == i or j not in breaks or (_is_digitlike(tokens[j - 1]) and _is_digitlike(tokens[j]))):
            t = tokens[j]
            if _is_num_word(t):
                j += 1
            elif t in HOMOPHONES and (j == i or numeric(j + 1)):
                j += 1  # "four five for two": a homophone between numbers is a digit
            elif t == "and" and j > i and tokens[j - 1] in ("hundred", "thousand") and numeric(j + 1):
                j += 1
            else:
                break
        run = tokens[i:j]
        # A lone weak word ("one", "oh") or a lone "double" stays a word.
        if len(run) == 1 and (run[0] in _WEAK or run[0] in ("double", "triple", "hundred", "thousand")):
            out.append(tok)
            i += 1
            continue
        if all(t in _WEAK for t in run) and not any(strong(k) for k in (i - 1, j)):
            out.extend(run)
            i = j
            continue
        out.append(_run_value(run))
        i = j
    return out, out_breaks


def _run_value(run: list[str]) -> str:
    """Digits of a run: groups are concatenated ("twelve thirty four" -> "1234", "forty two" -> "42")."""
    groups: list[str] = []
    cur: int | None = None
    room = 1  # how much can still be added to `cur` (10 after "forty", 100 after "hundred")
    repeat = 1

    def flush() -> None:
        nonlocal cur, room
        if cur is not None:
            groups.append(str(cur))
        cur, room = None, 1

    for t in run:
        if t == "and":
            continue
        if t in ("double", "triple"):
            flush()
            repeat = 2 if t == "double" else 3
            continue
        if t.isdigit():
            flush()
            groups.append(t[0] * (repeat - 1) + t)  # "double 4321" is 44321
            repeat = 1
            continue
        if repeat > 1 and (t in UNITS or t in HOMOPHONES):
            flush()
            groups.append(str(UNITS.get(t, HOMOPHONES.get(t))) * repeat)
            repeat = 1
            continue
        repeat = 1
        if t in UNITS or t in HOMOPHONES:
            u = UNITS.get(t, HOMOPHONES.get(t, 0))
            if cur is not None and room > 1 and 0 < u < room:
                cur += u
                room = 1
            else:
                flush()
                cur, room = u, 1
        elif t in TEENS:
            if cur is not None and room >= 100:
                cur += TEENS[t]
                room = 1
            else:
                flush()
                cur, room = TEENS[t], 1
        elif t in TENS:
            if cur is not None and room >= 100:
                cur += TENS[t]
            else:
                flush()
                cur = TENS[t]
            room = 10
        elif t == "hundred":
            if cur is None:
                cur = 100
            elif cur < 100:
                cur *= 100
            else:
                cur = cur // 1000 * 1000 + cur % 1000 * 100
            room = 100
        elif t == "thousand":
            cur = (cur or 1) * 1000
            room = 1000
    flush()
    return "".join(groups)


_LOCAL_STOP = frozenset({
    "is", "email", "address", "my", "it", "the", "to", "was", "me", "am", "use", "be", "account", "under",
    "with", "try", "from", "send", "and", "so", "at", "that", "new", "old", "registered", "on", "of",
    "please", "i", "you", "your", "a", "an", "in", "for", "reset", "password", "change",
})
_TLDS = frozenset({
    "com", "net", "org", "co", "uk", "io", "de", "fr", "edu", "gov", "info", "biz", "us", "ca", "au", "me",
    "nl", "eu", "ie", "es", "it", "ch", "at", "be", "dk", "se", "no", "in", "app", "dev", "ai",
})
_SEP = {"dot": ".", "period": ".", "point": ".", "underscore": "_", "dash": "-", "hyphen": "-"}


def _emails(tokens: list[str], breaks: set[int]) -> tuple[list[str], set[int]]:
    """Join a spelled-out address ("j dot doe at example dot com") into one token."""
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        if tokens[i] not in ("at", "@") or i == 0:
            i += 1
            continue
        at = i
        after = at + 1
        if after < len(tokens) and tokens[after] == "sign":
            after += 1
        # right side: label (dot label)+ ending with a top-level domain
        labels: list[str] = []
        cur: list[str] = []
        j = after
        end = None
        while j < len(tokens) and j - after < 12:
            t = tokens[j]
            if t in ("dot", "period", "point"):
                if not cur:
                    break
                labels.append("".join(cur))
                cur = []
            elif "." in t and not cur and t.rsplit(".", 1)[-1] in _TLDS and re.fullmatch(r"[a-z0-9.-]+", t):
                end, labels_final = j + 1, [*labels, t]  # a domain written out: "at example.co.uk"
                break
            elif t.isalnum() and t not in ("and", "please", "thanks", "thank", "so", "but"):
                if cur and len(cur) >= 4 and len(t) > 1:
                    break
                cur.append(t)
                if labels and t in _TLDS:
                    # keep scanning: the longest domain wins ("co dot uk")
                    end, labels_final = j + 1, [*labels, "".join(cur)]
            else:
                break
            j += 1
        if end is None:
            i += 1
            continue
        # left side: back from "at" until a stop word or a clause break
        k = at - 1
        while k >= 0 and at - k <= 8 and (re.fullmatch(r"[a-z0-9._+-]+", tokens[k]) or tokens[k] in _SEP) \
                and tokens[k] not in _LOCAL_STOP:
            k -= 1
            if k + 1 in breaks:
                break
        start = k + 1
        while start < at and tokens[start] in _SEP:
            start += 1
        if start == at:
            i += 1
            continue
        parts = [_SEP.get(t, t) for t in tokens[start:at]]
        email = "".join(parts) + "@" + ".".join(labels_final)
        tokens[start:end] = [email]
        breaks = {b if b <= start else b - (end - start - 1) for b in breaks if not start < b < end}
        i = start + 1
    return tokens, breaks


_UK_POSTCODE = re.compile(r"^([a-z]{1,2}\d[a-z\d]?)(\d[a-z]{2})$")


def _postcodes(tokens: list[str], breaks: set[int]) -> tuple[list[str], set[int]]:
    """Join a UK postcode spoken as letters and digits ("s w 1 a 1 a a") into "sw1a 1aa"."""
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        found = None
        for j in range(min(len(tokens), i + 7), i, -1):
            window = tokens[i:j]
            if any(not t.isalnum() for t in window) or (len(window) > 1 and any(len(t) > 4 for t in window)):
                continue
            if any(b in breaks for b in range(i + 1, j)):
                continue
            # spoken digits that stayed words ("one") count as digits inside a postcode
            m = _UK_POSTCODE.match("".join(str(UNITS[t]) if t in UNITS and len(t) > 2 else t for t in window))
            if m:
                found = (j, f"{m.group(1)} {m.group(2)}")
                break
        if found:
            j, code = found
            tokens[i:j] = [code]
            breaks = {b if b <= i else b - (j - i - 1) for b in breaks if not i < b < j}
        i += 1
    return tokens, breaks


def normalize(text: str) -> Normalized:
    """Normalise ASR or typed text. Never raises on any string; empty input gives no tokens."""
    if not isinstance(text, str):
        text = str(text)
    raw, breaks = _tokenize(text)
    tokens: list[str] = []
    new_breaks: set[int] = set()
    for idx, tok in enumerate(raw):
        if idx in breaks:
            new_breaks.add(len(tokens))
        tok = _WORD_FIXES.get(tok, tok)
        if tok in FILLERS:
            continue
        if tok in _CONTRACTIONS:
            tokens.extend(_CONTRACTIONS[tok].split())
        elif tok.endswith("n't"):
            tokens.extend([tok[:-3] or "not", "not"] if tok[:-3] else ["not"])
        elif tok.endswith("'s"):
            tokens.append(tok[:-2])
        elif "'" in tok:
            tokens.append(tok.replace("'", ""))
        else:
            tokens.append(tok)
    # compounds
    merged: list[str] = []
    merged_breaks: set[int] = set()
    i = 0
    while i < len(tokens):
        if i in new_breaks:
            merged_breaks.add(len(merged))
        pair = (tokens[i], tokens[i + 1]) if i + 1 < len(tokens) else None
        if pair in _COMPOUNDS and (i + 1) not in new_breaks:
            merged.append(_COMPOUNDS[pair])  # type: ignore[index]
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    if merged and merged[0] == "high" and (len(merged) == 1 or merged[1] not in _HIGH_THINGS):
        merged[0] = "hi"  # Whisper writes a greeting "hi" as "High" at the start of a turn
    toks, brks = _numbers(merged, merged_breaks)
    toks, brks = _emails(toks, brks)
    toks, brks = _postcodes(toks, brks)
    return Normalized(tokens=toks, breaks={b for b in brks if 0 < b < len(toks)})
