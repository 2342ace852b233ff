"""Warm transfer end to end through ``voicebot serve``: a baresip caller asks for a human (synthesised speech),
the bot announces the hand-off, the queue rings a baresip agent in auto-answer mode, the agent hears the
whisper (Piper speech of the hand-off summary, transcribed here), then the caller hears the agent. The call
record says ``handoff`` and the transfer record names the agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS_YAML
from net_helpers import free_port, rtp_ports, sip_port
from test_telephony_baresip import transcribe
from test_transfer_live import AGENT_HZ, frames_at, tone

from audio.speech import espeak_ng

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]



def baresip_config(folder: Path, listen: int, wav: Path, rec: Path, account: str) -> None:
    folder.mkdir()
    rec.mkdir()
    (folder / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{listen}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{wav}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "sndfile", "account", "menu"))
        + f"snd_path {rec}\n"
    )
    (folder / "accounts").write_text(account + "\n")


def get(url: str, auth: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=5) as res:
        return json.loads(res.read())


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(url, {})
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_caller_asking_for_a_human_is_warm_transferred_to_a_sip_agent(tmp_path: Path) -> None:
    port, http, agent_port = sip_port(), free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    rtp = rtp_ports(200)
    rate = 8000
    # The agent: silent while the whisper plays, then 4 s of 3000 Hz, then says hello, then hangs up.
    hello, _ = espeak_ng("Hello, this is Alice from customer care.", rate=150, sample_rate=rate)
    sf.write(str(tmp_path / "agent.wav"),
             np.concatenate([np.zeros(9 * rate, np.int16), tone(AGENT_HZ, 4, rate), np.zeros(rate // 2, np.int16),
                             (hello * 20000).astype(np.int16), np.zeros(2 * rate, np.int16)]),
             rate, subtype="PCM_16")
    baresip_config(tmp_path / "agent", agent_port, tmp_path / "agent.wav", tmp_path / "agent_rec",
                   f"<sip:alice@127.0.0.1:{agent_port}>;regint=0;answermode=auto")
    # The caller: waits for the greeting, asks for a person, then listens.
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(tmp_path / "say.wav"),
                    "I want to speak to a human."], check=True)
    subprocess.run(["sox", str(tmp_path / "say.wav"), "-r", "8000", "-c", "1", "-b", "16", str(tmp_path / "in.wav"),
                    "pad", "6", "40"], check=True)
    baresip_config(tmp_path / "caller", free_port(socket.SOCK_DGRAM), tmp_path / "in.wav", tmp_path / "caller_rec",
                   "<sip:5550199@127.0.0.1>;regint=0")
    (tmp_path / "voicebot.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path}/voicebot.db\n  seed_demo: true\n"
        f"server:\n  host: 127.0.0.1\n  port: {http}\n"
        f"sip:\n  listen_udp: 127.0.0.1:{port}\n  listen_tcp: 127.0.0.1:{port}\n"
        f"  rtp_port_min: {rtp['rtp_port_min']}\n  rtp_port_max: {rtp['rtp_port_max']}\n"
        f"agents:\n  - id: alice\n    name: Alice Smith\n    contact: sip:alice@127.0.0.1:{agent_port}\n"
        f"    logged_in: true\n"
        f"queues:\n  - name: general\n    agent_timeout: 10\n    max_wait: 60\n" + CALL_FLOW_MODELS_YAML
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    agent = subprocess.Popen(["baresip", "-f", str(tmp_path / "agent"), "-t", "120"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        wait_http(f"http://127.0.0.1:{http}/healthz")
        add_user(f"sqlite:///{tmp_path}/voicebot.db", "sup", "supervisor")
        auth = login(f"http://127.0.0.1:{http}", "sup")
        assert get(f"http://127.0.0.1:{http}/api/agents", auth)["agents"][0]["state"] == "available"
        phone = subprocess.run(["baresip", "-f", str(tmp_path / "caller"), "-e", f"/dial sip:bot@127.0.0.1:{port}",
                                "-t", "60"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
        assert "Call established" in phone.stdout, phone.stdout[-2000:]
        calls = get(f"http://127.0.0.1:{http}/api/calls", auth)
        assert len(calls) == 1
        call = get(f"http://127.0.0.1:{http}/api/calls/{calls[0]['id']}", auth)
        transfer = get(f"http://127.0.0.1:{http}/api/calls/{calls[0]['id']}/transfer", auth)
        stats = get(f"http://127.0.0.1:{http}/api/queues/general/stats", auth)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            rest, _ = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            rest, _ = server.communicate()
        log.append(rest or "")
        agent.terminate()
        agent.communicate(timeout=10)

    server_log = "".join(log)
    assert call["outcome"] == "handoff", (call, server_log[-3000:])
    assert call["agent_id"] == "alice"
    assert "Traceback" not in server_log, server_log[-3000:]
    assert transfer["agent_id"] == "alice" and transfer["outcome"] == "answered", transfer
    assert transfer["talk_s"] > 3 and transfer["wait_s"] < 10
    assert stats["answered"] == 1 and stats["average_handle_time_s"] is not None
    # The bot stayed out of the conversation but transcribed it: the agent's hello is in the record.
    agent_said = " ".join(t["text"] for t in transfer["transcript"] if t["speaker"] == "agent").lower()
    assert "alice" in agent_said or "customer care" in agent_said, transfer["transcript"]

    heard_by_agent = next((tmp_path / "agent_rec").glob("dump-*-dec.wav"))
    whisper = transcribe(heard_by_agent).lower()
    assert "person" in whisper or "human" in whisper, whisper  # the summary: "... asked for a person."
    heard_by_caller, caller_rate = sf.read(str(next((tmp_path / "caller_rec").glob("dump-*-dec.wav"))), dtype="int16")
    assert frames_at(heard_by_caller, caller_rate, AGENT_HZ) > 100, server_log[-3000:]  # the agent, via the bridge
