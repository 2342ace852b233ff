"""Choose the STT model and decoding by measurement: WER and STT time of each combination. Prints JSON.

Combinations: model (tiny.en, base) x window (fit: the utterance plus 1 s; full: 30 s) x beam (1, 5) x
contextual biasing (off; on: the domain's vocabulary and, for answers to a question, what the bot asked for).

Data:

* ``../shared/eval-data/asr/`` (LibriSpeech, LJSpeech, Harvard sentences), clean and through G.711 mu-law
  8 kHz. Measured only: nothing here is tuned on it.
* a spoken dev set of domain utterances written for this benchmark (``DEV_SET`` below: requests and answers
  to the bot's questions), spoken at run time by rotating espeak-ng English accents and speeds and Piper,
  always through G.711 (callers come over the phone or a browser; the phone is the harder case).

    python benchmarks/stt_choice.py [--fsdd-every K] [--combos tiny.en/fit/1/off,base/fit/1/on ...]
        [--short LEAD/TRAIL/BEAM/BLANK] [--no-dev]

``--short`` sets the decoding of clips of 2 s or less (``ShortClipDecoding``: silence before and after in
seconds, beam width, suppress_blank on/off); the eval-data WER is also given for its sentences and its lone
digits apart.

STT time is reported as wall time (median, p95) and as process CPU time (median): on a shared machine only
the CPU time compares combinations fairly.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from audio import pcm
from audio.evaluation import load_transcribed_clips, read_clip, word_error_rate
from audio.speech import espeak_ng, piper_tts
from voicebot.config import Settings
from voicebot.pipeline.shared import SharedModels, ShortClipDecoding
from voicebot.stt_evaluation import Recognised, recognise_clip, summarise, to_pcm16

ASR_DATA = Path(__file__).resolve().parents[2] / "shared" / "eval-data" / "asr"

# (what the bot asked for, what the caller says): written for this benchmark, never taken from eval-data.
DEV_SET: list[tuple[str | None, str]] = [
    (None, "Where is my order?"),
    (None, "I was charged twice for the same order."),
    (None, "I need to change my address."),
    (None, "Can I speak to an operator please?"),
    (None, "I'd like to cancel my subscription."),
    (None, "I want to return a pair of shoes that don't fit."),
    (None, "I forgot my password and I can't log in."),
    (None, "My parcel still hasn't arrived and it's been two weeks."),
    (None, "There's a charge on my bill I don't recognise."),
    (None, "The app keeps crashing when I open it."),
    (None, "Can you tell me the status of my delivery?"),
    (None, "I moved house last month, please update my address."),
    (None, "I want a refund for the broken headphones."),
    (None, "Please reset my password."),
    (None, "Stop my monthly membership, I don't use it anymore."),
    (None, "Let me talk to a real person."),
    (None, "Where's my package? It said out for delivery yesterday."),
    (None, "I'd like to return the jacket and check on my other order."),
    (None, "Cancel my subscription and refund the last payment."),
    (None, "My login doesn't work and I need to change my address."),
    (None, "Why was I billed for something I didn't buy?"),
    (None, "The website won't let me pay with my card."),
    (None, "I received the wrong item."),
    (None, "How do I send something back?"),
    (None, "I never got a confirmation email for my order."),
    (None, "Hi, I'm calling about a late delivery."),
    (None, "I'd like to speak to someone about my bill."),
    (None, "My device won't turn on after the update."),
    (None, "Can you track my parcel for me?"),
    (None, "I want to close my account."),
    (None, "The item arrived damaged, I want to send it back."),
    (None, "I've been charged after I cancelled."),
    (None, "Could you change the delivery address on my order?"),
    (None, "Agent, please."),
    (None, "Thanks, that's all for today."),
    (None, "Could you repeat that please?"),
    ("order_number", "My order number is 45281."),
    ("order_number", "It's 12345."),
    ("order_number", "Order 67890."),
    ("order_number", "The number is 31415."),
    ("order_number", "50217"),
    ("order_number", "I think it's 88013."),
    ("yes_no", "Yes."),
    ("yes_no", "No."),
    ("yes_no", "Yes, that's right."),
    ("yes_no", "No, that's wrong."),
    ("yes_no", "Yeah, correct."),
    ("yes_no", "Nope, not that one."),
    ("postcode", "My postcode is SW1A 1AA."),
    ("postcode", "It's M1 4BT."),
    ("postcode", "EC1A 1BB."),
    ("postcode", "The postcode is 90210."),
    ("date", "It was on the third of March."),
    ("date", "Last Tuesday."),
    ("date", "My date of birth is the twelfth of April 1985."),
    ("date", "On the 21st of June."),
    (None, "I want to cancel, the price went up again."),
    (None, "I'd like to know where my refund is."),
    (None, "My headphones stopped working after a week."),
    (None, "I need help with a payment that failed."),
]

# Rotated over the dev set: (engine, voice or length scale, words per minute).
VOICES: list[tuple[str, str, int]] = [
    ("espeak", "en-us", 165),
    ("piper", "1.0", 0),
    ("espeak", "en-gb", 175),
    ("espeak", "en-gb-scotland", 160),
    ("piper", "1.15", 0),
    ("espeak", "en-029", 150),
    ("espeak", "en-gb-x-rp", 190),
    ("espeak", "en-us+f3", 170),
]

COMBOS = [
    "tiny.en/fit/1/off",  # before this change
    "base/fit/1/on",
    "tiny.en/fit/1/on",
    "base/full/1/on",
    "base/fit/5/on",
    "tiny.en/full/1/off",
    "base/fit/1/off",
]


def speak(text: str, voice: tuple[str, str, int]) -> bytes:
    engine, name, rate = voice
    if engine == "piper":
        samples, sr = piper_tts(text, length_scale=float(name), noise_scale=0.0, noise_w_scale=0.0,
                                sample_rate=pcm.SAMPLE_RATE)
    else:
        samples, sr = espeak_ng(text, voice=name, rate=rate, sample_rate=pcm.SAMPLE_RATE)
    return to_pcm16(samples)


def run_combo(combo: str, asr: list[tuple[bytes, str]], dev: list[tuple[bytes, str, str | None]],
              base_settings: Settings, short: ShortClipDecoding | None = None, digits: int = 0,
              channels: tuple[str, ...] = ("clean", "g711")) -> dict[str, Any]:
    """``asr``'s last ``digits`` clips are lone digits; ``dev`` may be empty."""
    model, window, beam, bias = combo.split("/")
    settings = base_settings.model_copy(deep=True)
    settings.models.stt.model = model
    settings.models.stt.window = window  # type: ignore[assignment]
    settings.models.stt.beam_size = int(beam)
    settings.models.stt.bias = bias == "on"
    settings.models.workers = 1
    loaded = SharedModels.load(settings)
    shared = SharedModels(settings, loaded.whisper, loaded.voice, loaded.bias, short=short)
    loaded.close()
    try:
        shared.recognise((dev or asr)[0][0])  # the first inference of a thread is slower
        out: dict[str, Any] = {"combo": combo, "short_clips": shared.short.__dict__}
        for channel in channels:
            rs = [recognise_clip(shared, audio, text, channel) for audio, text in asr]
            out[f"asr_{channel}"] = summarise(rs) if rs else None
            if rs and digits:
                out[f"asr_{channel}"]["wer_sentences"] = summarise(rs[:-digits])["wer"]
                out[f"asr_{channel}"]["wer_digits"] = summarise(rs[-digits:])["wer"]
                out[f"asr_{channel}"]["cpu_ms_sentences"] = _cpu_ms(rs[:-digits])
                out[f"asr_{channel}"]["cpu_ms_digits"] = _cpu_ms(rs[-digits:])
        if not dev:
            return out
        dev_results: list[Recognised] = [
            recognise_clip(shared, audio, text, "g711", expects=expects) for audio, text, expects in dev
        ]
        out["dev_g711"] = summarise(dev_results)
        out["dev_g711_answers_wer"] = round(word_error_rate(
            [(r.reference, r.transcript.text) for r, (_, _, e) in zip(dev_results, dev, strict=True) if e]), 4)
        out["dev_worst"] = [
            {"said": r.reference, "heard": r.transcript.text, "rejected": r.transcript.rejected,
             "avg_logprob": r.transcript.avg_logprob}
            for r in sorted(dev_results, key=lambda r: r.errors / max(1, r.words), reverse=True)[:6] if r.errors
        ]
        logprobs = [r.transcript.avg_logprob for r in dev_results if r.transcript.avg_logprob is not None]
        out["dev_avg_logprob_min"] = round(min(logprobs), 3) if logprobs else None
        out["dev_avg_logprob_median"] = round(statistics.median(logprobs), 3) if logprobs else None
        return out
    finally:
        shared.close()


def _cpu_ms(results: list[Recognised]) -> dict[str, float]:
    cpu = sorted(1000 * r.cpu_seconds for r in results)
    return {"mean": round(statistics.fmean(cpu), 1), "p95": round(cpu[int(0.95 * (len(cpu) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asr", type=Path, default=ASR_DATA)
    parser.add_argument("--fsdd-every", type=int, default=4,
                        help="keep every k-th of the 300 single spoken digits (FSDD) of eval-data/asr; all sentences "
                             "are kept (1: the whole set)")
    parser.add_argument("--combos", default=",".join(COMBOS))
    parser.add_argument("--short", default=None, help="short-clip decoding: lead s/trail s/beam/suppress_blank on|off")
    parser.add_argument("--no-dev", action="store_true", help="eval-data only")
    parser.add_argument("--g711-only", action="store_true", help="eval-data through G.711 only (not clean)")
    args = parser.parse_args()
    short = None
    if args.short:
        lead, trail, beam, blank = args.short.split("/")
        short = ShortClipDecoding(float(lead), float(trail), int(beam), blank == "on")
    settings = Settings()
    clips = load_transcribed_clips(args.asr) if args.asr.exists() else []
    digits = [c for c in clips if c.path.name.startswith("fsdd_")]
    clips = [c for c in clips if c not in digits] + digits[:: max(1, args.fsdd_every)]
    asr = [(to_pcm16(read_clip(c.path, pcm.SAMPLE_RATE)), c.text) for c in clips]
    dev = [] if args.no_dev else [
        (speak(text, VOICES[i % len(VOICES)]), text, expects) for i, (expects, text) in enumerate(DEV_SET)]
    started = time.time()
    results = []
    for combo in args.combos.split(","):
        results.append(run_combo(combo, asr, dev, settings, short, len(digits[:: max(1, args.fsdd_every)]),
                                 ("g711",) if args.g711_only else ("clean", "g711")))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "asr_clips": len(asr),
        "asr_digit_clips": len(digits[:: max(1, args.fsdd_every)]),
        "dev_utterances": len(dev),
        "voices": [f"{e}:{v}:{r}" for e, v, r in VOICES],
        "seconds": round(time.time() - started, 1),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
