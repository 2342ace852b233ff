"""Capacity of a cluster (`voicebot cluster up`) under independent SIP callers; prints JSON.

    python benchmarks/cluster_capacity.py --nodes 3 --levels 2,4,6 --stage-s 60

Each caller is a sipp process (not the project's SIP stack) placing one call through Kamailio with its own XML
scenario (INVITE, ACK along the Record-Route, BYE when its recording is over, or 200 to the bot's BYE). The SDP
it offers names a UDP socket of this script as the caller's media: the bot answers RTP to where RTP comes from
(symmetric RTP), so mouth and ear must be one socket, and sipp's own `rtp_stream` would take the bot's audio
away from the ear. That socket streams a mu-law recording of 4 caller turns (espeak-ng) with pauses for the
bot's replies, paced at 20 ms, and timestamps every packet of the bot's. Calls arrive as a Poisson process; a
stage offers ``level`` concurrent calls on average (rate = level / call length).

Per stage, for the cluster and per node (the node is known from the RTP source port: each node has its own
range): calls placed, dropped (sipp failed), p50/p95 reply latency (end of a caller turn to the first loud bot
packet after it), RTP gaps > 100 ms while the bot talks, mean and peak concurrency; CPU seconds per call-minute
of the nodes, Kamailio, PostgreSQL and Redis; RSS growth per concurrent call of the nodes; per node also its
mean and peak concurrency, CPU seconds per call-minute and RSS growth per concurrent call. A stage (or a node in
it) "passes" with p95 < 1.2 s, no drop and no gap; ``sustained_concurrent_calls`` is the highest passing stage's
mean concurrency, ``sustained_concurrent_calls_per_node`` each node's in the highest stage it passed.

The machine is shared: run it on purpose, briefly, and say the load it ran under.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from telephony.codecs import ulaw_decode  # noqa: E402
from voicebot.cluster.launcher import ClusterInfo, down, up  # noqa: E402

TURNS = [
    "Hello, I would like to know where my order is.",
    "The order number is four five two eight one.",
    "When will it arrive?",
    "Thank you, that is all. Goodbye.",
]
GREETING_S = 14.0  # silence while the bot greets (the demo greeting with its disclosure takes ~12 s)
REPLY_S = 8.0  # silence after each turn while the bot answers
LOUD = 500.0  # RMS of a 20 ms frame that counts as the bot speaking
GAP_S = 0.100

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cluster capacity caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:bot@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 53655765 2353687637 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [sink_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <!-- The caller talks (RTP from the benchmark) for the length of its recording, then hangs up; a bot that
       says goodbye first sends BYE, which ends the call normally too. -->
  <recv request="BYE" timeout="@CALL_MS@" ontimeout="1"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <nop next="2"/>
  <label id="1"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <label id="2"/>
</scenario>
"""


@dataclass
class Call:
    number: int
    placed_at: float
    sink_port: int
    packets: list[tuple[float, int, bool]] = field(default_factory=list)  # (arrival, source port, loud)
    ok: bool = False
    t0: float | None = None
    ended_at: float | None = None

    def node_port(self) -> int | None:
        return self.packets[0][1] if self.packets else None


class CallerMedia(asyncio.DatagramProtocol):
    """The caller's mouth and ear on one UDP socket (the bot answers RTP to where it comes from): from the bot's
    first packet on, streams the recording as 20 ms PCMU packets, and timestamps every packet of the bot's."""

    def __init__(self, call: Call, audio: bytes):
        self.call = call
        self.audio = audio
        self.transport: asyncio.DatagramTransport | None = None
        self.sender: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    async def speak(self, to: tuple[str, int], t0: float) -> None:
        ssrc = random.getrandbits(32)
        for i in range(len(self.audio) // 160):
            header = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, ssrc)
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.sendto(header + self.audio[i * 160:(i + 1) * 160], to)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.time()))

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.time()
        if self.sender is None:
            self.call.t0 = now  # the bot sends from its answer on: the caller starts its recording then
            self.sender = asyncio.get_running_loop().create_task(self.speak(addr, now))
        payload = data[12:]
        pcm = np.frombuffer(ulaw_decode(payload), np.int16).astype(np.float64)
        loud = bool(len(pcm)) and float(np.sqrt((pcm**2).mean())) > LOUD
        self.call.packets.append((now, addr[1], loud))


def make_audio(folder: Path) -> tuple[Path, list[float], float]:
    """The caller's recording (raw mu-law 8 kHz), the end offsets of its turns, and its length in seconds."""
    pieces: list[bytes] = [b"\xff" * int(8000 * GREETING_S)]
    ends: list[float] = []
    offset = GREETING_S
    for i, text in enumerate(TURNS):
        wav, raw = folder / f"turn{i}.wav", folder / f"turn{i}.ul"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "ul", str(raw)], check=True)
        speech = raw.read_bytes()
        pieces += [speech, b"\xff" * int(8000 * REPLY_S)]
        offset += len(speech) / 8000
        ends.append(offset)
        offset += REPLY_S
    path = folder / "caller.ul"
    path.write_bytes(b"".join(pieces))
    return path, ends, offset


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User+system CPU of ``pid`` and its process group's other members (Kamailio's and PostgreSQL's workers),
    reaped children included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == pid or int(fields[2]) == pid:  # fields[2]: process group
            # utime, stime, and those of exited children it reaped (PostgreSQL's per-connection backends)
            total += sum(int(x) for x in fields[11:15]) / tick
    return total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def place(call: Call, workdir: Path, scenario: Path, audio: bytes, front: str) -> None:
    loop = asyncio.get_running_loop()
    transport, media_protocol = await loop.create_datagram_endpoint(lambda: CallerMedia(call, audio),
                                                                    local_addr=("127.0.0.1", call.sink_port))
    media = free_port()
    cmd = ["sipp", front, "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1",
           "-mp", str(media),
           "-nostdin", "-recv_timeout", "20000", "-key", "caller", f"555{call.number:04d}",
           "-key", "sink_port", str(call.sink_port)]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    code = await proc.wait()
    call.ended_at = time.time()
    call.ok = code == 0
    transport.close()
    if media_protocol.sender is not None:
        media_protocol.sender.cancel()


def analyse_call(call: Call, ends: list[float]) -> tuple[list[float], list[float]]:
    """(reply latencies, RTP gaps > 100 ms while the bot talks) of one call."""
    latencies: list[float] = []
    gaps: list[float] = []
    if call.t0 is None or not call.packets:
        return latencies, gaps
    for end in ends:
        at = call.t0 + end
        first = next((t for t, _, loud in call.packets if loud and t >= at), None)
        if first is not None and first - at < REPLY_S:
            latencies.append(first - at)
    # Gaps inside the bot's speech: between packets less than 1 s after a loud one (a pause in RTP mid-reply).
    last_loud = None
    previous = None
    for t, _, loud in call.packets:
        if previous is not None and last_loud is not None and t - last_loud < 1.0 and t - previous > GAP_S:
            gaps.append(t - previous)
        if loud:
            last_loud = t
        previous = t
    return latencies, gaps


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summarise(calls: list[Call], ends: list[float], call_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    gaps: list[float] = []
    for c in calls:
        lat, gap = analyse_call(c, ends)
        latencies += lat
        gaps += gap
    return {
        "calls": len(calls),
        "dropped": sum(1 for c in calls if not c.ok),
        "turns_timed": len(latencies),
        "reply_p50_s": pct(latencies, 0.5),
        "reply_p95_s": pct(latencies, 0.95),
        "rtp_gaps_over_100ms": len(gaps),
        "max_rtp_gap_s": round(max(gaps), 3) if gaps else None,
    }


async def stage(level: float, duration_s: float, info: ClusterInfo, workdir: Path, scenario: Path, audio: bytes,
                ends: list[float], call_s: float, ranges: dict[str, tuple[int, int]]) -> dict[str, Any]:
    rate = level / call_s
    pids = {"nodes": [n.pid for n in info.nodes], "kamailio": [info.pids["kamailio"]],
            "postgres": [info.pids["postgres"]], "redis": [info.pids["redis"]]}
    cpu_before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    node_cpu_before = {n.node_id: cpu_seconds(n.pid) for n in info.nodes}
    rss_idle = {n.node_id: rss_mb(n.pid) for n in info.nodes}
    rss_peak = dict(rss_idle)
    calls: list[Call] = []
    tasks: list[asyncio.Task] = []
    concurrency: list[int] = []
    node_concurrency: dict[str, list[int]] = {n: [] for n in ranges}  # calls whose bot audio comes from the node
    start = time.time()
    next_at = start + random.expovariate(rate)
    while time.time() < start + duration_s or any(not t.done() for t in tasks):
        now = time.time()
        if now >= next_at and now < start + duration_s:
            call = Call(len(calls) + 1, now, free_port())
            calls.append(call)
            tasks.append(asyncio.create_task(place(call, workdir, scenario, audio, info.kamailio)))
            next_at = now + random.expovariate(rate)
        concurrency.append(sum(1 for t in tasks if not t.done()))
        active_nodes = [node_of(c.node_port(), ranges) for c, t in zip(calls, tasks, strict=True) if not t.done()]
        for node_id, samples in node_concurrency.items():
            samples.append(active_nodes.count(node_id))
        for n in info.nodes:
            rss_peak[n.node_id] = max(rss_peak[n.node_id], rss_mb(n.pid))
        await asyncio.sleep(0.25)
    elapsed = time.time() - start
    cpu = {k: round(sum(cpu_seconds(p) for p in v) - cpu_before[k], 2) for k, v in pids.items()}
    node_cpu = {n.node_id: round(cpu_seconds(n.pid) - node_cpu_before[n.node_id], 2) for n in info.nodes}
    call_minutes = sum(((c.ended_at or c.placed_at) - c.placed_at) for c in calls) / 60
    by_node: dict[str, list[Call]] = {n: [] for n in ranges}
    for c in calls:
        node = node_of(c.node_port(), ranges)
        if node is not None:
            by_node[node].append(c)
    cluster = summarise(calls, ends, call_s)
    peak = max(concurrency) if concurrency else 0
    mean = statistics.fmean(concurrency) if concurrency else 0.0
    cluster.update({
        "offered_concurrency": level,
        "mean_concurrency": round(mean, 2),
        "peak_concurrency": peak,
        "elapsed_s": round(elapsed, 1),
        "cpu_s": cpu,
        "cpu_s_per_call_minute": {k: round(v / call_minutes, 2) if call_minutes else None for k, v in cpu.items()},
        "node_rss_mb_idle": {k: round(v) for k, v in rss_idle.items()},
        "node_rss_mb_per_concurrent_call": round(sum(rss_peak[k] - rss_idle[k] for k in rss_idle) / peak, 1)
        if peak else None,
        "passes": bool(cluster["reply_p95_s"] is not None and cluster["reply_p95_s"] < 1.2
                       and cluster["dropped"] == 0 and cluster["rtp_gaps_over_100ms"] == 0),
        "per_node": {n: per_node(summarise(cs, ends, call_s), cs, node_concurrency[n], node_cpu.get(n, 0.0),
                                 rss_idle.get(n, 0.0), rss_peak.get(n, 0.0)) for n, cs in by_node.items()},
    })
    return cluster


def node_of(port: int | None, ranges: dict[str, tuple[int, int]]) -> str | None:
    """The node whose RTP range holds ``port`` (where the bot's audio of a call comes from)."""
    return next((n for n, (lo, hi) in ranges.items() if port is not None and lo <= port <= hi), None)


def per_node(summary: dict[str, Any], calls: list[Call], samples: list[int], cpu_s: float, rss_idle: float,
             rss_peak: float) -> dict[str, Any]:
    """One node's figures of a stage: its calls' summary, concurrency, CPU and memory per call, and whether it
    passed."""
    minutes = sum(((c.ended_at or c.placed_at) - c.placed_at) for c in calls) / 60
    peak = max(samples, default=0)
    return {
        **summary,
        "mean_concurrency": round(statistics.fmean(samples), 2) if samples else 0.0,
        "peak_concurrency": peak,
        "cpu_s": cpu_s,
        "cpu_s_per_call_minute": round(cpu_s / minutes, 2) if minutes else None,
        "rss_mb_idle": round(rss_idle),
        "rss_mb_per_concurrent_call": round((rss_peak - rss_idle) / peak, 1) if peak else None,
        "passes": bool(summary["reply_p95_s"] is not None and summary["reply_p95_s"] < 1.2
                       and summary["dropped"] == 0 and summary["rtp_gaps_over_100ms"] == 0),
    }


def node_rtp_ranges(base: Path, info: ClusterInfo) -> dict[str, tuple[int, int]]:
    """Each node's RTP port range, from the environment the launcher gave it (/proc/PID/environ)."""
    ranges = {}
    for n in info.nodes:
        env = dict(item.split("=", 1) for item in Path(f"/proc/{n.pid}/environ").read_bytes().decode(
            errors="replace").split("\0") if "=" in item)
        ranges[n.node_id] = (int(env["VOICEBOT_SIP__RTP_PORT_MIN"]), int(env["VOICEBOT_SIP__RTP_PORT_MAX"]))
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--levels", default="2,4", help="Offered concurrent calls per stage, comma-separated.")
    parser.add_argument("--stage-s", type=float, default=60.0, help="Seconds new calls arrive in each stage.")
    parser.add_argument("--config", type=Path, default=None, help="voicebot.yaml for the nodes.")
    parser.add_argument("--base-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for program in ("sipp", "espeak-ng", "sox"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is needed (apt-get install sip-tester espeak-ng sox)")
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="cluster-capacity-"))
    audio, ends, length = make_audio(work)
    call_s = length + 1.0
    scenario = work / "caller.xml"
    scenario.write_text(SCENARIO.replace("@CALL_MS@", str(int(call_s * 1000))))
    base = args.base_dir or work / "cluster"
    info = up(args.nodes, base, args.config, progress=lambda line: print(line, file=sys.stderr))
    try:
        ranges = node_rtp_ranges(base, info)
        load_before = os.getloadavg()
        stages = []
        for level in (float(x) for x in args.levels.split(",")):
            print(f"stage: {level} concurrent calls offered for {args.stage_s:.0f} s", file=sys.stderr)
            stages.append(asyncio.run(stage(level, args.stage_s, info, work, scenario, audio.read_bytes(), ends, call_s,
                                            ranges)))
        passing = [s for s in stages if s["passes"]]
        print(json.dumps({
            "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before]},
            "nodes": args.nodes,
            "call_s": round(call_s, 1),
            "caller_turns": len(TURNS),
            "stages": stages,
            "sustained_concurrent_calls": max((s["mean_concurrency"] for s in passing), default=0),
            "sustained_concurrent_calls_per_node": {
                n: max((s["per_node"][n]["mean_concurrency"] for s in stages if s["per_node"][n]["passes"]),
                       default=0) for n in ranges},
        }, indent=2))
    finally:
        down(base, purge=args.base_dir is None, progress=lambda line: print(line, file=sys.stderr))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
