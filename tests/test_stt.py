"""Speech recognition that fits the call: biasing prompts, transcript confidence, and bad input (noise, tones,
a cough, another language) rejected instead of invented, through the model and through a call's pipeline.

Audio is generated at test time: espeak-ng speech (English, German, French) and sox noise, tones and bursts.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audio import pcm
from audio.evaluation import normalise_transcript, word_error_rate
from audio.speech import espeak_ng
from dialogs.domain import load_domain
from dialogs.nlu import NLU
from dialogs.nlu.heard import HeardWord
from voicebot.config import Settings
from voicebot.phone_speech import phone_line
from voicebot.pipeline.shared import (
    LanguageRules,
    RejectionRules,
    SharedModels,
    ShortClipDecoding,
    Transcript,
    echoes_prompt,
    fitted_window_s,
    heard_words,
    judge,
    sounds_foreign,
    speech_seconds,
    token_log_probs,
    transcript_confidence,
)
from voicebot.pipeline.stt_bias import OPENERS, SHORT_ANSWERS, SpeechBias, domain_vocabulary
from voicebot.stt_evaluation import NOTHING, acted_on, dialog_reading, to_pcm16


def spoken(text: str, voice: str = "en-us") -> bytes:
    samples, _ = espeak_ng(text, voice=voice, sample_rate=pcm.SAMPLE_RATE)
    return to_pcm16(samples)


def sox(*effect: str) -> bytes:
    """Audio made by sox (``sox -n ... synth ...``), 16 kHz mono PCM16."""
    if shutil.which("sox") is None:
        pytest.fail("sox is not installed (Debian: apt-get install sox)")
    out = subprocess.run(
        ["sox", "-n", "-r", str(pcm.SAMPLE_RATE), "-b", "16", "-c", "1", "-e", "signed", "-t", "raw", "-", *effect],
        capture_output=True, check=True,
    )
    return out.stdout


BAD_INPUT = {
    "noise": lambda: sox("synth", "3", "pinknoise", "vol", "0.3"),
    "tones": lambda: sox("synth", "0.4", "sine", "440", ":", "synth", "0.4", "sine", "660", ":",
                         "synth", "0.4", "sine", "550", ":", "synth", "0.6", "sine", "880"),
    "music on hold": lambda: sox("synth", "4", "pluck", "C4", "pluck", "E4", "pluck", "G4", "tremolo", "3", "vol", "0.5"),
    "cough": lambda: sox("synth", "0.25", "brownnoise", "fade", "q", "0.01", "0.25", "0.15", "vol", "0.8", ":",
                         "synth", "0.3", "whitenoise", "vol", "0"),
    # Whisper hears a breath or a sigh as "Thank you." or "No." at a no-speech probability of about 0.4.
    "breath": lambda: sox("synth", "0.9", "pinknoise", "lowpass", "1500", "fade", "t", "0.3", "0.9", "0.4", "vol", "0.2"),
    "sigh": lambda: sox("synth", "1.2", "brownnoise", "highpass", "300", "fade", "t", "0.2", "1.2", "0.8", "vol", "0.4"),
    "german": lambda: spoken("Guten Tag, ich möchte meine Bestellung stornieren und mein Geld zurück haben.", "de"),
    "french": lambda: spoken("Bonjour, je voudrais annuler ma commande, s'il vous plaît.", "fr"),
}


@pytest.fixture(scope="module")
def shared():
    """The product's STT path with its default model and decoding."""
    models = SharedModels.load(Settings())
    yield models
    models.close()


@pytest.fixture(scope="module")
def no_second_chance(shared):
    """The same loaded models with ``models.stt.recover_rejected: false`` (the first reading's verdict stands)."""
    settings = Settings()
    settings.models.stt.recover_rejected = False
    models = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    models.close()  # its own thread pool is not used: recognise() runs in the caller's thread
    return models


# ----------------------------------------------------------------------------- biasing prompts


def test_the_domain_vocabulary_holds_its_request_words_not_its_dialog_acts():
    words = domain_vocabulary(load_domain())
    for expected in ("order", "refund" if "refund" in words else "return", "address", "password", "subscription"):
        assert expected in words, words
    assert not {"hello", "bye", "yes", "thanks"} & set(words)
    assert len(words) == len(set(words)) <= 40


def test_the_prompt_adds_what_the_bot_asked_for():
    bias = SpeechBias.from_domain(load_domain())
    open_prompt = bias.prompt()
    assert open_prompt.startswith(f"Acme Online Store customer service. {OPENERS} Order,") and "subscription" in open_prompt
    # After a question: the domain's words without the greetings, then an example answer.
    answer = bias.prompt("order_number")
    assert answer.startswith("Acme Online Store customer service: order,") and OPENERS not in answer
    assert "45281" in answer and "subscription" in answer
    assert "Yes" in bias.prompt("yes_no") and "No" in bias.prompt("yes_no")
    assert bias.prompt("some_new_kind") == open_prompt  # an unknown kind of answer adds nothing
    assert SpeechBias().prompt("yes_no") == SpeechBias().answers["yes_no"]
    assert SpeechBias().prompt() == ""  # a domain without example words: no prompt, not a lone greeting


def test_a_short_clip_with_no_question_also_gets_digits_and_yes_no():
    """A word or two after an open question may be a digit or a yes as well as a domain word ("four", not "code")."""
    bias = SpeechBias.from_domain(load_domain())
    assert bias.prompt(short=True) == f"{bias.prompt()} {SHORT_ANSWERS}"
    assert "four" in SHORT_ANSWERS and "Yes" in SHORT_ANSWERS
    assert SpeechBias().prompt(short=True) == SHORT_ANSWERS
    # After a question the expected answer already says what is likely: kept with the domain's words.
    assert bias.prompt("order_number", short=True) == bias.prompt("order_number")


# ----------------------------------------------------------------------------- confidence and the gate


def test_confidence_falls_with_doubt_and_stays_in_0_1():
    sure = transcript_confidence(-0.1, 0.01, 1.0)
    unsure = transcript_confidence(-1.2, 0.01, 1.0)
    silent = transcript_confidence(-0.1, 0.9, 1.0)
    looping = transcript_confidence(-0.1, 0.01, 3.0)
    assert 0.85 < sure <= 1.0
    assert 0.0 <= unsure < 0.35 and silent < 0.15 and looping < sure / 1.9


def test_the_gate_rejects_what_whisper_invents():
    assert judge("Thank you.", -1.5, 0.8, None).rejected == "no speech"  # Whisper's own no-speech rule
    assert judge("you", -0.2, 0.1, None).rejected == "no speech"  # a lone "you" from breath
    assert judge("[BLANK_AUDIO]", -0.2, 0.1, None).rejected == "no speech"
    assert judge("order order order order order order order order order", -0.2, 0.1, None).rejected == "repetitive"
    assert judge("gotan talk it must have been", -1.9, 0.2, None).rejected == "unsure"
    assert judge("Thank you.", -0.8, 0.41, None).rejected == "no speech"  # a breath, by the measured rule
    kept = judge("Where is my order?", -0.2, 0.05, None)
    assert kept == Transcript("Where is my order?", kept.confidence, None, -0.2, 0.05, kept.compression_ratio, None,
                              decoded="Where is my order?")
    assert kept.confidence > 0.7


def test_an_unsure_english_decode_is_kept_for_the_dialog_to_confirm():
    """Rules measured on benchmarks/stt_rejection.py: a decode at confidence 0.1-0.2 is often English the caller said
    (a lone "nine" heard at mean log probability -1.49, no-speech probability 0.14); it goes on with its low confidence, and the dialog confirms."""
    unsure = judge("nine", -1.49, 0.14, None)
    assert unsure.rejected is None and 0.1 <= unsure.confidence < 0.2
    assert judge("nine", -1.7, 0.1, None).rejected == "unsure"  # below -1.6 the words are a guess
    # A rejected decode keeps its words for the trace; the text stays empty.
    rejected = judge("Thank you.", -0.8, 0.41, None)
    assert rejected.text == "" and rejected.decoded == "Thank you."
    # Whisper's own no-speech rule (0.6 / -1.0), as the rules of a caller who wants it back.
    whisper = RejectionRules(no_speech_prob=0.6, logprob_no_speech=-1.0)
    assert judge("Thank you.", -0.8, 0.41, None, rules=whisper).rejected is None


def test_a_decode_that_copies_the_prompt_is_rejected_as_an_echo():
    """Whisper sometimes reproduces its prompt instead of the audio (3 of 80 own generic clips, 2 of 612 spoken dev
    clips came out as "Acme Online Store customer service,"). Only the domain part counts: a caller's own words that
    share a word or two with it, or digits and a yes the short-clip prompt also lists, are no echo."""
    domain = SpeechBias.from_domain(load_domain()).prompt()
    assert echoes_prompt("Acme Online Store customer service,", domain)
    assert echoes_prompt("Is this Acme online store customer service?", domain)
    assert echoes_prompt("order, return, address", domain)  # the word list copied
    for said in ("can I speak to customer service", "I want to return my order", "One, two, three.", "Yes.",
                 "Hi, where's my delivery?", "Hello, thanks."):
        assert not echoes_prompt(said, domain), said
    assert judge("Acme Online Store customer service,", -0.3, 0.01, None, prompt=domain).rejected == "prompt echo"
    assert judge("Acme Online Store customer service,", -0.3, 0.01, None).rejected is None  # no prompt, no echo
    assert judge("can I speak to customer service", -0.3, 0.01, None, prompt=domain).rejected is None


def test_a_decode_that_copies_the_example_answers_of_its_prompt_is_an_echo():
    """German speech read "One, two, three, four, five, six, seven, eight, nine. Yes." after the short-clip prompt:
    its example answers copied whole. The answers count in runs of ECHO_ANSWER_RUN words, so the part of them a caller
    says ("one two three four", "yes, that's right", a digit run of 6 in an order number) is no echo."""
    from voicebot.pipeline.stt_bias import EXPECTED_ANSWERS, SHORT_ANSWERS

    echo = "One, two, three, four, five, six, seven, eight, nine. Yes."
    assert echoes_prompt(echo, "", SHORT_ANSWERS) and echoes_prompt("0, 1, 2, 3, 4, 5, 6, 7.", "", SHORT_ANSWERS)
    assert not echoes_prompt(echo, SpeechBias.from_domain(load_domain()).prompt())  # the domain part alone: missed
    assert echoes_prompt("Yes. No. Yes, that's right. No, that's wrong.", "", EXPECTED_ANSWERS["yes_no"])
    for said in ("One, two, three, four.", "Yes, that's right.", "No.", "my order four five six seven eight nine has not "
                 "arrived", "My order number is 45281.", "Zero."):
        assert not echoes_prompt(said, "", SHORT_ANSWERS + " " + EXPECTED_ANSWERS["order_number"]), said
    assert judge(echo, -0.46, 0.24, None, answers=SHORT_ANSWERS).rejected == "prompt echo"
    assert judge("One, two, three, four.", -0.3, 0.01, None, answers=SHORT_ANSWERS).rejected is None


def test_the_echo_source_is_the_prompt_the_decode_was_given(shared):
    """Each decode is checked against its own prompt: the domain part and the example answers it ends with; the
    short clip's second decode (after the answers alone) against those answers."""
    from voicebot.pipeline.stt_bias import EXPECTED_ANSWERS, SHORT_ANSWERS

    domain = shared.bias.prompt()
    assert shared._echo_source("") == ("", "")
    assert shared._echo_source(domain) == (domain, "")
    assert shared._echo_source(shared.bias.prompt(short=True)) == (domain, SHORT_ANSWERS)
    assert shared._echo_source(shared.bias.prompt("yes_no")) == (domain, EXPECTED_ANSWERS["yes_no"])
    assert shared._echo_source(SHORT_ANSWERS) == ("", SHORT_ANSWERS)
    assert shared.bias.example_answers() == "" and shared.bias.example_answers(short=True) == SHORT_ANSWERS
    assert shared.bias.example_answers("yes_no", short=True) == EXPECTED_ANSWERS["yes_no"]


def test_a_reading_that_copies_the_prompt_is_decoded_again_without_it(shared, no_second_chance):
    """en-sc over the phone: "has my order been sent out yet" came out as the prompt's heading, accepted, at a sure
    log probability. Now that reading is rejected as an echo; the second decode (no prompt, same encoder output)
    replaces it when the judge accepts it, and the heading is never the transcript."""
    from voicebot.phone_speech import VOICES, synthesize

    audio = phone_line(synthesize("has my order been sent out yet", VOICES["en-sc"]))
    domain = shared.bias.prompt()
    first = no_second_chance.recognise(audio)
    # Which words of the heading it copies depends on the CPU's arithmetic ("Acme Online Store customer service," on
    # one machine, "Acme Online Store," on another): any copied run of the prompt is an echo.
    assert first.rejected == "prompt echo" and echoes_prompt(first.decoded, domain), first
    again = shared.recognise(audio)
    assert not echoes_prompt(again.text, domain), again
    assert again.recovered_from == "prompt echo" or again.rejected == "prompt echo", again


# ----------------------------------------------------------------------------- real audio


def test_wer_compares_words_as_whisper_reports_them():
    # Whisper's English normaliser: spelling, numbers, titles and hesitations do not count as errors.
    assert word_error_rate([("The colour of Mr Smith's car was grey", "the color of mister smith's car was gray")]) == 0
    assert word_error_rate([("he paid forty two pounds", "He paid 42 pounds."), ("um my order is 45281", "My order is four five two eight one.")]) == 0
    assert normalise_transcript("Zero.") == normalise_transcript("0") == ["0"]
    assert word_error_rate([("where is my order", "where is my border")]) == 0.25
    # Brackets in a reference are punctuation of what was said (LJSpeech); in Whisper's output they mark no speech.
    assert word_error_rate([("actually dated (which was printed in fourteen sixty-two)",
                             "Actually dated, which was printed in 1462.")]) == 0
    assert word_error_rate([("hello there", "(laughs) Hello there.")]) == 0


def test_the_bad_input_benchmarks_count_what_the_dialog_would_act_on():
    # stt_rejection.py, stt_short_foreign.py and stt_second_opinion.py all count a clip "acted on" this one way.
    nlu = NLU.train(load_domain())
    assert dialog_reading(nlu, "four five two eight one", "order_number") == "45281"
    assert dialog_reading(nlu, "Where is my order?", "order_number") == "request"
    assert [dialog_reading(nlu, t, "yes_no") for t in ("yes please", "no")] == ["yes", "no"]
    assert [dialog_reading(nlu, t) for t in ("no", "yes", "thank you")] == [NOTHING] * 3
    assert acted_on(nlu, "I'd like to cancel my order") and not acted_on(nlu, "thank you")


def test_a_request_over_the_phone_is_heard_with_confidence(shared):
    said = "I would like to check the status of my order."
    heard = shared.recognise(phone_line(spoken(said)))
    assert heard.rejected is None
    # espeak-ng over G.711 is harder than a person: the words that carry the request must be there.
    assert word_error_rate([(said, heard.text)]) <= 0.4, heard.text
    assert "status" in heard.text.lower() and "order" in heard.text.lower(), heard.text
    assert 0.4 < heard.confidence <= 1.0


def test_each_word_comes_with_the_decoders_probability_of_it(shared):
    said = "Where is my order, and I want a refund for the charger."
    audio = np.frombuffer(phone_line(spoken(said)), dtype=np.int16).astype(np.float32) / 32768.0
    seconds = len(audio) / pcm.SAMPLE_RATE
    encoded = shared._encode(audio, fitted_window_s(seconds))
    tokens = shared._prompt_tokens(shared.bias.prompt(None))
    result = shared.whisper.model.generate(encoded, [tokens], beam_size=1, return_scores=True,
                                           return_logits_vocab=True)[0]
    ids = result.sequences_ids[0]
    logits = result.logits[0]
    assert len(logits) == len(ids) + 1  # the last step decodes the end of text
    # The log probabilities of the tokens and the end sum to CTranslate2's own score (that sum over len(ids)).
    total = sum(token_log_probs([*ids, shared._tokenizer.eot], logits))
    assert total == pytest.approx(float(result.scores[0]) * len(ids), abs=2e-3)

    words = heard_words(shared._tokenizer, ids, logits)
    assert "".join(w.text for w in words) == shared._tokenizer.decode(ids).strip()
    assert all(0.0 < w.probability <= 1.0 and w.text.strip(" ,.?!") for w in words)
    assert [w.text.strip(" ,.?!").lower() for w in words][:4] == ["where", "is", "my", "order"], words


def test_a_transcript_carries_its_words_and_a_rejected_one_none(shared):
    heard = shared.recognise(phone_line(spoken("I would like to check the status of my order.")))
    assert heard.rejected is None
    assert "".join(w.text for w in heard.words) == heard.text
    # Most words of clear speech are heard surely; the transcript's confidence is their tokens' mean, roughly.
    assert sum(w.probability >= 0.5 for w in heard.words) >= len(heard.words) - 1, heard.words
    noise = shared.recognise(BAD_INPUT["noise"]())
    assert noise.rejected is not None and noise.words == ()


def test_an_order_number_is_heard_as_digits_when_the_bot_asked_for_one(shared):
    heard = shared.recognise(spoken("It is four five two eight one."), expects="order_number")
    assert "45281" in normalise_transcript(heard.text), heard.text


@pytest.mark.parametrize("kind", sorted(BAD_INPUT))
def test_bad_input_gives_no_words(shared, kind):
    heard = shared.recognise(BAD_INPUT[kind]())
    assert heard.text == "" and heard.rejected is not None and heard.confidence == 0.0, (kind, heard)
    if kind in ("german", "french"):
        # Said, but not in the bot's language: not understood (the dialog counts a miss), not silence.
        assert heard.heard_speech, heard


@pytest.mark.parametrize("kind", ["noise", "tones", "music on hold", "cough", "breath", "sigh"])
def test_sound_without_a_voiced_window_never_reaches_whisper(shared, kind, monkeypatch):
    """A clip with no window Silero scores as a possible voice (models.stt.voice_gate) is not decoded (Whisper read
    about one in four sox tone clips as "Okay." or "Hello." at a no-speech probability just under its rule's)."""
    def decode(*args):
        raise AssertionError(f"{kind} reached Whisper")

    monkeypatch.setattr(shared, "_read", decode)
    for _ in range(3):  # sox dithers: every clip is a little different
        heard = shared.recognise(BAD_INPUT[kind]())
        assert heard.text == "" and heard.rejected == "no speech" and not heard.heard_speech, heard


def test_speech_passes_the_voice_gate_and_a_gate_of_zero_is_off(shared, monkeypatch):
    read: list[bytes] = []
    monkeypatch.setattr(shared, "_read", lambda pcm16, expects: read.append(pcm16) or Transcript("Two.", 0.9))
    assert shared.recognise(phone_line(spoken("two", "en-gb"))).text == "Two."  # a lone word over the phone
    assert shared.recognise(BAD_INPUT["german"]()).text == "Two."  # speech in another language is Whisper's to judge
    monkeypatch.setattr(shared.settings.models.stt, "voice_gate", 0.0)
    assert shared.recognise(BAD_INPUT["tones"]()).text == "Two."  # off: every clip is decoded
    assert len(read) == 3


def test_bad_input_through_the_phone_gives_no_words(shared):
    for kind in ("german", "noise", "music on hold"):
        heard = shared.recognise(phone_line(BAD_INPUT[kind]()))
        assert heard.text == "", (kind, heard)


# ----------------------------------------------------------------------------- through a call's pipeline


def test_speech_in_another_language_twice_is_not_understood_then_a_person_is_offered(shared, tmp_path: Path):
    """Real turn detection and STT in front of the real dialog stage: German speech gives a turn with no
    words, the bot says it did not get that; the second time it connects the caller to a colleague. The
    dialog's question kind travels back upstream to the recogniser."""
    from pipecat.frames.frames import EndFrame, Frame, InputAudioRawFrame
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from stage_helpers import SaidRecorder, run_pipeline

    from dialogs.engine import DialogEngine
    from voicebot.config import CallConfig
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.dialog import DialogStage
    from voicebot.pipeline.frames import CallerTurnFrame, ExpectedAnswerFrame, GreetFrame
    from voicebot.pipeline.turns import CallerTurnProcessor
    from voicebot.storage import CallStore
    from voicebot.storage.schema import upgrade

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = DialogEngine.build(database_url=url, seed_demo=True, seed=3)
    upgrade(url)
    store = CallStore(engine.database.engine)

    class TurnTap(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.turns: list[CallerTurnFrame] = []
            self.expected: list[ExpectedAnswerFrame] = []

        async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, CallerTurnFrame):
                self.turns.append(frame)
            if isinstance(frame, ExpectedAnswerFrame) and direction == FrameDirection.UPSTREAM:
                self.expected.append(frame)
            await self.push_frame(frame, direction)

    session = engine.new_call(channel="web", call_id="call-foreign")
    call = CallContext("call-foreign", "web", None, session, store, shared)
    turns = CallerTurnProcessor(shared)
    tap, ear = TurnTap(), SaidRecorder()
    german = BAD_INPUT["german"]() + pcm.silence(1500)
    replies: list[str] = []

    async def drive(task: PipelineWorker) -> None:
        async def speak(audio: bytes) -> None:
            for chunk in pcm.frames(audio, pad=True):
                await task.queue_frame(InputAudioRawFrame(audio=chunk, sample_rate=pcm.SAMPLE_RATE, num_channels=1))

        await task.queue_frame(GreetFrame())
        await ear.until(1)
        await speak(german)
        first = await ear.until(2)
        replies.append(first.text)
        # "Sorry, I didn't catch that", or asked whether the English reading's one sure request was meant.
        assert first.then == "continue" and first.text.startswith("Sorry, I"), first.text
        await speak(german)
        second = await ear.until(3)
        assert second.then == "handoff" and "colleague" in second.text, second.text
        await call.finish("caller_hangup")
        await task.queue_frame(EndFrame())

    asyncio.run(run_pipeline([turns, tap, DialogStage(call, CallConfig()), ear], drive))
    assert [t.text for t in tap.turns] == ["", ""]
    assert all(t.not_understood and t.confidence == 0.0 for t in tap.turns)
    # Each reply told the recogniser upstream what it asked for: yes or no after "Just to check", else nothing.
    asked = replies[0].startswith("Sorry, I may not")
    assert [f.expects for f in tap.expected] == ["yes_no" if asked else None, None]
    assert store.flush(timeout=60)
    record = store.get("call-foreign")
    assert record is not None
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert [t["text"] for t in caller] == ["[not understood: language de]"] * 2
    store.close()
    engine.database.dispose()


# ----------------------------------------------------------------------------- voicebot eval stt


def test_eval_stt_reports_wer_clean_and_through_g711(tmp_path: Path):
    import json

    from click.testing import CliRunner

    from audio.speech import write_wav
    from voicebot.cli import cli

    said = {"order.wav": "Where is my order?", "address.flac": "I need to change my address."}
    for name, text in said.items():
        samples, rate = espeak_ng(text, voice="en-gb", sample_rate=22050)
        if name.endswith(".wav"):
            write_wav(tmp_path / name, samples, rate)
        else:
            import soundfile as sf

            sf.write(str(tmp_path / name), samples, rate, format="FLAC")
    (tmp_path / "transcripts.tsv").write_text(
        "file\ttext\n" + "".join(f"{n}\t{t.upper().strip('?.')}\n" for n, t in said.items())
    )
    saved = tmp_path / "clips.json"
    result = CliRunner().invoke(cli, ["eval", "stt", str(tmp_path), "--json", "--save", str(saved)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stderr may hold a library's log line
    clips = json.loads(saved.read_text())  # every clip through every channel, to see which were misheard
    assert sorted((Path(c["clip"]).name, c["channel"]) for c in clips) == sorted(
        (name, channel) for name in said for channel in ("clean", "g711"))
    for c in clips:
        assert c["reference"] == said[Path(c["clip"]).name].upper().strip("?.")
        assert c["words"] == len(c["reference"].split()) and 0 <= c["errors"] <= c["words"]
        assert c["heard"] and c["rejected"] is None and c["stt_s"] > 0 and c["audio_s"] > 1
    for channel in ("clean", "g711"):
        assert report[channel]["clips"] == 2
        assert report[channel]["wer"] <= 0.25, report
        assert report[channel]["stt_median_s"] > 0
        groups = report["by_length"][channel]  # clips of 2 s or less and longer ones apart
        assert sum(g["clips"] for g in groups.values() if g is not None) == 2, groups
    assert report["unreadable"] == []


def test_eval_stt_names_a_bad_row(tmp_path: Path):
    from click.testing import CliRunner

    from voicebot.cli import cli

    tsv = tmp_path / "mine.tsv"
    tsv.write_text("missing.wav\thello there\n")
    result = CliRunner().invoke(cli, ["eval", "stt", str(tsv)])
    assert result.exit_code == 1
    assert f"{tsv}:1: {tmp_path / 'missing.wav'} does not exist" in result.output


# ----------------------------------------------------------------------------- short clips


def test_short_clip_decoding_comes_from_the_settings(shared):
    settings = Settings()
    settings.models.stt.short_clip_beam = 5
    settings.models.stt.short_clip_padding = 0.8
    settings.models.stt.short_clip_alternative = "none"
    settings.models.stt.short_clip_loop_beam = 3
    tuned = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    tuned.close()
    assert tuned.short == ShortClipDecoding(lead_s=0.8, trail_s=0.8, beam_size=5, suppress_blank=True,
                                            alternative_prompt="", loop_beam=3)
    settings.models.stt.short_clip_alternative = "answers"
    answers = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    answers.close()
    assert answers.short.alternative_prompt == SHORT_ANSWERS


def test_a_lone_digit_cut_tight_is_heard_with_silence_around_it(shared):
    """Without the silence Whisper heard the tight espeak-ng "eight" over the phone as "A."; over the ten digits the
    padded clips are heard right at least as often (lone digits over G.711 stay hard: 3-4 of 10 here, and which ones
    moves with the domain's prompt words: "three" loops as "Three, three," with today's)."""
    assert shared.short.lead_s > 0 and shared.short.trail_s > 0
    settings = Settings()
    settings.models.stt.short_clip_padding = 0.0
    tight = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    tight.close()
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    right = {"padded": 0, "tight": 0}
    for digit, word in enumerate(words):
        audio = phone_line(spoken(word))
        for name, models in (("padded", shared), ("tight", tight)):
            heard = normalise_transcript(models.recognise(audio).text)
            right[name] += heard == [str(digit)]
            if word == "eight" and name == "padded":
                assert heard == ["8"], heard
    assert right["padded"] >= right["tight"], right


def test_a_short_clip_is_decoded_twice_and_the_surer_reading_kept(shared):
    """With ``short_clip_alternative: answers`` a short clip with no question asked is decoded a second time after the
    digits and yes/no alone, over the same encoder output; Whisper's surer reading wins. Lone digits are heard right at
    least as often as with the domain prompt alone, and one-word requests read as before (the second reading counts only
    when it is a digit, a yes or a no)."""
    settings = Settings()
    settings.models.stt.short_clip_alternative = "off"
    once = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    once.close()
    settings.models.stt.short_clip_alternative = "answers"
    twice = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    twice.close()
    assert twice.short.alternative_prompt == SHORT_ANSWERS
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    right = {"once": 0, "twice": 0}
    for digit, word in enumerate(words):
        audio = phone_line(spoken(word))
        for name, models in (("once", once), ("twice", twice)):
            right[name] += normalise_transcript(models.recognise(audio).text) == [str(digit)]
    assert right["twice"] >= right["once"], right
    # The loop rule (loop_agree) off: on this session's AMD machine "cancel" loops ("Cancel, cancel, ...") and the
    # second reading's "Cancel." makes it heard once, where the full window alone reads "Control.".
    twice_no_loop = SharedModels(settings, shared.whisper, shared.voice, shared.bias,
                                 short=replace(twice.short, loop_agree=False))
    twice_no_loop.close()
    for word in ("cancel", "help"):
        # A one-word request reads the same either way (what it reads as depends on the CPU: "Cancel." on one
        # machine, "Control." on another); the second reading never turns it into a digit, a yes or a no.
        audio = phone_line(spoken(word))
        heard = twice_no_loop.recognise(audio).text
        assert heard == once.recognise(audio).text and heard, word
        for text in (heard, twice.recognise(audio).text):
            assert normalise_transcript(text) not in [[str(d)] for d in range(10)] + [["yes"], ["no"]], (word, text)


def test_calls_transcribing_at_once_read_as_they_do_one_at_a_time(shared):
    """A short clip's two decodes run at once on the model's workers: two calls transcribing together, as on a busy
    node, get exactly the readings they get alone."""
    from concurrent.futures import ThreadPoolExecutor

    clips = [phone_line(spoken(text)) for text in ("four", "yes", "I was charged twice for my subscription",
                                                   "where is my parcel")]
    alone = [shared.recognise(clip) for clip in clips]
    assert any(len(clip) / 2 / pcm.SAMPLE_RATE <= 2.0 for clip in clips)  # a short clip: two decodes at once
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(shared.recognise, clips + clips[::-1]))
    assert together == alone + alone[::-1]


def test_a_word_repeated_in_too_little_speech_is_kept_once():
    """"Four. Four." from 0.4 s of speech cannot be two words; "seven seven" from 1.2 s can, and a reading without a
    repeat is never changed."""
    from voicebot.pipeline.shared import _collapse_repeats

    four = Transcript("Four. Four.", 0.8, words=(HeardWord("Four.", 0.9), HeardWord("Four.", 0.7)))
    once = _collapse_repeats(four, speech_s=0.4, min_word_s=0.35)
    assert once.text == "Four." and once.words == (HeardWord("Four.", 0.9),) and once.confidence == 0.8
    assert _collapse_repeats(four, speech_s=0.8, min_word_s=0.35) == four
    seven = Transcript("Seven, seven.", 0.8)
    assert _collapse_repeats(seven, speech_s=1.2, min_word_s=0.35) == seven
    assert _collapse_repeats(seven, speech_s=0.5, min_word_s=0.35).text == "Seven."
    two = Transcript("One two.", 0.8)
    assert _collapse_repeats(two, speech_s=0.3, min_word_s=0.35) == two


def test_a_lone_digit_read_twice_is_heard_once(shared):
    """en-029's "four" over the phone (0.3 s of speech) reads "Four. Four." (benchmarks/stt_short.py); by default the
    repeat is dropped because the clip holds too little speech for two words."""
    from voicebot.phone_speech import VOICES, synthesize

    audio = phone_line(synthesize("four", VOICES["en-029"]))
    as_read = SharedModels(Settings(), shared.whisper, shared.voice, shared.bias,
                           short=replace(shared.short, min_word_s=0.0))
    as_read.close()
    # "Four. Four." on this session's AMD machine; whether Whisper loops on one clip moves with the CPU's arithmetic.
    assert as_read.recognise(audio).text in ("Four. Four.", "Four.")
    heard = shared.recognise(audio)
    assert heard.text == "Four." and [w.text for w in heard.words] == ["Four."], heard


def test_two_readings_of_the_same_lone_digit_take_back_a_no_speech_rejection(shared):
    """en-rp's "two" cut tight over the phone: the domain prompt's reading "Two," comes with a no-speech probability
    over the rule's, the digits-and-yes/no reading says "Two." surely. Both readings the same lone digit: heard, not
    rejected (benchmarks/stt_short.py). Without the rule it is rejected as no speech."""
    from voicebot.phone_speech import VOICES, synthesize

    samples = np.frombuffer(phone_line(synthesize("two", VOICES["en-rp"])), np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.02 * int(np.abs(samples).max()))
    margin = int(0.03 * pcm.SAMPLE_RATE)
    audio = samples[max(0, int(loud[0]) - margin): int(loud[-1]) + margin].tobytes()  # cut tight, as stt_short.trimmed
    assert shared.short.digits_agree
    # On this session's AMD machine the first reading loops ("Two, two, two, ...") and is heard once by default
    # (loop_agree, the digits reading says "Two."); without that, the full window reads "Two," as no speech.
    heard = shared.recognise(audio)
    assert normalise_transcript(heard.text) == ["2"] and heard.recovered_from in ("no speech", "repetitive"), heard
    no_loop = SharedModels(Settings(), shared.whisper, shared.voice, shared.bias,
                           short=replace(shared.short, loop_agree=False))
    as_before = SharedModels(Settings(), shared.whisper, shared.voice, shared.bias,
                             short=replace(shared.short, digits_agree=False, loop_agree=False))
    no_loop.close()
    as_before.close()
    heard = no_loop.recognise(audio)
    assert normalise_transcript(heard.text) == ["2"] and heard.recovered_from == "no speech", heard
    before = as_before.recognise(audio)
    assert before.rejected == "no speech" and normalise_transcript(before.decoded) == ["2"], before


def test_the_full_window_retry_of_a_looping_short_clip_has_a_token_cap_of_its_own(shared):
    """en-rp's "two" cut tight loops on its first reading; without the loop rule it is decoded again over the full 30 s
    window, and both decodes there may write ``retry_max_tokens`` tokens after their prompt, the first ones the general
    rule's (8 a second plus 16)."""
    from voicebot.phone_speech import VOICES, synthesize

    samples = np.frombuffer(phone_line(synthesize("two", VOICES["en-rp"])), np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0.02 * int(np.abs(samples).max()))
    margin = int(0.03 * pcm.SAMPLE_RATE)
    audio = samples[max(0, int(loud[0]) - margin): int(loud[-1]) + margin].tobytes()
    caps: list[tuple[bool, int]] = []

    class Caps(SharedModels):
        def _decode(self, encoded: Any, tokens: list[int], seconds: float, short: bool, beam: int,
                    retry: bool = False) -> Any:
            caps.append((retry, self._max_length(len(tokens), seconds, short, retry) - len(tokens)))
            return super()._decode(encoded, tokens, seconds, short, beam, retry)

    capped = Caps(Settings(), shared.whisper, shared.voice, shared.bias,
                  short=replace(shared.short, loop_agree=False, retry_max_tokens=5))
    capped.close()
    capped.recognise(audio)
    seconds = len(audio) / 2 / pcm.SAMPLE_RATE + shared.short.lead_s + shared.short.trail_s
    # On this session's AMD machine the first reading loops ("Two, two, two, ..."): two decodes, then two more.
    assert caps == [(False, int(seconds * 8) + 16)] * 2 + [(True, 5)] * 2, caps


def test_a_looping_reading_is_one_unit_repeated():
    from voicebot.pipeline.shared import _loop_unit

    assert _loop_unit("Return, return, return, return, return,") == "Return."
    assert _loop_unit("Order, status, order, status, order, status,") == "Order status."
    assert _loop_unit("42. 42. 42. 42.") == "42."
    assert _loop_unit("Two. Two.") == ""  # twice is _collapse_repeats' case, not a loop
    assert _loop_unit("Four, two, four, two, two, two") == "" and _loop_unit("I want a refund.") == ""
    assert _loop_unit("") == ""


def _decoded(shared, text, avg_logprob=-0.2, no_speech_prob=0.01):
    """A stand-in for CTranslate2's decode result of ``text`` (what _short_alternative reads of it)."""
    from types import SimpleNamespace

    ids = shared._tokenizer.encode(" " + text)
    return SimpleNamespace(sequences_ids=[ids], scores=[avg_logprob * (len(ids) + 1) / len(ids)],
                           no_speech_prob=no_speech_prob, logits=[[[0.0] * 51865 for _ in ids]])


def test_a_looping_short_reading_the_digits_reading_agrees_with_is_heard_once(shared):
    """Whisper base loops on en-us "returns" over the phone ("Return, return, return, ..."), the digits-and-yes/no
    reading says "Return."; the clip is heard once instead of decoded again over the full 30 s window, which read it
    looping again (benchmarks/stt_short.py's clips). A unit the other reading does not say stands rejected (the full
    window is tried next)."""
    from voicebot.pipeline.shared import rejection_rules

    first = judge("Return, return, return, return, return, return, return,", -0.15, 0.02, "en", False,
                  rejection_rules(True))
    assert first.rejected == "repetitive"
    assert shared.short.loop_agree
    heard = shared._short_alternative(first, _decoded(shared, "Return."), "en", False)
    assert heard.text == "Return." and heard.rejected is None and heard.recovered_from == "repetitive", heard
    assert "".join(w.text for w in heard.words) == "Return.", heard.words  # the second reading's, for the dialog
    looping_too = shared._short_alternative(first, _decoded(shared, "Return. Return. Return. Return."), "en", False)
    assert looping_too.text == "Return." and looping_too.words == (), looping_too
    assert shared._short_alternative(first, _decoded(shared, "Yes."), "en", False) == first
    off = SharedModels(Settings(), shared.whisper, shared.voice, shared.bias,
                       short=replace(shared.short, loop_agree=False))
    off.close()
    assert off._short_alternative(first, _decoded(shared, "Return."), "en", False) == first


def test_only_the_same_lone_digit_counts_as_two_readings_agreeing():
    from voicebot.pipeline.shared import _same_digit

    assert _same_digit("Two,", "Two.") and _same_digit("One.", "1") and _same_digit("eight", "Eight!")
    assert not _same_digit("Yes.", "Yes.") and not _same_digit("No.", "No.")  # a wrong "yes" is worse than asking again
    assert not _same_digit("Forward.", "Four.") and not _same_digit("Two, three.", "Two, three.")
    assert not _same_digit("", "")


def test_a_short_clip_has_a_token_cap_of_its_own(shared):
    """``ShortClipDecoding.max_tokens`` caps what Whisper may write for a short clip (benchmarks/stt_short.py)."""
    capped = SharedModels(Settings(), shared.whisper, shared.voice, shared.bias,
                          short=replace(shared.short, max_tokens=3))
    capped.close()
    audio = phone_line(spoken("one two three four five six"))
    assert len(audio) / 2 / pcm.SAMPLE_RATE <= 2.0
    heard = capped.recognise(audio, expects="order_number")
    assert heard.decoded and len(normalise_transcript(heard.decoded)) <= 3, heard
    assert len(normalise_transcript(shared.recognise(audio, expects="order_number").text)) > 3


def test_a_beam_search_reads_a_short_clip_and_a_sentence(shared):
    """CTranslate2 gives a beam search's word scores back empty: a beam wider than 1 (``short_clip_beam``,
    ``beam_size``) reads the clip, with no word probabilities, instead of failing."""
    settings = Settings()
    settings.models.stt.beam_size = 3
    settings.models.stt.short_clip_beam = 3
    beam = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    beam.close()
    for text, expects in (("four", None), ("yes", "yes_no"), ("where is my parcel", None)):
        heard = beam.recognise(phone_line(spoken(text)), expects=expects)
        assert heard.text and heard.rejected is None, (text, heard)
        assert heard.words == () or heard.recovered_from, (text, heard)


def test_a_looping_short_reading_gets_a_beam_before_the_full_window(shared):
    """A lone digit whose greedy reading loops is decoded again with ``loop_beam`` over the fitted window: on the own
    short set (benchmarks/stt_short.py) these clips read as well as in the full 30 s window, for a fifth of its CPU.
    Which clips loop moves with the CPU and the prompt's words, so several candidates are heard."""
    from voicebot.phone_speech import VOICES, PhoneListener

    windows: list[float] = []

    class Windows(SharedModels):
        def _encode(self, audio: np.ndarray, window_s: float) -> object:
            windows.append(window_s)
            return super()._encode(audio, window_s)

    def models(loop_beam: int) -> SharedModels:
        settings = Settings()
        settings.models.stt.short_clip_loop_beam = loop_beam
        m = Windows(settings, shared.whisper, shared.voice, shared.bias)
        m.close()
        return m

    assert shared.short.loop_beam == 0  # off by default (it read short foreign answers as English)
    looping, beam = models(0), models(3)
    listener = PhoneListener(lambda _: "")
    looped = 0
    for text, voice in (("two", "en-rp"), ("four", "en-gb"), ("seven", "en-029"), ("four", "en-nyc")):
        audio = listener.audio(text, VOICES[voice])
        windows.clear()
        full = looping.recognise(audio)
        if 30.0 not in windows:
            continue  # this clip does not loop here
        looped += 1
        windows.clear()
        heard = beam.recognise(audio)
        assert windows.count(30.0) <= 1 and len(windows) >= 2, windows  # the fitted window again, with the beam
        if normalise_transcript(full.text) == normalise_transcript(text) and 30.0 not in windows:
            assert normalise_transcript(heard.text) == normalise_transcript(text), (text, voice, heard)
    assert looped, "no candidate clip looped: pick others from benchmarks/stt_short.py --dump"


# ----------------------------------------------------------------------------- language check, second decode


def test_a_language_guess_sounds_foreign_by_the_rules_for_its_length():
    german = [("de", 0.93), ("en", 0.03)]
    thai_on_english = [("th", 0.45), ("en", 0.30)]
    assert sounds_foreign(german, "en", short=False) and not sounds_foreign([("en", 0.9)], "en", short=False)
    assert not sounds_foreign([("it", 0.55), ("en", 0.4)], "en", short=False)  # below the long-clip threshold
    strict = LanguageRules(short_top_prob=0.8, short_english_below=0.1)
    assert sounds_foreign(german, "en", short=True, rules=strict)
    assert not sounds_foreign(thai_on_english, "en", short=True, rules=strict)  # English still likely
    assert not sounds_foreign([("de", 0.95), ("en", 0.2)], "en", short=True, rules=strict)
    assert not sounds_foreign([], "en", short=True, rules=strict)


def test_speech_loud_sound_is_measured_in_seconds():
    assert speech_seconds(np.zeros(pcm.SAMPLE_RATE, np.float32)) == 0.0
    hiss = np.frombuffer(sox("synth", "2", "whitenoise", "vol", "0.005"), np.int16).astype(np.float32) / 32768
    assert speech_seconds(hiss) == 0.0
    said = np.frombuffer(phone_line(spoken("operator")), np.int16).astype(np.float32) / 32768
    assert 0.2 < speech_seconds(said) < len(said) / pcm.SAMPLE_RATE


def test_the_second_decode_can_be_switched_off(shared):
    settings = Settings()
    assert settings.models.stt.recover_rejected and shared.recovery is not None
    settings.models.stt.recover_rejected = False
    off = SharedModels(settings, shared.whisper, shared.voice, shared.bias)
    off.close()
    assert off.recovery is None


def test_a_short_answer_clearly_in_another_language_is_not_taken_for_english(shared):
    """Italian digits after "what is your order number?" came out as "No, my order is empty." (Whisper: Italian 0.86-0.97,
    English under 0.04); the same answer in English is still heard (benchmarks/stt_short_foreign.py)."""
    from voicebot.phone_speech import SyntheticVoice, synthesize

    italian = shared.recognise(phone_line(synthesize("Nove otto sette", SyntheticVoice("it", "espeak", "it", 190))),
                               expects="order_number")
    # Rejected, by the language rule or (when the prompted decode is already unsure) before it: never an answer.
    assert italian.text == "" and italian.rejected in ("language it", "unsure") and italian.language == "it", italian
    english = shared.recognise(phone_line(spoken("one two three")), expects="order_number")
    assert english.rejected is None and any(w.isdigit() for w in normalise_transcript(english.text)), english


def test_a_rejected_reading_of_clear_speech_gets_a_second_decode(shared, no_second_chance, monkeypatch):
    """benchmarks/stt_rejection.py: the domain prompt made this en-us request over the phone "L-cell, link,
    application, agent," at a guess's log probability; decoded again without the prompt it keeps the request. With
    ``models.stt.recover_rejected: false`` it stays rejected. Whether the prompted reading is unsure enough to be
    rejected depends on the CPU's arithmetic (on this session's AMD machine it read "payment, help, and get me an
    agent." at -1.12 and passed), so the first verdict is made "unsure" here: what is tested is the second decode."""
    import voicebot.pipeline.shared as shared_module
    from voicebot.phone_speech import VOICES, synthesize

    real_judge = shared_module.judge
    verdicts: list[Transcript] = []

    def first_judged_unsure(text: str, *args, **kwargs) -> Transcript:
        verdict = real_judge(text, *args, **kwargs)
        if not verdicts:
            verdict = replace(verdict, text="", confidence=0.0, rejected="unsure", decoded=text, words=())
        verdicts.append(verdict)
        return verdict

    audio = phone_line(synthesize("this isn't helping get me an agent", VOICES["en-us"]))
    monkeypatch.setattr(shared_module, "judge", first_judged_unsure)
    first = no_second_chance.recognise(audio)
    assert first.rejected == "unsure" and first.text == "", first
    assert len(verdicts) == 1  # no second decode with recover_rejected off
    verdicts.clear()
    again = shared.recognise(audio)
    assert len(verdicts) == 2 and verdicts[0].rejected == "unsure", verdicts
    assert again.recovered_from == "unsure" and again.rejected is None and again.heard_by is None, again
    assert "agent" in again.text.lower() and 0.0 < again.confidence < 1.0, again


def test_silence_and_music_get_no_second_decode_that_invents_words(shared):
    """Silence has no speech-loud sound and is not decoded again; noise, music and a cough stay rejected after it."""
    silence = shared.recognise(pcm.silence(2000))
    assert silence.rejected == "no speech" and silence.recovered_from is None
    for kind in ("noise", "music on hold", "cough", "breath"):
        heard = shared.recognise(phone_line(BAD_INPUT[kind]()))
        assert heard.text == "" and heard.recovered_from is None, (kind, heard)


def test_accented_english_taken_for_thai_is_heard_when_it_decodes_worse_in_thai(shared):
    """en-029 over the phone: Whisper guessed Thai (0.88) and the prompted English decode was unsure, so the language
    rule rejected it. It is heard all the same: where it decodes less surely in Thai than in English the English
    reading stands (on the machines this was written on), else the second recogniser reads it (on this session's AMD
    machine the Thai decode was not worse by the margin; tiny.en read it). German speech decodes better in German,
    reads unsurely in tiny.en, and stays rejected (test_bad_input_gives_no_words)."""
    from voicebot.phone_speech import VOICES, synthesize

    heard = shared.recognise(phone_line(synthesize("let me talk to a person", VOICES["en-029"])))
    assert heard.rejected is None and heard.recovered_from == "language th", heard
    assert "person" in heard.text.lower(), heard
    german = shared.recognise(phone_line(BAD_INPUT["german"]()))
    assert german.text == "" and german.recovered_from is None, german


# ----------------------------------------------------------------------------- a second recogniser's reading


def test_a_second_recogniser_reads_only_long_clips_the_first_rejected():
    from voicebot.pipeline.shared import wants_second_opinion

    rejected = Transcript("", 0.0, rejected="language th")
    assert wants_second_opinion(rejected, short=False)
    assert wants_second_opinion(replace(rejected, rejected="unsure"), short=False)
    assert wants_second_opinion(replace(rejected, rejected="prompt echo"), short=False)
    assert not wants_second_opinion(replace(rejected, rejected="repetitive"), short=False)  # noise, music
    assert not wants_second_opinion(rejected, short=True)  # a word or two: the short-clip decoding's
    assert not wants_second_opinion(Transcript("I want a refund.", 0.9), short=False)


def test_a_request_the_first_recogniser_rejected_is_read_by_the_second(shared, monkeypatch):
    """en-sc over the phone: Whisper base guesses Thai for "can I return something I bought online" and rejects it
    (the spoken dev set, benchmarks/stt_second_opinion.py; "CYRITON SOM FENYBO TONG LINE" at -1.17 on this session's
    machine); tiny.en reads it and its reading is acted on, named. Base's verdict on one clip can move with the CPU's
    arithmetic, so where base would accept it, its reading is rejected here as it was: tiny.en's reading is real."""
    from voicebot.phone_speech import VOICES, synthesize

    assert shared.second_opinion is not None and shared.second_opinion.settings.models.stt.model == "tiny.en"
    audio = phone_line(synthesize("can I return something I bought online", VOICES["en-sc"]))
    first = shared._read(audio, None)
    if first.rejected is None:
        first = replace(first, text="", confidence=0.0, rejected="language th", words=())
        monkeypatch.setattr(shared, "_read", lambda pcm16, expects: first)
    assert first.rejected is not None, first
    heard = shared.recognise(audio)
    assert heard.rejected is None and heard.heard_by == "tiny.en" and heard.recovered_from == first.rejected, heard
    assert "return" in heard.text.lower() and heard.words, heard


def test_the_second_recogniser_gives_no_words_to_noise_or_another_language(shared, monkeypatch):
    """Noise and French or German over the phone that Whisper base rejects get no words from tiny.en either. Whether
    base itself rejects a foreign clip moves with its prompt and the CPU (this French one it reads as "I will be more
    and more comfortable with you." at confidence 0.19 since the prompt has greetings: benchmarks/stt_rejection.py
    counts such false accepts); where it accepts, its rejection is forced here, so the second recogniser is tested."""
    read = shared._read
    for kind in ("noise", "music on hold", "german", "french"):
        audio = phone_line(BAD_INPUT[kind]())
        first = read(audio, None)
        if first.rejected is None:
            first = replace(first, text="", confidence=0.0, rejected="language fr", words=())
        monkeypatch.setattr(shared, "_read", lambda pcm16, expects, first=first: first)
        heard = shared.recognise(audio)
        assert heard.text == "" and heard.heard_by is None, (kind, first.rejected, heard)


def test_the_second_recogniser_can_be_switched_off():
    settings = Settings()
    assert settings.models.stt.second_opinion == "tiny.en"
    settings.models.stt.second_opinion = "none"
    models = SharedModels.load(settings)
    models.close()
    assert models.second_opinion is None
