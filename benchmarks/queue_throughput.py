"""Queue throughput: simulated callers and agents through the real ACD and runner on a simulated clock; prints JSON.

    python benchmarks/queue_throughput.py [--callers 20] [--agents 3] [--seed 1] [--strategy longest_idle]

Callers arrive at random (exponential gaps, mean --arrival s), each gives up after an exponential patience
(mean --patience s). Agents answer after --ring-delay s, miss a ring with probability --miss (then the queue
pauses them; they come back after --back s), talk for an exponential handle time (mean --handle s) and wrap
up for --wrap-up s. Results: calls handled / abandoned / timed out, mean and 95th percentile wait of answered
callers, the queue's service level, and how fast the state machine ran (actions and events it emitted per second of CPU time).
Everything is simulated time, so the numbers do not depend on the machine except ``events_per_cpu_s``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from telephony.queue.acd import ACD
from telephony.queue.actions import Action, AgentStateChanged, CallLeftQueue, Connect, RingAgent
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueHandlers, QueueRunner, SimulatedTime


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sim = SimulatedTime()
    queue = QueueConfig(
        name="general",
        strategy=args.strategy,
        agent_timeout=args.agent_timeout,
        wrap_up=args.wrap_up,
        max_wait=args.max_wait,
        announce_every=30,
        service_level_s=args.service_level,
    )
    agents = [AgentConfig(id=f"agent{i}", contact="webrtc", logged_in=True) for i in range(args.agents)]
    waits: list[float] = []
    events = 0
    runner: QueueRunner

    class SimulatedAgents(QueueHandlers):
        def ring(self, action: RingAgent) -> None:
            if rng.random() < args.miss:
                return  # the queue's no-answer timeout moves on
            sim.call_later(args.ring_delay, lambda: runner.agent_answered(action.call_id, action.agent_id))

        def connect(self, action: Connect) -> None:
            talk = caller_rng[action.call_id].expovariate(1 / args.handle)
            sim.call_later(talk, lambda: runner.hangup(action.call_id))

    def listen(action: Action) -> None:
        nonlocal events
        events += 1
        if isinstance(action, CallLeftQueue) and action.outcome == "answered":
            waits.append(action.wait_s)
        elif isinstance(action, AgentStateChanged) and action.state == "paused":
            sim.call_later(args.back, lambda: runner.set_agent_state(action.agent_id, "available"))

    acd = ACD(agents, [queue], sim.clock)
    runner = QueueRunner(acd, SimulatedAgents(), call_at=sim.call_at)
    runner.add_listener(listen)

    # Each caller's patience and talk time come from their own generator, so strategies see the same callers.
    caller_rng = {f"call{n}": random.Random(f"{args.seed}-{n}") for n in range(args.callers)}

    def arrive(n: int) -> None:
        call_id = f"call{n}"
        runner.enqueue(call_id, QueueRequest(queue="general", caller=f"+1555{n:04d}"))

        def give_up() -> None:
            if acd.position(call_id) is not None:
                runner.hangup(call_id)

        sim.call_later(caller_rng[call_id].expovariate(1 / args.patience), give_up)

    t = 0.0
    for n in range(args.callers):
        t += rng.expovariate(1 / args.arrival)
        sim.call_at(t, lambda n=n: arrive(n))
    cpu0 = time.process_time()
    while sim.next_timer() is not None:
        sim.run_until(sim.next_timer())  # type: ignore[arg-type]
    cpu = time.process_time() - cpu0
    stats = acd.queue_stats("general")
    waits.sort()
    return {
        "callers": args.callers,
        "agents": args.agents,
        "strategy": args.strategy,
        "seed": args.seed,
        "handled": stats["answered"],
        "abandoned": stats["abandoned"],
        "timed_out": stats["timed_out"],
        "mean_wait_s": round(statistics.fmean(waits), 1) if waits else None,
        "p95_wait_s": round(waits[min(len(waits) - 1, int(0.95 * len(waits)))], 1) if waits else None,
        "service_level": stats["service_level"],
        "service_level_s": args.service_level,
        "average_handle_time_s": stats["average_handle_time_s"],
        "simulated_s": round(sim.now, 1),
        "events": events,
        "cpu_s": round(cpu, 4),
        "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--callers", type=int, default=20)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--strategy", choices=["longest_idle", "round_robin", "ring_all"], default="longest_idle")
    p.add_argument("--arrival", type=float, default=50.0, help="mean seconds between callers")
    p.add_argument("--handle", type=float, default=120.0, help="mean talk time, seconds")
    p.add_argument("--patience", type=float, default=300.0, help="mean seconds a caller waits before hanging up")
    p.add_argument("--ring-delay", type=float, default=4.0)
    p.add_argument("--miss", type=float, default=0.05, help="probability an agent misses a ring")
    p.add_argument("--back", type=float, default=60.0, help="seconds a paused agent takes to come back")
    p.add_argument("--agent-timeout", type=float, default=15.0)
    p.add_argument("--wrap-up", type=float, default=10.0)
    p.add_argument("--max-wait", type=float, default=600.0)
    p.add_argument("--service-level", type=float, default=20.0)
    print(json.dumps(simulate(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
