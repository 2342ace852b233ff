"""Where a spoken turn may be cut into clauses, and which clauses are negated.

ASR text often has no punctuation, so the segmenter proposes *candidate* cut points (punctuation,
conjunctions such as "and then" or "also", clause openers such as "can you", a leading "hi"/"yes"/"no", a
trailing "thanks", the start of a negation such as "I don't want to") and the parser chooses among them
with the classifier (see :mod:`dialogs.nlu.parser`). This module only knows words; it has no model.

Negation scope is a clause: a clause that opens with a cue ("I don't want to cancel", "instead of a
refund", "not the password") names an intent the caller does *not* want. A "not" inside a clause ("my
parcel has not arrived", "I can't log in") is content, not a rejected request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Connectors are dropped from the start (or end) of a clause.
_CONNECTORS: list[tuple[str, ...]] = sorted(
    [tuple(c.split()) for c in (
        "and", "and then", "and also", "also", "then", "plus", "but", "but also", "after that", "as well as",
        "oh and", "so", "and so", "additionally", "besides that", "while you are at it", "on top of that",
        "another thing", "one more thing", "and one more thing", "and another thing", "actually", "anyway",
        "well", "ok so", "alright so", "right so", "so yeah", "and i also", "as well", "too", "and finally",
        "finally", "first", "firstly", "secondly", "second", "lastly", "next", "or", "and or",
        "and while you are at it", "at the same time", "and after that", "and lastly", "now", "basically",
        "ok", "ok so", "alright", "right", "and ok", "because of that",
    )],
    key=len, reverse=True,
)
_CONNECTOR_SET = set(_CONNECTORS)

# A new clause may start before these words.
_OPENERS: list[tuple[str, ...]] = [tuple(o.split()) for o in (
    "can you", "could you", "would you", "will you", "can i", "could i", "i want", "i need", "i would",
    "i also", "tell me", "where is", "how do", "how can", "what is", "just", "i am", "i have", "please",
    "is there", "let me", "help me", "why", "do you", "are you", "give me", "put me", "connect me",
    "transfer me", "get me", "instead", "rather", "thanks", "thank you", "bye", "goodbye", "cheers", "hi",
    "hello", "no", "yes", "i was", "i got", "i moved", "i just", "my", "track", "update", "change", "cancel",
    "reset", "return", "check", "send", "start", "close", "stop", "put", "transfer", "connect", "the app",
    "the website",
)]
_WEAK_OPENERS = [("my",), ("the", "app"), ("the", "website")]
# A clause does not end on these words, so never cut right after one.
_NO_CUT_AFTER = frozenset({
    "to", "the", "a", "an", "my", "your", "do", "does", "did", "not", "of", "for", "i", "we", "you", "can",
    "could", "would", "will", "want", "need", "like", "at", "in", "on", "with", "from", "about", "am", "are",
})

# Dialog acts that open or close a turn without a conjunction ("hi i need ...", "... thanks bye").
_LEAD_ACTS = [tuple(a.split()) for a in (
    "hi there", "hello there", "hey there", "good morning", "good afternoon", "good evening", "hi", "hello",
    "hey", "yes please", "yes", "yeah", "yep", "no thanks", "no thank you", "no", "nope", "thanks",
    "thank you",
)]
_TAIL_ACTS = [tuple(a.split()) for a in (
    "thanks", "thank you", "thank you very much", "thanks a lot", "cheers", "bye", "goodbye", "bye bye",
    "thanks bye", "please",
)]

# Negation cues at the start of a clause (after connectors and "just"/"please").
_NEG_CUE = re.compile(
    r"^(?:(?:i|we) )?(?:really |actually |definitely )?(?:"
    r"(?:do|does) not (?:really )?(?:want|need|wish|mean|intend|plan) to|"
    r"(?:do|does) not (?:really )?(?:want|need) (?:a|an|any|to)|"
    r"would not like to|would rather not|am not (?:trying|looking|asking|calling|here|going|wanting|ringing) "
    r"(?:to|about|for)|are not (?:calling|here) (?:about|for|to)|"
    r"not (?:trying|looking|asking|calling|here) (?:to|about|for)|(?:there is )?no need (?:to|for)|"
    r"never mind(?: about)?|forget(?: about)?|instead of|rather than|not (?:to|the|a|an|my|about|for)|"
    r"(?:do not|not) (?=(?:cancel|reset|change|return|update|transfer|close|send|refund|charge|touch|bother|"
    r"connect|put|worry|check|look)\b)|without|no longer want to"
    r")\b ?"
)
_LEAD_SOFT = {"just", "please", "and", "but", "so", "then", "actually", "oh", "well"}
# "I don't want my subscription anymore" is a request to cancel, not a negated one.
_CONTENT = re.compile(r"\b(?:anymore|any more|any longer|no longer)\b")


@dataclass(frozen=True)
class Clause:
    """Tokens ``start:end`` of the normalised text; ``words`` without connectors; ``negated`` if the clause
    opens with a negation cue, in which case ``words`` has the cue removed."""

    start: int
    end: int
    words: tuple[str, ...]
    negated: bool


def _match_at(tokens: list[str], i: int, phrases: list[tuple[str, ...]]) -> tuple[str, ...] | None:
    for p in phrases:
        if tuple(tokens[i:i + len(p)]) == p:
            return p
    return None


# A question word before a connector that ends the turn makes the connector the question's ("what now", "why so").
_QUESTION_WORDS = frozenset({"what", "why", "how", "where", "when", "who", "which"})


def _asks_on(tokens: list[str], i: int) -> bool:
    """True if tokens ``i:`` are nothing but a connector after a question word: the end of the question ("the vase
    came cracked, what | now"), not a clause opener."""
    link = _match_at(tokens, i, _CONNECTORS)
    return link is not None and i + len(link) == len(tokens) and tokens[i - 1] in _QUESTION_WORDS


def candidate_cuts(tokens: list[str], breaks: set[int]) -> list[int]:
    """Token indexes (1..n-1) before which a new clause may start, in order."""
    n = len(tokens)
    cuts: set[int] = {b for b in breaks if 0 < b < n}
    inside_cue: set[int] = set()
    for i in range(n):
        if tokens[i] in ("i", "we", "not", "do", "no", "never", "forget", "instead", "rather", "without",
                         "there", "would"):
            m = _NEG_CUE.match(" ".join(tokens[i:i + 8]))
            if m and m.end() > 0:
                cuts.add(i)
                inside_cue.update(range(i + 1, i + len(m.group(0).split())))
    for i in range(1, n):
        if (_match_at(tokens, i, _CONNECTORS) or _match_at(tokens, i, _OPENERS)) \
                and tokens[i - 1] not in _NO_CUT_AFTER and not _asks_on(tokens, i):
            cuts.add(i)
    lead = _match_at(tokens, 0, _LEAD_ACTS)
    if lead:
        inside_cue.update(range(1, len(lead)))  # "no thanks" is one answer
        if len(lead) < n:
            cuts.add(len(lead))
    for i in range(max(1, n - 5), n):
        if _match_at(tokens, i, _TAIL_ACTS) and i + len(_match_at(tokens, i, _TAIL_ACTS) or ()) == n:
            cuts.add(i)
    for start, end in requestless_spans(tokens, breaks):
        cuts.update((start, end))  # a complaint, or an answer before a request, is a clause of its own
    # never inside a negation cue ("no | need to", "i do | not want to")
    cuts -= inside_cue
    cuts.discard(0)
    return sorted(cuts)


def weak_cuts(tokens: list[str], breaks: set[int]) -> set[int]:
    """Cut points that may also just start an object ("cancel | my subscription"): a negation reaches
    across them."""
    weak = set()
    for i in range(1, len(tokens)):
        if i not in breaks and _match_at(tokens, i, _WEAK_OPENERS) and not _match_at(tokens, i - 1, _CONNECTORS):
            weak.add(i)
    return weak


def strip_connectors(words: list[str], *, keep_last: bool = True) -> list[str]:
    """The clause without leading and trailing connectors ("and then check my bill and" -> "check my bill").

    With ``keep_last`` a clause that is nothing but a connector keeps it ("ok" alone is an answer)."""
    changed = True
    while changed and words:
        changed = False
        lead = _match_at(words, 0, _CONNECTORS)
        if lead and (len(lead) < len(words) or not keep_last):
            words = words[len(lead):]
            changed = True
        if words and words[-1] in ("and", "but", "so", "then", "also", "or", "plus"):
            words = words[:-1]
            changed = True
    return words


def make_clause(tokens: list[str], start: int, end: int) -> Clause:
    """The clause of tokens ``start:end``, with connectors removed and negation detected."""
    # inside a longer turn a lone "ok" or "right" is a connector; alone it is an answer
    words = strip_connectors(list(tokens[start:end]), keep_last=start == 0 and end == len(tokens))
    negated = False
    k = 0
    while k < len(words) - 1 and words[k] in _LEAD_SOFT:
        k += 1
    text = " ".join(words[k:])
    m = _NEG_CUE.match(text)
    if m and not _CONTENT.search(text):
        rest = text[m.end():].split()
        if rest:
            words, negated = rest, True
    return Clause(start, end, tuple(words), negated)


# A clause's subject and what may stand between it and its verb ("i | do not | recognise", "we | never | ordered").
_SUBJECTS = frozenset({"i", "we", "you", "they"})
_BEFORE_VERB = frozenset({
    "do", "does", "did", "not", "never", "have", "has", "had", "just", "already", "really", "still", "ever",
    "will", "would", "can", "could", "should", "only", "actually", "recently", "also", "definitely",
})
# When a verb may end a clause that lost its object to the clause before it ("a subscription i cancelled last week").
_WHEN = frozenset({"yesterday", "today", "earlier", "before", "already", "ago", "recently", "again", "last", "week",
                   "month", "year", "night", "days", "weeks", "months"})
_RELATIVE = frozenset({"which", "that", "who", "what"})
# Words that open a noun phrase: a clause "to my new flat" is a place, not an infinitive ("to cancel my plan").
_PREPOSITIONS = frozenset({"to", "for", "from", "with", "about", "on", "in", "at", "of", "by", "into", "onto"})
_DETERMINERS = frozenset({"my", "the", "a", "an", "your", "our", "this", "that", "these", "those", "his", "her",
                          "their", "its"})


def is_fragment(words: list[str] | tuple[str, ...], *, cut_off: bool = True) -> bool:
    """True if ``words`` (a clause without its connectors) has no request of its own: a phrase without a verb ("i want
    my parcel | and to my new flat") or, when only a punctuation mark (``cut_off``) parts it from the clause before,
    a relative clause whose object is a noun of that clause ("there's a payment on my statement, | i don't
    recognise", "a subscription, | which i never ordered": a subject, a verb and no object). After a connector a
    subject and verb are a clause of their own ("the app keeps crashing, | so i can't log in")."""
    w = list(words)
    if len(w) >= 2 and w[0] in _PREPOSITIONS and w[1] in _DETERMINERS:
        return not _SUBJECTS.intersection(w)  # "for the current saga i rate it 2 stars" has a request after all
    if not cut_off:
        return False
    if w and w[0] in _RELATIVE:
        w = w[1:]
    if len(w) < 2 or w[0] not in _SUBJECTS:
        return False
    k = 1
    while k < len(w) and w[k] in _BEFORE_VERB:
        k += 1
    return k < len(w) and w[k] not in _SUBJECTS and all(x in _WHEN for x in w[k + 1:])


def fragment_cuts(tokens: list[str], cuts: list[int], breaks: set[int]) -> list[int]:
    """The cut points of ``cuts`` that open a fragment (:func:`is_fragment`): what follows, up to the next punctuation
    mark or the end of the turn with no other cut point in between, belongs to the clause before it, unless that
    clause is a dialog act ("hi, i moved"; the parser decides)."""
    found = []
    for c in cuts:
        end = min([b for b in breaks if b > c], default=len(tokens))
        if any(c < other < end for other in cuts):
            continue  # more than one piece: the segmentation chooses
        piece = list(tokens[c:end])
        words = strip_connectors(piece)
        cut_off = c in breaks and _match_at(piece, 0, _CONNECTORS) is None \
            and _match_at(tokens, c - 1, _CONNECTORS) is None
        if words and is_fragment(words, cut_off=cut_off):
            found.append(c)
    return found


# Words of anger or complaint ("this is ridiculous", "the third time I'm calling"): a clause made of them is how
# the caller feels, not a request, so it is answered with empathy and never read as a second request.
_COMPLAINT = re.compile(
    r"\b(?:(?:this|that|it)(?:'s| is| was) (?:just |absolutely |completely |really )?"
    r"(?:ridiculous|unacceptable|outrageous|absurd|insane|terrible|awful|a joke|a disgrace|not good enough)"
    r"|(?:this|it)(?:'s| is) (?:already )?the (?:second|third|fourth|fifth|sixth|\d+(?:st|nd|rd|th)) time"
    r"(?: (?:that )?(?:i|we)(?:'ve|'m| have| am)? (?:called|calling|call|asked|tried|rung|ringing|contacted you)"
    r"(?: (?:about|for) (?:this|it))?)?"
    r"|(?:i|we)(?:'m| am| are) (?:so |really |very |getting |absolutely )?"
    r"(?:fed up|sick of this|sick and tired of this|angry|furious|frustrated|annoyed|upset|livid)"
    r"(?: (?:with|about|of) (?:this|you|it|you people|your service))?"
    r"|(?:and )?(?:nobody|no one|no-one) (?:ever )?(?:helps?(?: me)?|calls? (?:me )?back|listens|answers|cares)"
    r"|(?:i|we)(?:'ve| have) (?:already )?(?:called|phoned|rung|tried|asked) (?:\w+ )?times(?: already)?"
    r"|how many times (?:do|have|must) (?:i|we) (?:have to )?(?:call(?: you)?|ask|tell you|explain)(?: this)?"
    r"|(?:what )?(?:a|such a) (?:waste of (?:my )?time|joke)"
    r"|(?:your|the) (?:service|company) is (?:terrible|awful|useless|a joke|the worst))\b",
    re.IGNORECASE,
)


def split_complaint(text: str) -> tuple[str | None, str]:
    """The complaint in a turn and the rest of it: ``("this is ridiculous, this is the third time I'm calling",
    "where is my order")``; ``(None, text)`` when the caller complains of nothing."""
    found = list(_COMPLAINT.finditer(text))
    if not found:
        return None, text
    complaint = "; ".join(m.group(0) for m in found)
    rest = _COMPLAINT.sub(" ", text)
    # what is left between two complaints is mostly punctuation and connectors ("..., and ...")
    rest = re.sub(r"(?:^|(?<=[.,!?;]))\s*(?:and|but|so|honestly|seriously)\b", " ", rest, flags=re.IGNORECASE)
    rest = re.sub(r"\s*[.,!?;]+(?:\s*[.,!?;]+)*", lambda m: m.group(0).strip()[:1] + " ", rest)
    rest = re.sub(r"\s{2,}", " ", rest).strip(" .,!?;")
    return complaint, rest


# A shorter match ("a joke") is as often the topic of a request ("tell me a joke") as a complaint.
COMPLAINT_MIN_WORDS = 3


def complaint_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """Token ranges ``(start, end)`` of the normalised words that are a complaint ("this is the third time", "it
    is ridiculous"), each at least :data:`COMPLAINT_MIN_WORDS` words long."""
    text = " ".join(tokens)
    starts = [0]
    for t in tokens[:-1]:
        starts.append(starts[-1] + len(t) + 1)
    spans = []
    for m in _COMPLAINT.finditer(text):
        first = next((k for k, at in enumerate(starts) if at >= m.start()), len(tokens))
        end = next((k for k, at in enumerate(starts) if at >= m.end()), len(tokens))
        if end - first >= COMPLAINT_MIN_WORDS and first < len(tokens) and starts[first] == m.start():
            spans.append((first, end))
    return spans


# An answer may open the turn before a request: "it is" and the value alone.
_ANSWER_LEAD = ("it", "is")


def answer_spans(tokens: list[str], breaks: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """The token range ``(0, end)`` of a value alone that opens the turn before a connector or a punctuation mark
    (``breaks``) and more words ("94107 | and where is my order 45281", "94107, | where is my order 45281", "it is
    45281 | and i also want to change my address"): the answer to the bot's question, a clause of its own beside the
    request that follows. ``[]`` when the turn opens otherwise ("94107 where is my order": the request's own number)."""
    k = len(_ANSWER_LEAD) if tuple(tokens[:len(_ANSWER_LEAD)]) == _ANSWER_LEAD else 0
    end = k
    while end < len(tokens) and tokens[end].isdigit() and (end == k or end not in breaks):
        end += 1
    if end == k or end >= len(tokens):
        return []
    link = _match_at(tokens, end, _CONNECTORS)
    if link is None and end not in breaks:
        return []
    if link is not None and end + len(link) >= len(tokens):
        return []
    return [(0, end)]


def requestless_spans(tokens: list[str], breaks: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Token ranges that are clauses of their own and name no request: complaints (:func:`complaint_spans`) and a
    value answered before a request (:func:`answer_spans`; ``breaks``: where the recogniser put a punctuation
    mark)."""
    return sorted([*complaint_spans(tokens), *answer_spans(tokens, breaks)])
