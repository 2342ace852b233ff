"""`voicebot dial` against sipp's built-in answering scenario with RTP echo: what we play comes back."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from net_helpers import free_port


def voicebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicebot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)")
def test_dial_plays_and_records_through_an_echoing_peer(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "tone.wav", (np.sin(2 * np.pi * 600 * t) * 12000).astype(np.int16), 16000)
    port = free_port()
    sipp = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()),
                             "-rtp_echo", "-m", "1", "-nostdin", "-timeout", "30s"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = voicebot("dial", f"sip:echo@127.0.0.1:{port}", "--play", "tone.wav", "--record", "heard.wav",
                       "--wait", "1", cwd=tmp_path)
        # sipp may not yet listen when dial sends its INVITE: the INVITE is retransmitted, so this still works.
        assert res.returncode == 0, res.stderr
        assert sipp.wait(timeout=30) == 0
    finally:
        if sipp.poll() is None:
            sipp.kill()
    heard, rate = sf.read(tmp_path / "heard.wav", dtype="int16")
    loud = heard[np.abs(heard) > 3000]
    assert rate == 16000 and len(loud) > 0.3 * 16000
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    assert abs(np.argmax(spectrum) * rate / len(heard) - 600) < 10


def test_dial_failures_are_reported_without_traceback(tmp_path: Path) -> None:
    res = voicebot("dial", f"sip:nobody@127.0.0.1:{free_port()}", "--ring-timeout", "1", cwd=tmp_path)
    assert res.returncode == 1 and "failed: 408" in res.stderr and "Traceback" not in res.stderr
    res = voicebot("dial", "mailto:x@y", cwd=tmp_path)
    assert res.returncode == 1 and "not a sip: URI" in res.stderr
    res = voicebot("dial", "sip:1@x", "--trunk", "nope", cwd=tmp_path)
    assert res.returncode == 1 and "no trunk named 'nope'" in res.stderr
