"""audio.pcm: the one call-audio format and its helpers."""

import numpy as np

from audio import pcm


def test_format_constants_agree():
    assert pcm.FRAME_BYTES == 640
    assert pcm.FRAME_SAMPLES * pcm.SAMPLE_WIDTH == pcm.FRAME_BYTES
    assert pcm.BYTES_PER_MS * pcm.FRAME_MS == pcm.FRAME_BYTES
    assert pcm.duration_ms(pcm.silence(120)) == 120


def test_frames_pad_or_drop_the_tail():
    audio = bytes(range(256)) * 5  # 1280 bytes: two frames exactly
    assert pcm.frames(audio) == [audio[:640], audio[640:]]
    assert len(pcm.frames(audio + b"\1\2")) == 2
    padded = pcm.frames(audio + b"\1\2", pad=True)
    assert len(padded) == 3 and padded[2] == b"\1\2" + bytes(638)


def test_frame_splitter_keeps_the_remainder():
    split = pcm.FrameSplitter()
    assert split.feed(bytes(600)) == []
    out = split.feed(bytes(700))
    assert len(out) == 2 and all(len(f) == 640 for f in out)


def test_mix_adds_and_clips():
    a = np.array([1000, 30000, -30000, 5], dtype="<i2").tobytes()
    b = np.array([1000, 10000, -10000], dtype="<i2").tobytes()
    assert list(np.frombuffer(pcm.mix(a, b), "<i2")) == [2000, 32767, -32768, 5]
    assert pcm.mix(a, b"") == a


def test_resample_changes_length_by_the_ratio():
    tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440) * 8000).astype("<i2").tobytes()
    assert abs(len(pcm.resample(tone, 16000, 8000)) - len(tone) // 2) <= 4
    stream = pcm.StreamResampler(48000)
    out = b"".join(stream.process(bytes(1920)) for _ in range(200))
    assert abs(len(out) - 200 * 640) <= 4 * 640  # soxr holds back its filter delay


def test_first_channel_of_stereo():
    stereo = np.array([1, 2, 3, 4], dtype="<i2").tobytes()
    assert list(np.frombuffer(pcm.first_channel(stereo, 2), "<i2")) == [1, 3]
