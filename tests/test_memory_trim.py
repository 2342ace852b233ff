"""Memory a call frees goes back to the system: glibc keeps freed heap memory that is not at the heap's top (the
soak's server grew ~7 MB per call), so a call's end trims the heap (:mod:`voicebot.calls.heap`).

The first test shows the mechanism in a fresh interpreter (a clean heap): blocks freed between blocks that live on
stay resident until the trim. The second runs a real SIP call through the product's SIP server and call runner
(as ``test_faults.py`` does) and sees its end trigger a trim."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from net_helpers import free_port, rtp_ports

from audio import pcm
from telephony.config import SipConfig
from telephony.server import SipServer
from telephony.sip.ua import UserAgent
from voicebot.calls.heap import HEAP
from voicebot.config import Settings
from voicebot.runtime import Runtime
from voicebot.server.sip import sip_call_runner

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not HEAP.available, reason="needs glibc's malloc_trim")

# In a fresh interpreter: 3000 blocks of 100 KB (below glibc's mmap threshold: in the heap), each followed by a
# small block that lives on; the big ones are freed. The heap's resident size before and after the trim.
FRAGMENTED_HEAP = """
import json, re
from voicebot.calls.heap import HEAP

def heap_mb():
    rss, inside = 0, False
    for line in open("/proc/self/smaps"):
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.rstrip().endswith("[heap]")
        elif inside and line.startswith("Rss:"):
            rss += int(line.split()[1])
    return rss / 1024

start = heap_mb()
big, kept = [], []
for _ in range(3000):
    big.append(bytearray(b"x") * 100_000)
    kept.append(bytearray(b"y") * 2_000)
filled = heap_mb()
big.clear()
freed = heap_mb()
trim = HEAP.trim()
print(json.dumps({"start": start, "filled": filled, "freed": freed, "trimmed": heap_mb(),
                  "released": trim.released, "ms": trim.seconds * 1000}))
"""


def test_trim_gives_memory_freed_between_live_blocks_back() -> None:
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=600)  # importing voicebot is slow on a loaded machine
    mb = json.loads(out.stdout)
    assert mb["filled"] - mb["start"] > 250, mb
    # glibc keeps the freed blocks: they sit between live ones, none at the heap's top.
    assert mb["freed"] - mb["start"] > 250, mb
    assert mb["released"], mb
    assert mb["trimmed"] - mb["start"] < 40, mb


@pytest.mark.slow
@pytest.mark.timeout(900)  # loads Whisper, Piper and the dialog engine: minutes on a busy machine
def test_a_call_ending_trims_the_heap(tmp_path: Path) -> None:
    settings = Settings()  # type: ignore[call-arg]
    settings.database.url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    settings.call.greeting = "Hello, this is the shop."
    runtime = Runtime.load(settings, warm_up=False)

    async def call() -> int:
        port = free_port()
        settings.sip.listen_udp = f"127.0.0.1:{port}"
        settings.sip.listen_tcp = None
        settings.sip.rtp_port_min, settings.sip.rtp_port_max = rtp_ports(50).values()
        server = SipServer(settings.sip, [], sip_call_runner(runtime))
        await server.start()
        caller = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                     **rtp_ports(50)))
        await caller.start()
        try:
            leg = await caller.dial(f"sip:bot@127.0.0.1:{port}", caller="+15550000000", ring_timeout=20)
            heard = asyncio.Event()

            def ear(audio: bytes) -> None:
                if len(audio) and float(np.abs(np.frombuffer(audio, np.int16)).max()) > 1000:
                    heard.set()

            leg.add_sink(ear)
            await asyncio.wait_for(heard.wait(), 30)  # the greeting: the bot's pipeline is up
            trims = HEAP.trims
            await leg.hangup()
            end = time.monotonic() + 20
            while HEAP.trims == trims and time.monotonic() < end:
                await asyncio.sleep(pcm.FRAME_S)
            return HEAP.trims - trims
        finally:
            await caller.stop()
            await server.stop()

    try:
        assert asyncio.run(call()) >= 1, "the call ended without a heap trim"
    finally:
        runtime.close()
