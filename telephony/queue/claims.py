"""Who may ring an agent: one owner at a time, across every ACD that knows the agent.

On one node the ACD alone decides and :class:`LocalAgentClaims` grants every claim (today's behaviour). In a
cluster each node's ACD knows every agent, so before ringing one the runner claims it in a shared store
(``voicebot.cluster.redis_state.RedisAgentClaims``: a Redis lease with a fencing token). A refused claim means
the agent rings or talks on another node: the ACD counts the agent busy for a while and tries the next one
(:meth:`telephony.queue.acd.ACD.agent_elsewhere`). The claim is given back when the agent is neither ringing
nor busy any more on the node holding it; a node that dies stops renewing its leases, so its agents come free.
A claim that cannot be checked (the shared store unreachable) is refused, never granted blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Claim:
    """The right to ring and connect ``agent_id``, held for ``call_id``; ``token`` grows with every claim granted
    (a fencing token: a late write of an older holder is recognisable)."""

    agent_id: str
    call_id: str
    token: int


class AgentClaims(Protocol):
    def claim(self, agent_id: str, call_id: str) -> Claim | None:
        """The agent for this node, or None when another node holds it. Holding it already: the same claim."""

    def release(self, agent_id: str) -> None:
        """Give the agent back (this node's claim only; nothing if it holds none)."""


class LocalAgentClaims:
    """One node: its ACD is the only one, every claim is granted."""

    def __init__(self) -> None:
        self._token = 0
        self.held: dict[str, Claim] = {}

    def claim(self, agent_id: str, call_id: str) -> Claim | None:
        if agent_id not in self.held:
            self._token += 1
            self.held[agent_id] = Claim(agent_id, call_id, self._token)
        return self.held[agent_id]

    def release(self, agent_id: str) -> None:
        self.held.pop(agent_id, None)
