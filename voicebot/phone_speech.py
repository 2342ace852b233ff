"""Text as a caller's voice over a phone line, and what the product's recogniser hears of it.

Used to measure the NLU on speech (``voicebot eval spoken``) and to collect the recogniser's transcripts of
the domain's own examples for training (``voicebot nlu augment``). One pass: synthesise the text with a
test voice (espeak-ng accents and speeds, or the Piper voice), resample to 8 kHz, G.711 mu-law encode and
decode as an RTP leg does, resample back to 16 kHz, then :meth:`SharedModels.transcribe` (the live STT
path, same model, window and decoding). Synthesised audio is cached in a temp directory only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio import pcm
from telephony.codecs import StreamResampler, ulaw_decode, ulaw_encode

TELEPHONE_RATE = 8000
# Part of the audio cache's key: raise it whenever phone_line's sound changes (as with the codec's resampler filter
# in version 2), so no run mixes audio of the old line with the new.
LINE_VERSION = 2


@dataclass(frozen=True)
class SyntheticVoice:
    """A synthetic caller: ``engine`` "espeak" (``voice`` an espeak-ng voice, ``rate`` words per minute) or
    "piper" (the bundled voice; ``rate`` is ignored, ``length_scale`` sets the speed)."""

    name: str
    engine: str
    voice: str = ""
    rate: int = 175
    length_scale: float = 1.0


# Several English accents and speeds; "piper" is the product's own neural voice (joe, US).
VOICES: dict[str, SyntheticVoice] = {v.name: v for v in (
    SyntheticVoice("en-us", "espeak", "en-us", 175),
    SyntheticVoice("en-gb", "espeak", "en-gb", 165),
    SyntheticVoice("en-sc", "espeak", "en-gb-scotland", 155),
    SyntheticVoice("en-029", "espeak", "en-029", 170),
    SyntheticVoice("en-nyc", "espeak", "en-us-nyc", 195),
    SyntheticVoice("en-rp", "espeak", "en-gb-x-rp", 145),
    SyntheticVoice("en-wm", "espeak", "en-gb-x-gbcwmd", 160),
    SyntheticVoice("piper", "piper", length_scale=1.0),
    SyntheticVoice("piper-fast", "piper", length_scale=0.85),
)}
DEFAULT_VOICES = ("en-us", "en-gb", "en-sc", "en-029", "en-nyc", "piper")


def parse_voices(names: str | Sequence[str]) -> list[SyntheticVoice]:
    """Voices by name ("en-us,en-gb,piper"); raises ``ValueError`` naming an unknown one and the choices."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in items if n not in VOICES]
    if unknown or not items:
        raise ValueError(f"unknown voice {', '.join(unknown) or '(none given)'}; choose from {', '.join(VOICES)}")
    return [VOICES[n] for n in items]


def phone_line(pcm16: bytes) -> bytes:
    """16 kHz PCM16 through an 8 kHz G.711 mu-law leg and back to 16 kHz (band limit plus companding)."""
    narrow = StreamResampler(pcm.SAMPLE_RATE, TELEPHONE_RATE).process(pcm16)
    return StreamResampler(TELEPHONE_RATE, pcm.SAMPLE_RATE).process(ulaw_decode(ulaw_encode(narrow)))


def synthesize(text: str, voice: SyntheticVoice) -> bytes:
    """``text`` spoken by ``voice`` as 16 kHz mono PCM16."""
    from audio.speech import espeak_ng, piper_tts

    if voice.engine == "espeak":
        samples, _ = espeak_ng(text, voice=voice.voice, rate=voice.rate, sample_rate=pcm.SAMPLE_RATE)
    else:
        # No sampling noise: the same text gives the same audio, so runs are comparable.
        samples, _ = piper_tts(text, length_scale=voice.length_scale, sample_rate=pcm.SAMPLE_RATE,
                               noise_scale=0.0, noise_w_scale=0.0)
    # A caller does not start speaking at sample 0: 200 ms of line silence on either side.
    pad = np.zeros(pcm.SAMPLE_RATE // 5, dtype=np.float32)
    audio = np.concatenate([pad, samples, pad])
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()


class PhoneListener:
    """Speaks text with a test voice over a G.711 line and returns what ``transcribe`` hears.

    ``transcribe`` takes 16 kHz PCM16 and returns text (the live path: ``SharedModels.transcribe``).
    Telephone audio is cached under ``cache_dir`` (default: a folder in the system temp directory)."""

    def __init__(self, transcribe: Callable[[bytes], str], cache_dir: Path | None = None):
        self._transcribe = transcribe
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "voicebot-phone-speech"
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def audio(self, text: str, voice: SyntheticVoice) -> bytes:
        """``text`` by ``voice`` as heard at the far end of the line (16 kHz PCM16), from the cache if there."""
        key = hashlib.sha256(repr((text, voice, LINE_VERSION)).encode()).hexdigest()[:24]
        path = self.cache_dir / f"{key}.pcm"
        if path.exists():
            return path.read_bytes()
        audio = phone_line(synthesize(text, voice))
        tmp = path.with_suffix(f".{os.getpid()}.part")  # one per process: two writing the same key do not mix
        tmp.write_bytes(audio)
        tmp.replace(path)  # atomic: two runs sharing the cache never read half a file
        return audio

    def hear(self, text: str, voice: SyntheticVoice) -> str:
        """The recogniser's transcript of ``text`` spoken by ``voice`` over the line."""
        return self._transcribe(self.audio(text, voice))
