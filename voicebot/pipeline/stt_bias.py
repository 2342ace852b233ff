"""Contextual biasing of Whisper: the text it is prompted with before a caller's turn.

Whisper continues its prompt (``initial_prompt``), so a prompt that reads like the domain's calls makes its
words likelier: "refund", "subscription", "parcel" instead of "ref and", "subscript shin". What the bot just
asked narrows it further: after "what is your order number?" digits are likely, after "is that right?" a
yes or a no. The vocabulary comes from the domain's example utterances, so an integrator's own domain biases
towards its own words without configuration.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from dialogs.domain.schema import Domain

# Dialog acts: their words ("yes", "bye") are everywhere already and would crowd out the domain's.
_ACT_INTENTS = frozenset({"greet", "goodbye", "affirm", "deny", "thanks", "repeat", "out_of_scope"})

_STOPWORDS = frozenset(
    [
        "about", "above", "after", "again", "against", "also", "been", "before", "being", "below", "between",
        "both", "cannot", "could", "didn", "does", "doing", "down", "during", "each", "from", "further",
        "have", "having", "here", "hers", "herself", "himself", "into", "itself", "just", "like", "more",
        "most", "myself", "need", "only", "other", "ours", "ourselves", "over", "own", "same", "should",
        "some", "such", "than", "that", "that's", "their", "theirs", "them", "themselves", "then", "there",
        "these", "they", "this", "those", "through", "under", "until", "very", "want", "wanted", "was",
        "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
        "your", "yours", "yourself", "yourselves", "please", "thank", "thanks", "know", "still", "i'm", "i'd",
        "i've", "can't", "don't", "it's", "doesn't", "isn't", "wasn't", "haven't", "hasn't", "won't", "get",
        "got", "going", "help", "tell", "make", "made", "calling", "call", "there's", "something", "someone",
        "keeps", "back", "send",
    ]  # fmt: skip
)

# What the bot's question asks for (``BotReply.expects``) -> text that reads like such an answer.
EXPECTED_ANSWERS: dict[str, str] = {
    "order_number": "My order number is 45281.",
    "yes_no": "Yes. No. Yes, that's right. No, that's wrong.",
    "postcode": "The postcode is SW1A 1AA.",
    "date": "It was on the 3rd of March.",
    "phone": "My phone number is 07700 900123.",
    "email": "My e-mail is j.doe@example.com.",
    "pin": "My PIN is 1234.",
}

# Added to the prompt of a short clip with no expected answer (own short dev set, G.711: lone digits 80 -> 64 %
# WER, one-word answers 48 -> 54 %; without the domain's words answers fell to 62 %). Alone, it is also the prompt of
# a short clip's second decode (models.stt.short_clip_alternative: answers).
SHORT_ANSWERS = "Zero, one, two, three, four, five, six, seven, eight, nine. Yes. No."

# Between the heading and the vocabulary of the prompt of a turn that answers no question: over G.711 Whisper drops a
# caller's opening greeting or thanks, said fast and quiet, or reads it as another word ("hi, where's my delivery"
# -> "I wear my delivery", "thanks and where is my other order" -> "and, and where is my other order?") unless its
# prompt has them. Spoken dev set, every voice (612 clips): multi-intent 72.8 -> 77.2 %, single 85.5 -> 85.0 %; at
# the prompt's end instead (where Whisper weighs it most): 76.4 / 83.9 %.
OPENERS = "Hi, hello, thanks."

MAX_WORDS = 40  # the vocabulary part of a prompt; Whisper reads at most 223 prompt tokens


def domain_vocabulary(domain: Domain, per_intent: int = 6, limit: int = MAX_WORDS) -> list[str]:
    """The domain's most telling words: per task intent, the commonest content words of its examples
    (round robin over the intents so every intent is represented), without duplicates."""
    ranked: list[list[str]] = []
    for name, intent in domain.intents.items():
        if name in _ACT_INTENTS:
            continue
        counts = Counter(
            w
            for example in intent.examples
            for w in re.findall(r"[a-z][a-z'-]+", example.lower())
            if len(w) >= 4 and w not in _STOPWORDS
        )
        ranked.append([w for w, _ in counts.most_common(per_intent)])
    words: list[str] = []
    for rank in range(per_intent):
        for intent_words in ranked:
            if rank < len(intent_words) and intent_words[rank] not in words:
                words.append(intent_words[rank])
    return words[:limit]


@dataclass(frozen=True)
class SpeechBias:
    """The prompts for one domain: ``prompt(expects)`` is the text Whisper reads before a caller turn."""

    vocabulary: tuple[str, ...] = ()
    name: str = ""
    answers: dict[str, str] = field(default_factory=lambda: dict(EXPECTED_ANSWERS))

    @classmethod
    def from_domain(cls, domain: Domain) -> SpeechBias:
        name = re.sub(r"\s*\(.*?\)", "", domain.name).strip()
        return cls(vocabulary=tuple(domain_vocabulary(domain)), name="" if name == "unnamed domain" else name)

    def prompt(self, expects: str | None = None, short: bool = False) -> str:
        """The domain's vocabulary as a sentence, then an example of the expected answer if one is known. A
        ``short`` clip (a word or two) with no known expected answer gets :data:`SHORT_ANSWERS` after the
        vocabulary: a lone digit or a yes is as likely there as a domain word."""
        parts = []
        if self.vocabulary:
            # The heading stays on every clip: without it Whisper copies it less into read prose, but hears the
            # callers' requests worse (spoken dev set, 6 voices: 73.8 / 75.6 % against 80.3 / 78.0 %).
            head = f"{self.name} customer service" if self.name else "Customer service"
            words = ", ".join(self.vocabulary)
            if expects not in self.answers:  # no question, or one whose answers have no example
                parts.append(f"{head}. {OPENERS} {words[:1].upper()}{words[1:]}.")
            else:
                parts.append(f"{head}: {words}.")
        if self.example_answers(expects, short):
            parts.append(self.example_answers(expects, short))
        return " ".join(parts)

    def example_answers(self, expects: str | None = None, short: bool = False) -> str:
        """The example answers :meth:`prompt` ends with ("" for none): the expected answer's, else for a ``short``
        clip :data:`SHORT_ANSWERS`."""
        if expects is not None and expects in self.answers:
            return self.answers[expects]
        return SHORT_ANSWERS if short else ""
