"""G.711 against the ITU reference values and streaming 8 <-> 16 kHz resampling."""

from __future__ import annotations

import numpy as np

from telephony.codecs import StreamResampler, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype=np.int16).tobytes()


def test_g711_reference_points() -> None:
    # μ-law: 0 -> 0xFF, full scale -> 0x80/0x00; A-law: 0 -> 0xD5 (G.711 even-bit inversion).
    assert ulaw_encode(pcm(0, 32767, -32768, -1)) == bytes([0xFF, 0x80, 0x00, 0x7E])  # -1 as stdlib audioop codes it
    assert alaw_encode(pcm(0, 32767, -32768)) == bytes([0xD5, 0xAA, 0x2A])
    assert np.frombuffer(ulaw_decode(bytes([0x80, 0x00, 0xFF])), np.int16).tolist() == [32124, -32124, 0]
    assert np.frombuffer(alaw_decode(bytes([0xAA, 0x2A, 0xD5])), np.int16).tolist() == [32256, -32256, 8]


def test_g711_round_trip_error_is_small() -> None:
    x = (np.sin(np.linspace(0, 60, 8000)) * 20000).astype(np.int16)
    for enc, dec in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        y = np.frombuffer(dec(enc(x.tobytes())), np.int16).astype(np.int32)
        err = np.abs(y - x)
        assert err.max() <= np.abs(x).max() / 32 + 16  # companding keeps relative error under ~3 %


def tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16)


def stream(resampler: StreamResampler, x: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(x[i : i + chunk].tobytes()) for i in range(0, len(x), chunk)]
    return np.frombuffer(b"".join(parts), np.int16)


def test_resampler_chunks_are_exact_and_continuous() -> None:
    up = StreamResampler(8000, 16000)
    out = [len(up.process(tone(440, 8000)[:160].tobytes())) for _ in range(5)]
    assert out == [640] * 5  # 20 ms in, 20 ms out, from the first chunk on
    y = stream(StreamResampler(8000, 16000), tone(440, 8000), 160)
    assert len(y) == 16000
    # No clicks at chunk borders: sample-to-sample steps stay within what a 440 Hz sine can do.
    assert np.abs(np.diff(y[100:].astype(np.int32))).max() < 10000 * 2 * np.pi * 440 / 16000 * 1.2


def test_downsampling_keeps_speech_band_and_removes_alias() -> None:
    kept = stream(StreamResampler(16000, 8000), tone(1000, 16000), 320)
    assert len(kept) == 8000 and np.abs(kept[100:]).max() > 9000
    aliased = stream(StreamResampler(16000, 8000), tone(6000, 16000), 321)  # odd chunks too
    assert len(aliased) == 8000 and np.abs(aliased[100:]).max() < 500


def test_the_telephone_band_passes_whole_both_ways() -> None:
    # Consonants live at 2-3.4 kHz: the former short filter took 2.6 dB off 3.4 kHz each way, which cost Whisper.
    for hz in (300.0, 1000.0, 3000.0, 3400.0):
        down = stream(StreamResampler(16000, 8000), tone(hz, 16000), 320)
        up = stream(StreamResampler(8000, 16000), down, 160)
        assert np.abs(up[400:]).max() > 10000 * 0.93, hz  # within 0.6 dB after both directions
    up = stream(StreamResampler(8000, 16000), tone(3900, 8000), 160)
    image = np.abs(np.fft.rfft(up[400:].astype(np.float64)))
    freqs = np.fft.rfftfreq(len(up) - 400, 1 / 16000)
    assert image[freqs > 4000].max() < 0.1 * image[freqs < 4000].max()  # the image at 4.1 kHz is at least 20 dB down


def test_silence_between_sounds_resamples_as_the_filter_would() -> None:
    """Silent chunks skip the filter once its history is silent too; the output is the same to the sample, in
    chunks of odd and even length, while the filter still rings out after a sound and after it."""
    rng = np.random.default_rng(3)
    sound = (rng.normal(0, 3000, 500)).astype(np.int16)
    signal = np.concatenate([np.zeros(333), sound, np.zeros(1001), sound[:77], np.zeros(640)]).astype(np.int16)
    sizes = [160, 161, 159, 320, 7, 1000, 160, 2, 480, 102]  # the whole signal
    for in_rate, out_rate in ((8000, 16000), (16000, 8000)):
        whole, chunked = StreamResampler(in_rate, out_rate), StreamResampler(in_rate, out_rate)
        whole._silent = False  # never takes the shortcut
        start, got, expected = 0, [], []
        for size in sizes:
            chunk = signal[start : start + size].tobytes()
            start += size
            whole._silent = False
            expected.append(whole.process(chunk))
            got.append(chunked.process(chunk))
        assert start == len(signal) and got == expected
