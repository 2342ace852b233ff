"""Capacity of a cluster (`voicebot cluster up`) under independent SIP callers; prints JSON.

    python benchmarks/cluster_capacity.py            # 3 nodes, 4 to 24 offered calls in steps of 4, 90 s each

Each caller is a sipp process (not the project's SIP stack) placing one call through Kamailio with its own XML
scenario (INVITE, ACK along the Record-Route, BYE when its recording is over, or 200 to the bot's BYE). The SDP
it offers names a UDP socket of this script as the caller's media: the bot answers RTP to where RTP comes from
(symmetric RTP), so mouth and ear must be one socket, and sipp's own `rtp_stream` would take the bot's audio
away from the ear. That socket streams a mu-law recording of 4 caller turns (espeak-ng) with pauses for the
bot's replies, paced at 20 ms, and timestamps every packet of the bot's. Calls arrive as a Poisson process.

The load steps up without a pause: stage k offers ``levels[k]`` concurrent calls on average (arrival rate =
level / call length) for ``--stage-s`` seconds, and calls of the stage before go on into it, so the cluster never
drains between stages. Every figure belongs to the stage whose time window it falls in: a reply latency (end
of a caller turn to the first loud bot packet after it) to the window the turn ended in, an RTP gap > 100 ms
while the bot talks to the window it ended in, a dropped call (sipp failed) to the window it failed in,
concurrency, CPU and memory to the window they were sampled in. A stage (or a node in it) "passes" with p95 <
1.2 s, no drop and no gap; the run stops after the first stage the cluster fails (``--keep-going``: it does not).

Per stage, for the cluster and per node (the node is known from the RTP source port: each node has its own
range): those figures (a reply starts at a loud bot packet after at least 0.3 s without one), mean and peak
concurrency, CPU seconds per call-minute and CPU cores per concurrent call
of the nodes, Kamailio, PostgreSQL and Redis, RSS growth per concurrent call of the nodes.
``sustained_concurrent_calls`` is the mean concurrency of the last stage passed before the first failure,
``per_call`` that stage's CPU and memory per call; ``per_node`` the same for each node (in the last stage it
passed). The whole run takes about ``levels x stage-s`` plus 1-2 minutes to start the cluster.

The machine is shared: run it on purpose, on an idle machine for figures worth writing down, and say the load it
ran under (``machine.loadavg_before``).
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
ONSET_QUIET_S = 0.3  # the bot quiet this long before a loud packet: it starts a new utterance there

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
    cut: bool = False  # ended by the benchmark stopping, not by itself (not a drop)
    t0: float | None = None
    ended_at: float | None = None
    proc: asyncio.subprocess.Process | None = None

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
    proc = call.proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.DEVNULL,
                                                            stderr=asyncio.subprocess.DEVNULL)
    code = await proc.wait()
    call.ended_at = time.time()
    call.ok = code == 0
    transport.close()
    if media_protocol.sender is not None:
        media_protocol.sender.cancel()


def analyse_call(call: Call, ends: list[float]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(reply latencies, RTP gaps > 100 ms while the bot talks) of one call, each as (when, seconds): a latency at
    the end of the caller's turn, a gap at its last packet."""
    latencies: list[tuple[float, float]] = []
    gaps: list[tuple[float, float]] = []
    if call.t0 is None or not call.packets:
        return latencies, gaps
    # Where the bot starts saying something: a loud packet after ONSET_QUIET_S without one (a packet right after
    # the turn's end while the bot still finishes an earlier sentence is not its reply).
    onsets, last_loud = [], None
    for t, _, loud in call.packets:
        if loud:
            if last_loud is None or t - last_loud >= ONSET_QUIET_S:
                onsets.append(t)
            last_loud = t
    for end in ends:
        at = call.t0 + end
        first = next((t for t in onsets if t >= at), None)
        if first is not None and first - at < REPLY_S:
            latencies.append((at, first - at))
    # Gaps inside the bot's speech: between packets less than 1 s after a loud one (a pause in RTP mid-reply).
    last_loud = None
    previous = None
    for t, _, loud in call.packets:
        if previous is not None and last_loud is not None and t - last_loud < 1.0 and t - previous > GAP_S:
            gaps.append((t, t - previous))
        if loud:
            last_loud = t
        previous = t
    return latencies, gaps


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summarise(calls: list[Call], ends: list[float], window: tuple[float, float]) -> dict[str, Any]:
    """Drops, reply latencies and RTP gaps of ``calls`` that fall in ``window`` (start, end)."""
    lo, hi = window
    latencies: list[float] = []
    gaps: list[float] = []
    for c in calls:
        lat, gap = analyse_call(c, ends)
        latencies += [v for t, v in lat if lo <= t < hi]
        gaps += [v for t, v in gap if lo <= t < hi]
    return {
        "calls_placed": sum(1 for c in calls if lo <= c.placed_at < hi),
        "dropped": sum(1 for c in calls if not c.ok and not c.cut and c.ended_at is not None and lo <= c.ended_at < hi),
        "turns_timed": len(latencies),
        "reply_p50_s": pct(latencies, 0.5),
        "reply_p95_s": pct(latencies, 0.95),
        "rtp_gaps_over_100ms": len(gaps),
        "max_rtp_gap_s": round(max(gaps), 3) if gaps else None,
    }


def passes(summary: dict[str, Any]) -> bool:
    return bool(summary["reply_p95_s"] is not None and summary["reply_p95_s"] < 1.2 and summary["dropped"] == 0
                and summary["rtp_gaps_over_100ms"] == 0)


@dataclass
class Window:
    """What was sampled during one stage's time window."""

    level: float
    start: float
    end: float = 0.0
    concurrency: list[int] = field(default_factory=list)
    node_concurrency: dict[str, list[int]] = field(default_factory=dict)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    rss_peak: dict[str, float] = field(default_factory=dict)


def cpu_now(info: ClusterInfo) -> dict[str, float]:
    """CPU seconds so far of each part (``nodes`` summed, and each node by its id)."""
    out = {"nodes": 0.0, "kamailio": cpu_seconds(info.pids["kamailio"]), "postgres": cpu_seconds(info.pids["postgres"]),
           "redis": cpu_seconds(info.pids["redis"])}
    for n in info.nodes:
        out[n.node_id] = cpu_seconds(n.pid)
        out["nodes"] += out[n.node_id]
    return out


async def run(levels: list[float], stage_s: float, info: ClusterInfo, workdir: Path, scenario: Path, audio: bytes,
              ends: list[float], call_s: float, ranges: dict[str, tuple[int, int]],
              keep_going: bool) -> list[dict[str, Any]]:
    """Step the offered load up through ``levels`` without draining; stop after the first stage that fails
    (known ``REPLY_S`` into the next stage, once the replies to its last turns are in)."""
    rss_idle = {n.node_id: rss_mb(n.pid) for n in info.nodes}
    calls: list[Call] = []
    tasks: list[asyncio.Task] = []
    stages: list[dict[str, Any]] = []
    previous: Window | None = None

    def judge(window: Window) -> bool:
        stages.append(report(window, calls, ends, ranges, rss_idle))
        ok = bool(stages[-1]["passes"])
        print(f"stage {window.level:g}: {'passes' if ok else 'fails'} (p95 {stages[-1]['reply_p95_s']} s, "
              f"{stages[-1]['dropped']} dropped, {stages[-1]['rtp_gaps_over_100ms']} gaps)", file=sys.stderr)
        return ok or keep_going

    for level in levels:
        window = Window(level, time.time(), node_concurrency={n: [] for n in ranges}, cpu_start=cpu_now(info),
                        rss_peak=dict(rss_idle))
        print(f"stage: {level:g} concurrent calls offered for {stage_s:.0f} s", file=sys.stderr)
        rate = level / call_s
        next_at = window.start + random.expovariate(rate)
        go_on = True
        while (now := time.time()) < window.start + stage_s:
            if previous is not None and now >= window.start + REPLY_S:
                go_on, previous = judge(previous), None
                if not go_on:
                    break
            if now >= next_at:
                call = Call(len(calls) + 1, now, free_port())
                calls.append(call)
                tasks.append(asyncio.create_task(place(call, workdir, scenario, audio, info.kamailio)))
                next_at = now + random.expovariate(rate)
            sample(window, calls, tasks, info, ranges)
            await asyncio.sleep(min(0.25, max(0.0, next_at - time.time())))
        if not go_on:
            break
        window.end = time.time()
        window.cpu_end = cpu_now(info)
        previous = window
    if previous is not None:  # the last stage: the replies to its last turns still arrive (its calls go on)
        await asyncio.sleep(REPLY_S)
        judge(previous)
    for c in calls:  # the measurement is over: the calls still going are cut, not dropped
        if c.ended_at is None and c.proc is not None and c.proc.returncode is None:
            c.cut = True
            c.proc.terminate()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stages


def sample(window: Window, calls: list[Call], tasks: list[asyncio.Task], info: ClusterInfo,
           ranges: dict[str, tuple[int, int]]) -> None:
    active = [c for c, t in zip(calls, tasks, strict=True) if not t.done()]
    window.concurrency.append(len(active))
    nodes = [node_of(c.node_port(), ranges) for c in active]
    for node_id, samples in window.node_concurrency.items():
        samples.append(nodes.count(node_id))
    for n in info.nodes:
        window.rss_peak[n.node_id] = max(window.rss_peak[n.node_id], rss_mb(n.pid))


def report(window: Window, calls: list[Call], ends: list[float], ranges: dict[str, tuple[int, int]],
           rss_idle: dict[str, float]) -> dict[str, Any]:
    """One stage's figures, for the cluster and per node."""
    span = (window.start, window.end)
    seconds = window.end - window.start
    cpu = {k: round(window.cpu_end[k] - window.cpu_start[k], 2) for k in window.cpu_start}
    mean = statistics.fmean(window.concurrency) if window.concurrency else 0.0
    peak = max(window.concurrency, default=0)
    call_minutes = mean * seconds / 60
    cluster = summarise(calls, ends, span)
    growth = sum(window.rss_peak[k] - rss_idle[k] for k in rss_idle)
    cluster.update({
        "offered_concurrency": window.level,
        "mean_concurrency": round(mean, 2),
        "peak_concurrency": peak,
        "seconds": round(seconds, 1),
        "cpu_s": {k: v for k, v in cpu.items() if k in ("nodes", "kamailio", "postgres", "redis")},
        "cpu_s_per_call_minute": {k: round(cpu[k] / call_minutes, 2) if call_minutes else None
                                  for k in ("nodes", "kamailio", "postgres", "redis")},
        "cpu_cores_per_call": {k: round(cpu[k] / seconds / mean, 3) if mean else None
                               for k in ("nodes", "kamailio", "postgres", "redis")},
        "node_rss_mb_idle": {k: round(v) for k, v in rss_idle.items()},
        "node_rss_mb_per_concurrent_call": round(growth / peak, 1) if peak else None,
        "passes": passes(cluster),
    })
    by_node: dict[str, list[Call]] = {n: [] for n in ranges}
    for c in calls:
        node = node_of(c.node_port(), ranges)
        if node is not None:
            by_node[node].append(c)
    cluster["per_node"] = {n: per_node(summarise(cs, ends, span), window.node_concurrency[n], seconds,
                                       cpu.get(n, 0.0), rss_idle.get(n, 0.0), window.rss_peak.get(n, 0.0))
                           for n, cs in by_node.items()}
    return cluster


def node_of(port: int | None, ranges: dict[str, tuple[int, int]]) -> str | None:
    """The node whose RTP range holds ``port`` (where the bot's audio of a call comes from)."""
    return next((n for n, (lo, hi) in ranges.items() if port is not None and lo <= port <= hi), None)


def per_node(summary: dict[str, Any], samples: list[int], seconds: float, cpu_s: float, rss_idle: float,
             rss_peak: float) -> dict[str, Any]:
    """One node's figures of a stage: its calls' summary, concurrency, CPU and memory per call, and whether it
    passed."""
    mean = statistics.fmean(samples) if samples else 0.0
    peak = max(samples, default=0)
    minutes = mean * seconds / 60
    return {
        **summary,
        "mean_concurrency": round(mean, 2),
        "peak_concurrency": peak,
        "cpu_s": cpu_s,
        "cpu_s_per_call_minute": round(cpu_s / minutes, 2) if minutes else None,
        "cpu_cores_per_call": round(cpu_s / seconds / mean, 3) if mean else None,
        "rss_mb_idle": round(rss_idle),
        "rss_mb_per_concurrent_call": round((rss_peak - rss_idle) / peak, 1) if peak else None,
        "passes": passes(summary) and peak > 0,
    }


def node_rtp_ranges(base: Path, info: ClusterInfo) -> dict[str, tuple[int, int]]:
    """Each node's RTP port range, from the environment the launcher gave it (/proc/PID/environ)."""
    ranges = {}
    for n in info.nodes:
        env = dict(item.split("=", 1) for item in Path(f"/proc/{n.pid}/environ").read_bytes().decode(
            errors="replace").split("\0") if "=" in item)
        ranges[n.node_id] = (int(env["VOICEBOT_SIP__RTP_PORT_MIN"]), int(env["VOICEBOT_SIP__RTP_PORT_MAX"]))
    return ranges


def sustained(stages: list[dict[str, Any]], ranges: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """The headline figures: the last stage passed before the first failure, for the cluster and each node."""
    passed: list[dict[str, Any]] = []
    for st in stages:
        if not st["passes"]:
            break
        passed.append(st)
    best = passed[-1] if passed else None
    first_failure = next((st for st in stages if not st["passes"]), None)
    nodes = {}
    for n in ranges:
        ok = [st["per_node"][n] for st in passed if st["per_node"][n]["passes"]]
        node_best = ok[-1] if ok else None
        nodes[n] = {
            "sustained_concurrent_calls": node_best["mean_concurrency"] if node_best else 0,
            "cpu_cores_per_call": node_best["cpu_cores_per_call"] if node_best else None,
            "cpu_s_per_call_minute": node_best["cpu_s_per_call_minute"] if node_best else None,
            "rss_mb_per_concurrent_call": node_best["rss_mb_per_concurrent_call"] if node_best else None,
        }
    return {
        "sustained_concurrent_calls": best["mean_concurrency"] if best else 0,
        "sustained_at_offered": best["offered_concurrency"] if best else None,
        "first_failing_stage": None if first_failure is None else {
            k: first_failure[k] for k in ("offered_concurrency", "mean_concurrency", "reply_p95_s", "dropped",
                                          "rtp_gaps_over_100ms")},
        "per_call": None if best is None else {
            "node_cpu_cores": best["cpu_cores_per_call"]["nodes"],
            "node_cpu_s_per_call_minute": best["cpu_s_per_call_minute"]["nodes"],
            "node_rss_mb": best["node_rss_mb_per_concurrent_call"],
            "cpu_cores": best["cpu_cores_per_call"],
        },
        "per_node": nodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--levels", default="4,8,12,16,20,24",
                        help="Offered concurrent calls of the stages, in order (comma-separated).")
    parser.add_argument("--stage-s", type=float, default=90.0, help="Seconds each stage lasts.")
    parser.add_argument("--keep-going", action="store_true", help="Run every stage, also after one failed.")
    parser.add_argument("--config", type=Path, default=None, help="voicebot.yaml for the nodes.")
    parser.add_argument("--base-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for program in ("sipp", "espeak-ng", "sox"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is needed (apt-get install sip-tester espeak-ng sox)")
    try:
        levels = [float(x) for x in args.levels.split(",")]
    except ValueError:
        sys.exit(f"--levels: comma-separated numbers, not {args.levels!r}")
    if not levels or any(level <= 0 for level in levels) or args.stage_s <= 0:
        sys.exit("--levels and --stage-s must be positive")
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="cluster-capacity-"))
    audio, ends, length = make_audio(work)
    call_s = length + 1.0
    scenario = work / "caller.xml"
    scenario.write_text(SCENARIO.replace("@CALL_MS@", str(int(call_s * 1000))))
    base = args.base_dir or work / "cluster"
    load_before = os.getloadavg()
    started = time.time()
    info = up(args.nodes, base, args.config, progress=lambda line: print(line, file=sys.stderr))
    try:
        ranges = node_rtp_ranges(base, info)
        stages = asyncio.run(run(levels, args.stage_s, info, work, scenario, audio.read_bytes(), ends, call_s,
                                 ranges, args.keep_going))
        print(json.dumps({
            "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
            "nodes": args.nodes,
            "call_s": round(call_s, 1),
            "caller_turns": len(TURNS),
            "stage_s": args.stage_s,
            "run_s": round(time.time() - started),
            **sustained(stages, ranges),
            "stages": stages,
        }, indent=2))
    finally:
        down(base, purge=args.base_dir is None, progress=lambda line: print(line, file=sys.stderr))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
