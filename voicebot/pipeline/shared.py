"""What every call of one process shares: one Whisper model, one Piper voice, one bounded thread pool.

CTranslate2 and onnxruntime release the GIL, so inference in a small pool keeps the asyncio loop free for
the media of all calls. Nothing here is per call.
"""

from __future__ import annotations

import asyncio
import math
import re
import string
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from audio import pcm
from dialogs.nlu.heard import HeardWord
from dialogs.nlu.nbest import Hypothesis
from voicebot import metrics
from voicebot.config import Settings
from voicebot.models import load_piper, load_whisper, whisper_source
from voicebot.pipeline.stt_bias import SHORT_ANSWERS, SpeechBias
from voicebot.pipeline.vad import holds_voice

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from piper import PiperVoice

T = TypeVar("T")

# Encoder window for a short utterance (models.stt.window: fit): its length plus a margin, never below
# MIN_WINDOW_S.
WINDOW_MARGIN_S = 1.0
MIN_WINDOW_S = 10.0  # shorter windows made tiny.en loop on short phrases (measured on synthetic speech)
MAX_PROMPT_TOKENS = 120  # of the biasing prompt; Whisper allows 223 and each costs decoder time

# The rejection rules of judge(), chosen on a measured set (benchmarks/stt_rejection.py: 199 English clips the bot
# must hear, 112 it must not: noise, tones, music, coughs, breaths, silence, German / French / Spanish speech):
# 8 false rejects and 26 false accepts (2 the NLU would act on), against 14 and 26 (2) with Whisper's own values.
# "No speech": Whisper's no-speech probability above 0.35 with a decode less sure than -0.5 (English clips stayed
# below 0.26; breaths and sighs heard as "Thank you." / "No." came at 0.40); Whisper's own 0.6 / -1.0 let them through.
NO_SPEECH_PROB = 0.35
LOGPROB_NO_SPEECH = -0.5
COMPRESSION_RATIO = 2.4  # a repetitive decode compresses better than text does (Whisper's own value)
# Below this mean token log probability the words are a guess (about 1 token in 5 right); rejected outright.
LOGPROB_GUESS = -1.6
# Below it the words are a guess too; 0.1 to 0.15 measured alike, 0.2 rejected English that was heard (a lone "nine").
MIN_CONFIDENCE = 0.1
# A multilingual model this sure of another language ... (0.4 rejected accented English taken for Welsh, Latin or
# Finnish at 0.53-0.56 over G.711; 0.6 costs 3 more accepted foreign clips, none of them an action) ...
FOREIGN_LANGUAGE_PROB = 0.6
LOGPROB_FOREIGN = -0.5  # ... and this unsure of the words in the bot's language: not understood ...
# ... unless a decode in the other language is more than this less sure than one in the bot's (both greedy, no prompt):
# accented English taken for Thai decodes worse in Thai (by 0.14-0.36 on 3 of 4 such clips), German, French and
# Spanish decode better in their own language (by -0.21 to +1.2, benchmarks/stt_rejection.py clips).
LANGUAGE_MARGIN = 0.25
# Windows come in whole seconds: CTranslate2 keeps ~0.6 MB for every encoder input length it has seen (measured:
# 100 windows of random length in 10 ms steps +103 MB RSS, in 1 s steps +2 MB), so exact lengths grew without end.
WINDOW_STEP_S = 1.0
SECOND_PASS_BEAM = 5  # beam width and hypotheses kept of the second pass over an unsure first reading
# A clip this short holds a word or two ("four", "yes"): language detection on it is a guess (lone digits over
# G.711 came out as Thai or Chinese), and the domain's vocabulary as prompt turns the word into a domain word.
SHORT_CLIP_S = 2.0
# ... so a short clip sounds foreign only when Whisper is this sure of another language and gives the bot's own under
# 5 %, however sure the English decode ("Nove otto sette" -> "No, my order is empty."). Measured on
# benchmarks/stt_short_foreign.py: 0.7-0.9 with 0.05 reject no English short answer of 246 (0.6 rejects one).
SHORT_FOREIGN_PROB = 0.8
SHORT_OWN_LANGUAGE_BELOW = 0.05
# A short clip read as a word said twice or more ("Four. Four.", "Return, return,") holds too little speech-loud sound
# for that many words when it has under this many seconds of it per word: the word is kept once. On the own short set
# (benchmarks/stt_short.py, 9 voices) lone words read twice had 0.16-0.54 s of speech, "seven seven" said 0.60-0.96 s;
# 0.28-0.30 gave the same (own short clips 61.0 -> 58.7 % WER, no row worse), 0.33 and above cost "seven seven".
SHORT_MIN_WORD_S = 0.28
# A short clip's first reading that loops on one unit of up to this many words ("Return, return, return, ...") is
# heard once when the digits-and-yes/no reading says the same unit (ShortClipDecoding.loop_agree).
LOOP_UNIT_WORDS = 3


@dataclass(frozen=True)
class ShortClipDecoding:
    """How a clip of :data:`SHORT_CLIP_S` or less is decoded: silence added before and after it, the beam width
    (a word or two decodes a few tokens, so a beam costs little there) and Whisper's blank suppression."""

    lead_s: float = 0.0
    trail_s: float = 0.0
    beam_size: int = 1
    suppress_blank: bool = True
    # Tokens the decoder may write after its prompt (0: the rule for every clip, 8 a second plus 16). Not a setting:
    # on the own short set a cap of 6 cost lone digits 5 points and a cap of 10 changed nothing but CPU.
    max_tokens: int = 0
    # A second decode over the same encoder output after this prompt (None: none; "": no prompt) when no answer is
    # expected; the reading the decoder itself is surer of (mean token log probability) is kept.
    alternative_prompt: str | None = None
    # A reading that repeats a word ("Four. Four.") from a clip with less than this many seconds of speech-loud sound
    # per word keeps the word once (0: never).
    min_word_s: float = SHORT_MIN_WORD_S
    # A first reading rejected as "no speech" whose words the alternative reads too, as a digit (zero to nine) that
    # passes judge(), is taken back (_short_alternative).
    digits_agree: bool = True
    # A reading that loops ("repetitive") is decoded again with this beam over the same fitted window before the full
    # 30 s window is tried (0 or not above beam_size: straight to the full window). On the own lone digits
    # (benchmarks/stt_short.py, 9 voices, 180 clips) 11 greedy readings looped, each then took ~2.5 s of CPU in the full
    # window; a beam of 3 read them as well (6 right against 5) for less (2.1-2.4 s a looping clip against 2.7-2.8 s on
    # the bad-input sets), but it turned 7 English and 3 foreign rejections of those sets into readings, most of them
    # wrong ("Si, grazie" -> "See, that's it."), so it is off (docs/understanding.md).
    loop_beam: int = 0
    # A first reading rejected as "repetitive" that repeats one word or phrase ("Return, return, return, ...") the
    # alternative reads too ("Return.") is heard once, instead of decoded again over the full 30 s window
    # (_short_alternative).
    loop_agree: bool = True
    # Tokens each decode of the full 30 s window a looping reading is tried in next may write after its prompt (0: the
    # rule for every clip, 8 a second plus 16: 33 for a 1.2 s clip with its padding). On the own short set (44 retried
    # clips) 16 changed no reading and 10 cut "Four, two, four, five, six, seven, eight, nine." twice; a clip that loops
    # again in the full window costs ~220 ms less of CPU (3237 -> 3017 ms), one that does not about the same
    # (docs/understanding.md, 2026-12-05 morning).
    retry_max_tokens: int = 16

# A rejected reading of audio that holds this much speech-loud sound is decoded once more (Recovery): silence and
# line hiss never are. 20 ms frames above -40 dBFS (hiss is -46 dBFS, quiet speech over G.711 above -35).
SPEECH_FRAME_DBFS = -40.0
MIN_SPEECH_S = 0.2
# Not "repetitive" (noise or music) nor "language xx": a second decode of Spanish speech read it as an English request.
# A "prompt echo" is Whisper continuing its prompt instead of hearing the audio: the prompt is what to drop.
RECOVERABLE = ("unsure", "no speech", "prompt echo")
# A decode echoes the prompt when runs of this many words or more, copied in order from the prompt's domain part
# ("Acme Online Store customer service: order, return, ..."), make up at least ECHO_SHARE of its words.
ECHO_RUN = 3
ECHO_SHARE = 0.5
# The example answers a prompt ends with ("Zero, one, ... nine. Yes. No.", "Yes. No. Yes, that's right. ...") count only
# in runs of this many words: a caller says part of them ("one two three four", "yes that's right"; the project's
# sets hold a run of 6, "four five six seven eight nine"), an echo copies them whole (German speech on the own
# rejection set read "One, two, three, four, five, six, seven, eight, nine. Yes.").
ECHO_ANSWER_RUN = 7


# A second recogniser (models.stt.second_opinion, Whisper tiny.en: another model with other errors, half of base's
# CPU) reads a clip over SHORT_CLIP_S the first rejected for one of these reasons ("language" is any language); its
# reading is kept if judge() accepts it and its mean token log probability is at least SECOND_OPINION_LOGPROB.
# benchmarks/stt_second_opinion.py: of 612 spoken dev clips base rejected 25; tiny.en read most of the English ones
# at -0.27 to -0.85 and German requests base rejected at -0.86 to -1.6 (at -1.0 or below, 5 of them became actions).
# -0.8 to -0.7 measured alike (spoken dev every voice 82.2 / 71.5 -> 85.2 / 72.0 %, no foreign or noise clip acted on).
SECOND_OPINION_FOR = ("unsure", "no speech", "prompt echo", "language")
SECOND_OPINION_LOGPROB = -0.75


def wants_second_opinion(first: Transcript, short: bool) -> bool:
    """Whether a second recogniser reads the clip whose first reading is ``first``: a rejected clip over
    :data:`SHORT_CLIP_S` (short clips: a word or two, left to the short-clip decoding), for a reason of
    :data:`SECOND_OPINION_FOR`."""
    if short or first.rejected is None:
        return False
    return ("language" if first.rejected.startswith("language ") else first.rejected) in SECOND_OPINION_FOR


def recoverable(rejected: str | None) -> bool:
    """Whether a reading rejected for this reason gets a second decode (:class:`Recovery`)."""
    return rejected in RECOVERABLE


@dataclass(frozen=True)
class Recovery:
    """The second decode of a clip with speech-loud sound whose first reading was rejected as "unsure", "no
    speech" or "prompt echo": its beam width, whether the domain prompt is kept, the encoder window (``same`` reuses the first
    pass's encoder output, so only the decoder runs again; ``full`` is Whisper's 30 s) and silence added either
    side. The new reading is kept only if :func:`judge` accepts it on its own."""

    beam_size: int = 5
    prompt: bool = False
    window: str = "same"  # "same" | "full" | "fit"
    padding_s: float = 0.0


# Chosen on benchmarks/stt_rejection.py --recoveries: greedy without the prompt gave back 4 of the 7 English clips
# rejected as unsure / no speech and 5 foreign ones, none of them a request; a beam of 5 the same English and one
# foreign request; the prompt kept 4 foreign requests; the full window cost 1.4 s of CPU for less.
RECOVERY = Recovery(beam_size=1, prompt=False)


def speech_seconds(audio: np.ndarray) -> float:
    """Seconds of 20 ms frames of ``audio`` (float samples, 16 kHz) louder than :data:`SPEECH_FRAME_DBFS`."""
    size = pcm.FRAME_BYTES // 2
    n = len(audio) // size
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(audio[: n * size].reshape(n, size), dtype=np.float64), axis=1))
    return float(np.count_nonzero(rms > 10 ** (SPEECH_FRAME_DBFS / 20))) * pcm.FRAME_S


# Whisper's usual inventions on noise or breath ("[BLANK_AUDIO]", a lone "you"): never a request.
_NON_SPEECH = re.compile(r"^\W*(\[.*\]|\(.*\)|you)?\W*$", re.IGNORECASE)

# A sentence ends at . ! ? followed by space; Piper is fed one sentence at a time so audio starts early.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def fitted_window_s(seconds: float) -> float:
    """Whisper's encoder window for ``seconds`` of audio under ``window: fit``: whole seconds with a margin, at least
    MIN_WINDOW_S (CTranslate2 keeps memory per input length, so few distinct lengths)."""
    return min(30.0, max(MIN_WINDOW_S, math.ceil((seconds + WINDOW_MARGIN_S) / WINDOW_STEP_S) * WINDOW_STEP_S))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order, stripped; empty text gives an empty list."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def speech_chunks(text: str, first_max_words: int = 8) -> list[str]:
    """``text`` cut into the pieces Piper synthesises one at a time: sentences, and the first sentence
    also at its first clause break (comma, colon, semicolon) if it is long, so the first audio comes
    sooner. Joined with spaces the pieces give back the text."""
    sentences = split_sentences(text)
    if not sentences or len(sentences[0].split()) <= first_max_words:
        return sentences
    head, *rest = _CLAUSE_END.split(sentences[0], maxsplit=1)
    if not rest or len(head.split()) < 2:
        return sentences
    return [head, rest[0], *sentences[1:]]


def _looped(text: str, n: int = 3, times: int = 3) -> bool:
    """True if some run of ``n`` words occurs ``times`` times or more (Whisper's repetition failure)."""
    words = re.findall(r"\w+", text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= times:
            return True
    return False


def echoes_prompt(text: str, prompt: str, answers: str = "") -> bool:
    """True if ``text`` is mostly copied from its prompt: runs of :data:`ECHO_RUN` or more words in the order of
    ``prompt`` (the domain part), or runs of :data:`ECHO_ANSWER_RUN` or more in the order of ``answers`` (the example
    answers the prompt ends with; a digit as its word), cover at least :data:`ECHO_SHARE` of its words (Whisper's known
    failure of reproducing its prompt, seen as "Acme Online Store customer service," for "can I return something I
    bought online")."""
    return (_copied(re.findall(r"\w+", text.lower()), re.findall(r"\w+", prompt.lower()), ECHO_RUN)
            or _copied(_words(text), _words(answers), ECHO_ANSWER_RUN))


def _copied(words: list[str], source: list[str], run: int) -> bool:
    """Whether runs of ``run`` or more of ``words`` in the order of ``source`` cover :data:`ECHO_SHARE` of them."""
    if len(words) < run or len(source) < run:
        return False
    grams = {tuple(source[i : i + run]) for i in range(len(source) - run + 1)}
    covered = [False] * len(words)
    for i in range(len(words) - run + 1):
        if tuple(words[i : i + run]) in grams:
            covered[i : i + run] = [True] * run
    return sum(covered) >= ECHO_SHARE * len(words)


_NUMERALS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _words(text: str) -> list[str]:
    """The words of ``text``, lower case, a numeral 0-9 as its word."""
    return [_NUMERALS[int(w)] if w.isdigit() and len(w) == 1 else w for w in re.findall(r"[\w']+", text.lower())]


def _within(text: str, prompt: str) -> bool:
    """Whether every word of ``text`` (a numeral 0-9 as its word) is a word of ``prompt``; any text for no prompt."""
    allowed = set(re.findall(r"[\w']+", prompt.lower()))
    return not prompt or all(w in allowed for w in _words(text))


def _same_digit(first: str, second: str) -> bool:
    """Whether two readings are the same lone digit ("One," and "1." are; "Yes." and "Yes." are not)."""
    words = _words(first)
    return len(words) == 1 and words[0] in _NUMERALS and words == _words(second)


def _loop_unit(text: str, max_words: int = LOOP_UNIT_WORDS) -> str:
    """The word or phrase (up to ``max_words`` words) a looping reading repeats at least three times and nothing else
    ("Return, return, return, return," -> "Return."; "Order, status, order, status, order, status" -> "Order
    status."), as a sentence; "" for any other reading."""
    tokens = [t for t in text.split() if re.sub(r"[^\w']", "", t)]
    key = [re.sub(r"[^\w']", "", t.lower()) for t in tokens]
    for n in range(1, max_words + 1):
        if len(key) >= 3 * n and all(k == key[i % n] for i, k in enumerate(key)):
            return " ".join(re.sub(r"[^\w']+$", "", t) for t in tokens[:n]) + "."
    return ""


def _collapse_repeats(transcript: Transcript, speech_s: float, min_word_s: float) -> Transcript:
    """``transcript`` with a word said again straight after itself kept once ("Four. Four." -> "Four.") when the
    clip's ``speech_s`` seconds of speech-loud sound are too few for its words (``min_word_s`` each)."""
    words = transcript.text.split()
    if len(words) < 2 or speech_s >= min_word_s * len(words):
        return transcript
    key = [re.sub(r"\W", "", w.lower()) for w in words]
    kept = [i for i in range(len(words)) if i == 0 or key[i] != key[i - 1]]
    if len(kept) == len(words):
        return transcript
    # Each kept word ends as the last of its run did ("Seven, seven." -> "Seven.").
    ends = [*(k - 1 for k in kept[1:]), len(words) - 1]
    texts = [re.sub(r"\W+$", "", words[i]) + re.sub(r"^.*?(\W*)$", r"\1", words[j])
             for i, j in zip(kept, ends, strict=True)]
    heard = transcript.words
    if len(heard) == len(words):
        heard = tuple(replace(heard[i], text=(" " if n else "") + t) for n, (i, t) in enumerate(zip(kept, texts, strict=True)))
    return replace(transcript, text=" ".join(texts), words=heard)


def is_non_speech(text: str) -> bool:
    """True for an empty transcript or one Whisper typically hallucinates from noise."""
    return bool(_NON_SPEECH.match(text.strip()))


def compression_ratio(text: str) -> float:
    """How well the text compresses (zlib), as Whisper measures repetition; 0 for empty text."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class Transcript:
    """What the recogniser made of a caller's speech: the text ("" if rejected), how sure it is (0-1), and
    if the audio was rejected, why: "no speech", "unsure", "repetitive", "prompt echo", "language de"."""

    text: str
    confidence: float
    rejected: str | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    language: str | None = None
    # Other readings from a second, beam-search pass when the first was unsure (``models.stt.second_pass_below``):
    # the greedy text first, then the beam's n-best, without repeats. Empty when there was no second pass.
    alternatives: tuple[Hypothesis, ...] = ()
    # The words the decoder produced, kept when they were rejected too (for traces and for measuring the rules).
    decoded: str = ""
    # Why the first reading was rejected when a second look let words through (Recovery's decode, or the language
    # check's decode in the other language); None otherwise.
    recovered_from: str | None = None
    # Each decoded word with the decoder's probability of it (Whisper's word split); empty when rejected or unknown.
    words: tuple[HeardWord, ...] = ()
    # The second recogniser whose reading this is (models.stt.second_opinion, e.g. "tiny.en"); None: the first's.
    heard_by: str | None = None

    @property
    def heard_speech(self) -> bool:
        """Rejected for what it said rather than for being silence or noise: the caller spoke, unclearly."""
        return self.rejected is not None and self.rejected != "no speech"

    @property
    def foreign_reading(self) -> str:
        """The words decoded in the bot's language when the language rule alone rejected them ("language th"),
        for the dialog to offer back as a question; "" otherwise."""
        return self.decoded if (self.rejected or "").startswith("language ") else ""


_PUNCTUATION = frozenset(string.punctuation)


def token_log_probs(ids: Sequence[int], logits: Sequence[Any]) -> list[float]:
    """The decoder's log probability of each token of ``ids``: ``logits`` holds its raw scores over the vocabulary
    at each step (``generate(return_logits_vocab=True)``: suppressed tokens at -inf), normalised here."""
    out: list[float] = []
    for tid, row in zip(ids, logits, strict=False):
        z = np.asarray(row, dtype=np.float64).reshape(-1)
        top = float(z.max())
        out.append(float(z[tid]) - top - math.log(float(np.sum(np.exp(z - top)))))
    return out


def heard_words(tokenizer: Any, ids: Sequence[int], logits: Sequence[Any]) -> tuple[HeardWord, ...]:
    """The decoded token ``ids`` as words, each with the mean probability of its tokens (:func:`token_log_probs` of
    ``logits``). Words are Whisper's (``tokenizer.split_to_word_tokens``: a new word at a space); punctuation joins
    the word before and does not count towards its probability. The words joined give the decoded text; none when
    ``logits`` holds no scores (CTranslate2 returns them empty for a beam search)."""
    try:
        log_probs = token_log_probs(ids, logits)
    except ValueError:  # a beam search's logits are views of no data
        return ()
    words: list[list[Any]] = []  # [text, token log probabilities]
    pos = 0
    for text, tokens in zip(*tokenizer.split_to_word_tokens(list(ids)), strict=True):
        lps = log_probs[pos:pos + len(tokens)]
        pos += len(tokens)
        if not text.strip():
            continue
        if words and set(text.strip()) <= _PUNCTUATION:
            words[-1][0] += text
        else:
            words.append([text, [] if set(text.strip()) <= _PUNCTUATION else lps])
    out = [HeardWord(text, round(float(np.mean(np.exp(lps))), 4) if lps else 1.0) for text, lps in words]
    if out:
        out[0] = replace(out[0], text=out[0].text.lstrip())
    return tuple(out)


def transcript_confidence(avg_logprob: float, no_speech_prob: float, ratio: float) -> float:
    """0-1: the mean token probability, discounted by the chance that there was no speech at all and
    halved for a repetitive decode."""
    confidence = math.exp(min(0.0, avg_logprob)) * (1.0 - no_speech_prob)
    if ratio > COMPRESSION_RATIO:
        confidence *= 0.5
    return round(max(0.0, min(1.0, confidence)), 4)


@dataclass(frozen=True)
class RejectionRules:
    """The thresholds of :func:`judge` (defaults: the module's constants)."""

    no_speech_prob: float = NO_SPEECH_PROB
    logprob_no_speech: float = LOGPROB_NO_SPEECH
    logprob_guess: float = LOGPROB_GUESS
    min_confidence: float = MIN_CONFIDENCE
    logprob_foreign: float = LOGPROB_FOREIGN


@dataclass(frozen=True)
class LanguageRules:
    """When Whisper's language guesses make a clip sound foreign (:func:`judge` then rejects it if it also decodes
    unsurely in the bot's language). A clip longer than :data:`SHORT_CLIP_S`: another language guessed at
    ``top_prob`` or more. A short one (a word or two, where the guess is often wrong for English): another language
    at ``short_top_prob`` or more and the bot's language below ``short_english_below``, with a decode less sure than
    ``short_logprob_below``."""

    top_prob: float = FOREIGN_LANGUAGE_PROB
    short_top_prob: float = SHORT_FOREIGN_PROB
    short_english_below: float = SHORT_OWN_LANGUAGE_BELOW
    short_logprob_below: float = 0.0


def sounds_foreign(
    guesses: Sequence[tuple[str, float]], language: str, short: bool,
    rules: LanguageRules = LanguageRules(),  # noqa: B008 -- frozen, so one shared default is safe
) -> bool:
    """Whether Whisper's language ``guesses`` ((language, probability), likeliest first) make a clip sound like
    another language than the bot's ``language``, by ``rules``."""
    if not guesses or guesses[0][0] == language:
        return False
    if not short:
        return guesses[0][1] >= rules.top_prob
    own = next((p for lang, p in guesses if lang == language), 0.0)
    return guesses[0][1] >= rules.short_top_prob and own < rules.short_english_below


def judge(
    text: str, avg_logprob: float, no_speech_prob: float, language: str | None = None, foreign: bool = False,
    rules: RejectionRules = RejectionRules(),  # noqa: B008 -- frozen, so one shared default is safe
    prompt: str = "", answers: str = "",
) -> Transcript:
    """The decoded ``text`` as a :class:`Transcript`, or rejected: Whisper's no-speech rule, a repetitive or
    guessed decode, one of Whisper's usual inventions on noise ("[BLANK_AUDIO]", a lone "you"), a decode that
    echoes the domain part of its ``prompt`` or the example ``answers`` it ends with (:func:`echoes_prompt`), or speech that sounds ``foreign`` (another
    language is likelier) and decodes unsurely in the bot's language."""
    ratio = compression_ratio(text)
    confidence = transcript_confidence(avg_logprob, no_speech_prob, ratio)
    measures = {"avg_logprob": round(avg_logprob, 4), "no_speech_prob": round(no_speech_prob, 4),
                "compression_ratio": round(ratio, 3), "language": language, "decoded": text}
    rejected = None
    if (no_speech_prob > rules.no_speech_prob and avg_logprob < rules.logprob_no_speech) or is_non_speech(text):
        rejected = "no speech"
    elif ratio > COMPRESSION_RATIO or _looped(text):
        rejected = "repetitive"
    elif (prompt or answers) and echoes_prompt(text, prompt, answers):
        rejected = "prompt echo"
    elif avg_logprob < rules.logprob_guess or confidence < rules.min_confidence:
        rejected = "unsure"
    elif foreign and avg_logprob < rules.logprob_foreign:
        rejected = f"language {language}"
    if rejected is not None:
        return Transcript("", 0.0, rejected=rejected, **measures)  # type: ignore[arg-type]
    return Transcript(text, confidence, **measures)  # type: ignore[arg-type]


LANGUAGE_RULES = LanguageRules()


def rejection_rules(short: bool) -> RejectionRules:
    """The rules :func:`judge` applies to a clip, short (:data:`SHORT_CLIP_S` or less) or not."""
    return RejectionRules(logprob_foreign=LANGUAGE_RULES.short_logprob_below) if short else RejectionRules()


@dataclass(frozen=True)
class Speech:
    """Synthesised mono PCM16 audio."""

    audio: bytes
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / self.sample_rate


class SharedModels:
    """Models and pool loaded once per process; ``transcribe`` and ``synthesize`` are safe from any call."""

    def __init__(
        self, settings: Settings, whisper: WhisperModel, voice: PiperVoice, bias: SpeechBias | None = None,
        short: ShortClipDecoding | None = None, recovery: Recovery | None = None,
        second_opinion: SharedModels | None = None,
    ):
        self.settings = settings
        # Another recogniser (models.stt.second_opinion) with the same prompts and rules: it reads what the first
        # rejects (wants_second_opinion). Its own thread pool is never used.
        self.second_opinion = second_opinion
        self.bias = bias or SpeechBias()
        stt = settings.models.stt
        self.short = short or ShortClipDecoding(
            stt.short_clip_padding, stt.short_clip_padding, beam_size=stt.short_clip_beam,
            alternative_prompt={"off": None, "none": "", "answers": SHORT_ANSWERS}[stt.short_clip_alternative],
            loop_beam=stt.short_clip_loop_beam)
        self.recovery = recovery or (RECOVERY if stt.recover_rejected else None)
        self.whisper = whisper
        self.voice = voice
        self.executor = ThreadPoolExecutor(
            max_workers=settings.models.workers, thread_name_prefix="voicebot-infer"
        )
        self.tts_sample_rate: int = int(voice.config.sample_rate)
        from faster_whisper.tokenizer import Tokenizer

        multilingual = whisper.model.is_multilingual
        self._tokenizer = Tokenizer(
            whisper.hf_tokenizer,
            multilingual,
            task="transcribe" if multilingual else None,
            language=settings.models.stt.language if multilingual else None,
        )
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        # Fixed prompts (greeting, "are you still there?") repeat on every call: keep their audio.
        self._tts_cache: OrderedDict[tuple[str, float], bytes] = OrderedDict()
        self._tts_cache_size = 256
        self._tts_cache_lock = threading.Lock()
        # The fixed prompts of warm_up, never evicted: the apologies must play even when Piper fails.
        self._pinned: dict[tuple[str, float], bytes] = {}
        # One Piper session is not documented thread-safe; serialise synthesis (it is 15x real time).
        self._tts_lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings) -> SharedModels:
        """Load both models (raises :class:`voicebot.models.ModelError` naming a bad path) and the biasing
        prompts of the configured domain."""
        from dialogs.domain.loader import load_domain

        bias = SpeechBias.from_domain(load_domain(settings.resolve(settings.domain.path)))
        voice = load_piper(settings)
        second = None
        name = settings.models.stt.second_opinion.strip()
        if name not in ("", "none", whisper_source(settings).name):
            other = settings.model_copy(deep=True)
            other.models.stt.model, other.models.stt.second_opinion = name, "none"
            second = cls(other, load_whisper(settings, name), voice, bias)
            second.close()
        return cls(settings, load_whisper(settings), voice, bias, second_opinion=second)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking ``func(*args)`` in the shared bounded pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    # STT

    def transcribe(self, pcm16: bytes) -> str:
        """The text of :meth:`recognise` ("" for audio it rejects)."""
        return self.recognise(pcm16).text

    def recognise(self, pcm16: bytes, expects: str | None = None) -> Transcript:
        """Transcribe 16 kHz mono PCM16 speech (blocking), biased towards the domain's words and, if
        ``expects`` names the kind of answer the bot asked for ("order_number", "yes_no" ...), towards it.

        Audio that is not a request in the bot's language (noise, music, a cough, another language, an
        unsure or looping decode) gives an empty text and the reason in ``rejected``.
        """
        started = time.perf_counter()
        gate = self.settings.models.stt.voice_gate
        if gate and not holds_voice(pcm16, gate):
            # Not one window that could be a voice: Whisper is not asked (it reads tones as "Okay." at times).
            metrics.STT_SECONDS.observe(time.perf_counter() - started)
            return Transcript("", 0.0, rejected="no speech")
        result = self._read(pcm16, expects)
        if self.second_opinion is not None and wants_second_opinion(result, len(pcm16) / 2 / pcm.SAMPLE_RATE <= SHORT_CLIP_S):
            other = self.second_opinion._read(pcm16, expects)
            if other.rejected is None and (other.avg_logprob or 0.0) >= SECOND_OPINION_LOGPROB:
                result = replace(other, recovered_from=result.rejected,
                                 heard_by=self.second_opinion.settings.models.stt.model)
        metrics.STT_SECONDS.observe(time.perf_counter() - started)
        return result

    def _read(self, pcm16: bytes, expects: str | None) -> Transcript:
        """This model's reading of the clip (:meth:`recognise` without the second opinion)."""
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        seconds = len(audio) / pcm.SAMPLE_RATE
        stt = self.settings.models.stt
        short = seconds <= SHORT_CLIP_S
        beam = self.short.beam_size if short else stt.beam_size
        prompt = self.bias.prompt(expects, short=short) if stt.bias else ""
        if short and (self.short.lead_s or self.short.trail_s):
            audio = np.concatenate([np.zeros(int(self.short.lead_s * pcm.SAMPLE_RATE), np.float32), audio,
                                    np.zeros(int(self.short.trail_s * pcm.SAMPLE_RATE), np.float32)])
            seconds = len(audio) / pcm.SAMPLE_RATE
        if seconds + WINDOW_MARGIN_S > 30.0:
            result = self._transcribe_long(audio, prompt)
        else:
            # Answers to a question are checked by the dialog itself; only open requests get other readings.
            result = self._transcribe_window(audio, seconds, prompt, full=stt.window == "full",
                                             second_pass=expects is None, short=short, beam=beam)
        return result

    def _echo_source(self, prompt: str) -> tuple[str, str]:
        """What a decode after ``prompt`` must not copy (:func:`echoes_prompt`): the domain's heading and words (unless
        the prompt is only example answers), and the example answers ("Yes. No.", digits) it ends with, which a caller
        says in part but not whole; empty when there is no prompt."""
        if not prompt:
            return "", ""
        answers = next((a for a in (*self.bias.answers.values(), SHORT_ANSWERS) if prompt.endswith(a)), "")
        return ("" if prompt == answers else self.bias.prompt()), answers

    def _prompt_tokens(self, prompt: str) -> list[int]:
        if not prompt:
            return self._prompt
        previous = self._tokenizer.encode(" " + prompt.strip())[-(MAX_PROMPT_TOKENS):]
        return [self._tokenizer.sot_prev, *previous, *self._prompt]

    def _transcribe_window(
        self, audio: np.ndarray, seconds: float, prompt: str, full: bool, second_pass: bool = False,
        short: bool = False, beam: int = 1, retry: bool = False,
    ) -> Transcript:
        encoded = self._encode(audio, 30.0 if full else fitted_window_s(seconds))
        tokens = self._prompt_tokens(prompt)
        language: str | None = None
        foreign = False
        if self.whisper.model.is_multilingual:
            # The audio's likeliest language. Alone it is no proof (accented English over G.711 is often
            # taken for Italian or Thai): it rejects only together with an unsure decode in the bot's language.
            guesses = [(token.strip("<|>"), p) for token, p in self.whisper.model.detect_language(encoded)[0]]
            language = guesses[0][0]
            foreign = sounds_foreign(guesses, self.settings.models.stt.language, short, LANGUAGE_RULES)
        # A short clip's two decodes run at once on the model's workers: they take the time of the longer, not the sum.
        pending = self._decode(encoded, tokens, seconds, short, beam, retry)
        alternative = None
        if short and second_pass and self.short.alternative_prompt is not None:  # second_pass: no answer expected
            alternative_tokens = self._prompt_tokens(self.short.alternative_prompt)
            alternative = self._decode(encoded, alternative_tokens, seconds, True, beam, retry)
        result = pending.result()
        alternative_result = alternative.result() if alternative is not None else None
        ids = result.sequences_ids[0]
        text = self._tokenizer.decode(ids).strip()
        # CTranslate2's score is the summed log probability over length; faster-whisper's avg_logprob adds 1.
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        transcript = judge(text, avg_logprob, float(result.no_speech_prob), language, foreign,
                           rejection_rules(short), *self._echo_source(prompt))
        if transcript.rejected is None:
            transcript = replace(transcript, words=heard_words(self._tokenizer, ids, result.logits[0]))
        if alternative_result is not None:
            transcript = self._short_alternative(transcript, alternative_result, language, foreign)
        if transcript.rejected == "repetitive" and not full:
            if short and beam < self.short.loop_beam:
                # A greedy decode that loops often reads right with a beam, for less than the full window costs.
                return self._transcribe_window(audio, seconds, prompt, full=False, second_pass=second_pass,
                                               short=short, beam=self.short.loop_beam)
            # A shortened window can make Whisper repeat itself; the full 30 s window does not.
            return self._transcribe_window(audio, seconds, prompt, full=True, second_pass=second_pass, short=short,
                                           beam=beam, retry=True)
        if recoverable(transcript.rejected) and self.recovery is not None:
            transcript = self._recover(transcript, audio, seconds, encoded, tokens, language, foreign, short)
        elif transcript.rejected == f"language {language}" and self.recovery is not None and not short:
            transcript = self._confirm_language(transcript, encoded, seconds)
        if short and transcript.rejected is None and self.short.min_word_s:
            transcript = _collapse_repeats(transcript, speech_seconds(audio), self.short.min_word_s)
        if transcript.rejected is None and second_pass and transcript.confidence < self.settings.models.stt.second_pass_below:
            return replace(transcript, alternatives=self._alternatives(encoded, tokens, seconds, transcript))
        return transcript

    def _decode(self, encoded: Any, tokens: list[int], seconds: float, short: bool, beam: int, retry: bool = False) -> Any:
        """Start decoding ``encoded`` after ``tokens`` with a beam of ``beam`` on one of the model's workers
        (``models.workers``), as a clip's first reading is decoded (``retry``: as the full-window retry of a looping
        one); the returned handle's ``result()`` waits for it."""
        return self.whisper.model.generate(
            encoded,
            [tokens],
            asynchronous=True,
            beam_size=beam,
            max_length=self._max_length(len(tokens), seconds, short, retry),
            return_scores=True,
            return_no_speech_prob=True,
            return_logits_vocab=True,  # for each word's probability (heard_words)
            suppress_blank=self.short.suppress_blank if short else True,
        )[0]

    def _max_length(self, prompt_tokens: int, seconds: float, short: bool, retry: bool = False) -> int:
        """The decoder's length cap, prompt included: 8 tokens a second plus 16, or a short clip's own cap (its
        full-window ``retry``'s cap first)."""
        if short and retry and self.short.retry_max_tokens:
            return min(448, prompt_tokens + self.short.retry_max_tokens)
        if short and self.short.max_tokens:
            return min(448, prompt_tokens + self.short.max_tokens)
        return min(448, prompt_tokens + int(seconds * 8) + 16)

    def _short_alternative(self, first: Transcript, result: Any, language: str | None, foreign: bool) -> Transcript:
        """A short clip's reading decoded after ``self.short.alternative_prompt`` over the same encoder output
        (``result``, CTranslate2's); the reading the decoder is surer of wins when both pass :func:`judge` and the
        second says only words of its prompt (a digit, a yes or a no: other words it reads are the domain prompt's to
        hear, "refund" read as "Let's go."). A rejection of the first reading stands (the alternative must not turn
        noise into a digit), but for a "no speech" one where both readings are the same lone digit
        (``self.short.digits_agree``): on the own short set (benchmarks/stt_short.py, 9 voices, 540 clips with no
        question asked) it took back 1 digit of 1 ("Two," / "Two."); taking back a yes or a no the same way read 3
        digits as "Yes." or "No." (en-029 "eight", en-wm "nine")."""
        ids = result.sequences_ids[0]
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        if first.rejected == "repetitive" and self.short.loop_agree:
            return self._loop_heard_once(first, result, language, foreign)
        if first.rejected is not None and not (first.rejected == "no speech" and self.short.digits_agree):
            return first
        prompt = self.short.alternative_prompt or ""
        second = judge(self._tokenizer.decode(ids).strip(), avg_logprob, float(result.no_speech_prob), language,
                       foreign, rejection_rules(True), *self._echo_source(prompt))
        if second.rejected is not None or not _within(second.text, prompt):
            return first
        if first.rejected is not None:  # "no speech": taken back only when both readings are the same lone digit
            if not _same_digit(first.decoded, second.text):
                return first
            return replace(second, recovered_from=first.rejected, words=heard_words(self._tokenizer, ids, result.logits[0]))
        if (second.avg_logprob or 0.0) <= (first.avg_logprob or 0.0):
            return first
        return replace(second, words=heard_words(self._tokenizer, ids, result.logits[0]))

    def _loop_heard_once(self, first: Transcript, result: Any, language: str | None, foreign: bool) -> Transcript:
        """A short clip's first reading rejected as "repetitive" (``first``) heard once: when it repeats one word or
        phrase (:func:`_loop_unit`) and the digits-and-yes/no reading (``result``, CTranslate2's; once or looping too)
        says the same words, that unit, judged with the first reading's scores, with the second reading's words and
        their probabilities when it says the unit just so. Else ``first`` (the full window is tried next).
        On the own short set (benchmarks/stt_short.py's clips, 9 voices, 874 short clips) 78 clips looped; this heard
        17 of them once: newly right "42." three times, "six", "Return." six times for "returns" (all rejected or
        wrong after the full window), wrong "Wendy.", "N.", "I'm." (two of them wrong after the full window too),
        WER 58.1 -> 57.4 %, where the full 30 s window cost 1.9 s of CPU a clip (docs/understanding.md)."""
        ids = result.sequences_ids[0]
        alternative = self._tokenizer.decode(ids).strip()
        unit = _loop_unit(first.decoded)
        other = _loop_unit(alternative) or alternative
        if not unit or _words(unit) != _words(other):
            return first
        once = judge(unit, first.avg_logprob or 0.0, first.no_speech_prob or 0.0, language, foreign,
                     rejection_rules(True), *self._echo_source(self.bias.prompt() if self.settings.models.stt.bias else ""))
        if once.rejected is not None:
            return first
        words = heard_words(self._tokenizer, ids, result.logits[0]) if alternative == unit else ()
        return replace(once, recovered_from=first.rejected, words=words)

    def _alternatives(self, encoded: Any, tokens: list[int], seconds: float, first: Transcript) -> tuple[Hypothesis, ...]:
        """The first reading, then the n-best of a beam search over the same encoder output (only the decoder
        runs again), each with its mean token log probability; readings the judge would reject are left out."""
        result = self.whisper.model.generate(
            encoded,
            [tokens],
            beam_size=SECOND_PASS_BEAM,
            num_hypotheses=SECOND_PASS_BEAM,
            max_length=min(448, len(tokens) + int(seconds * 8) + 16),
            return_scores=True,
            suppress_blank=True,
        )[0]
        hypotheses = [Hypothesis(first.text, first.avg_logprob or 0.0)]
        for ids, score in zip(result.sequences_ids, result.scores, strict=True):
            text = self._tokenizer.decode(ids).strip()
            avg_logprob = float(score) * len(ids) / (len(ids) + 1)
            if judge(text, avg_logprob, first.no_speech_prob or 0.0,
                     prompt=self._echo_source(self.bias.prompt() if self.settings.models.stt.bias else "")[0]
                     ).rejected is None and all(
                    h.text != text for h in hypotheses):
                hypotheses.append(Hypothesis(text, round(avg_logprob, 4)))
        return tuple(hypotheses)

    def _encode(self, audio: np.ndarray, window_s: float) -> Any:
        import ctranslate2

        frames = int(round(window_s * 100))  # 10 ms mel frames
        features = self.whisper.feature_extractor(audio, padding=max(0, frames * 160 - len(audio)))[:, :frames]
        return self.whisper.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32)), to_cpu=False)

    def _recover(
        self, first: Transcript, audio: np.ndarray, seconds: float, encoded: Any, tokens: list[int],
        language: str | None, foreign: bool, short: bool,
    ) -> Transcript:
        """A second reading of a clip whose first one was rejected as "unsure", "no speech" or "prompt echo", decoded as
        ``self.recovery`` says, if the clip holds speech-loud sound and :func:`judge` accepts the new reading on
        its own (with the first pass's language guess); else ``first``."""
        how = self.recovery
        if how is None or speech_seconds(audio) < MIN_SPEECH_S:
            return first
        if how.padding_s:
            pad = np.zeros(int(how.padding_s * pcm.SAMPLE_RATE), np.float32)
            audio = np.concatenate([pad, audio, pad])
            seconds = len(audio) / pcm.SAMPLE_RATE
        if how.window == "full":
            encoded = self._encode(audio, 30.0)
        elif how.padding_s or how.window == "fit":
            encoded = self._encode(audio, fitted_window_s(seconds))
        if not how.prompt:
            tokens = self._prompt_tokens("")
        result = self.whisper.model.generate(
            encoded,
            [tokens],
            beam_size=how.beam_size,
            max_length=min(448, len(tokens) + int(seconds * 8) + 16),
            return_scores=True,
            return_no_speech_prob=True,
            return_logits_vocab=True,  # for each word's probability (heard_words)
            suppress_blank=True,
        )[0]
        ids = result.sequences_ids[0]
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        second = judge(self._tokenizer.decode(ids).strip(), avg_logprob, float(result.no_speech_prob), language,
                       foreign, rejection_rules(short), *self._echo_source(self.bias.prompt() if how.prompt else ""))
        if second.rejected is not None:
            return first
        return replace(second, recovered_from=first.rejected, words=heard_words(self._tokenizer, ids, result.logits[0]))

    def _confirm_language(self, first: Transcript, encoded: Any, seconds: float) -> Transcript:
        """A clip rejected as another language (``first``) decoded in that language and in the bot's, both greedy
        without a prompt. The rejection stands unless the other language's reading is more than
        :data:`LANGUAGE_MARGIN` less sure than the bot's; then the first reading (the other rules passed it) stands."""
        from faster_whisper.tokenizer import Tokenizer

        other = Tokenizer(self.whisper.hf_tokenizer, True, task="transcribe", language=first.language)
        other_pending = self._greedy(encoded, [*other.sot_sequence, other.no_timestamps], seconds)
        own_logprob = _mean_logprob(self._greedy(encoded, self._prompt, seconds).result())
        other_logprob = _mean_logprob(other_pending.result())
        if other_logprob >= own_logprob - LANGUAGE_MARGIN:
            return first
        second = judge(first.decoded, first.avg_logprob or 0.0, first.no_speech_prob or 0.0, first.language, False)
        return first if second.rejected is not None else replace(second, recovered_from=first.rejected)

    def _greedy(self, encoded: Any, tokens: list[int], seconds: float) -> Any:
        """Start a greedy decode after ``tokens`` (its ``result()`` waits for it)."""
        return self.whisper.model.generate(
            encoded, [tokens], asynchronous=True, beam_size=1, max_length=min(448, len(tokens) + int(seconds * 8) + 16),
            return_scores=True, suppress_blank=True,
        )[0]

    def _transcribe_long(self, audio: np.ndarray, prompt: str) -> Transcript:
        stt = self.settings.models.stt
        segments, info = self.whisper.transcribe(
            audio,
            language=stt.language if self.whisper.model.is_multilingual else None,
            beam_size=stt.beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
        )
        parts = list(segments)
        text = " ".join(seg.text.strip() for seg in parts).strip()
        if not parts:
            return Transcript("", 0.0, rejected="no speech")
        weights = [max(1, len(seg.tokens)) for seg in parts]
        avg_logprob = float(np.average([seg.avg_logprob for seg in parts], weights=weights))
        no_speech = float(min(seg.no_speech_prob for seg in parts))
        return judge(text, avg_logprob, no_speech, None, False, RejectionRules(), *self._echo_source(prompt))

    # TTS

    def synthesize(self, sentence: str, length_scale: float | None = None) -> Speech:
        """Synthesise one sentence (blocking), leading silence trimmed so the first audio is speech."""
        from piper import SynthesisConfig

        scale = length_scale if length_scale is not None else self.settings.models.tts.length_scale
        key = (sentence, scale)
        with self._tts_cache_lock:
            pinned = self._pinned.get(key)
            if pinned is not None:
                return Speech(pinned, self.tts_sample_rate)
            cached = self._tts_cache.get(key)
            if cached is not None:
                self._tts_cache.move_to_end(key)
                return Speech(cached, self.tts_sample_rate)
        started = time.perf_counter()
        with self._tts_lock:
            chunks = list(self.voice.synthesize(sentence, syn_config=SynthesisConfig(length_scale=scale)))
        if chunks:
            samples = np.concatenate([c.audio_int16_array for c in chunks])
        else:
            samples = np.zeros(0, dtype=np.int16)
        audio = _trim_leading_silence(samples).tobytes()
        metrics.TTS_SECONDS.observe(time.perf_counter() - started)
        with self._tts_cache_lock:
            self._tts_cache[key] = audio
            if len(self._tts_cache) > self._tts_cache_size:
                self._tts_cache.popitem(last=False)
        return Speech(audio, self.tts_sample_rate)

    def warm_up(self, sentences: list[str]) -> None:
        """Run the models once in every pool thread (the first inference in a thread is several times
        slower) and keep the audio of ``sentences`` for the life of the process."""
        workers = self.settings.models.workers
        barrier = threading.Barrier(workers)
        # Real speech, not silence: decoding a sentence also sizes CTranslate2's decoder buffers.
        sample = self.synthesize("Hello, I would like to check the status of my order, please.")
        speech = pcm.resample(sample.audio, sample.sample_rate)

        def once() -> None:
            barrier.wait(timeout=60)  # one task per thread: no thread takes two while another idles
            self.transcribe(speech)
            with self._tts_lock:
                list(self.voice.synthesize("Hello."))

        for future in [self.executor.submit(once) for _ in range(workers)]:
            future.result()
        scale = self.settings.models.tts.length_scale
        for s in sentences:
            for sentence in speech_chunks(s):
                self._pinned[(sentence, scale)] = self.synthesize(sentence).audio

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.second_opinion is not None:
            self.second_opinion.close()


def _mean_logprob(result: Any) -> float:
    """The mean token log probability of CTranslate2's decode ``result`` (faster-whisper's avg_logprob)."""
    ids = result.sequences_ids[0]
    return float(result.scores[0]) * len(ids) / (len(ids) + 1)


def _trim_leading_silence(samples: np.ndarray, threshold: int = 300, keep: int = 220) -> np.ndarray:
    """Drop Piper's leading silence (about 70 ms) but keep ``keep`` samples before the first sound."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return samples
    return samples[max(0, int(loud[0]) - keep) :]
