"""What the ACD asks its driver to do (actions) and tells the rest of the product (events). Plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from telephony.queue.request import QueueRequest


@dataclass(frozen=True)
class RingAgent:
    """Offer a call to an agent: ring their SIP phone or agent page. Report back with
    ``agent_answered`` / ``agent_declined`` / ``agent_unreachable``."""

    call_id: str
    agent_id: str
    contact: str
    queue: str
    confirm: bool
    timeout_s: float
    request: QueueRequest = field(repr=False, compare=False)


@dataclass(frozen=True)
class StopRinging:
    """Withdraw an offer: hang up the agent's leg that was ringing or hearing the summary."""

    call_id: str
    agent_id: str
    reason: Literal["no_answer", "declined", "answered_elsewhere", "caller_left", "agent_left", "unreachable"]


@dataclass(frozen=True)
class Announce:
    """Tell a waiting caller their position (1 = next) and an estimated wait (None: unknown), then hold music."""

    call_id: str
    queue: str
    position: int
    estimated_wait_s: float | None
    callback_key: str | None
    first: bool


@dataclass(frozen=True)
class Connect:
    """The agent took the call: stop the hold music and bridge caller and agent."""

    call_id: str
    agent_id: str
    queue: str


@dataclass(frozen=True)
class Fallback:
    """The caller leaves the queue without an agent: ``callback`` (record a request), ``voicemail``, or
    ``none`` (apologise and end the call). ``agent_lost``: the agent's leg dropped and nobody else can serve."""

    call_id: str
    queue: str
    kind: Literal["callback", "voicemail", "none"]
    reason: Literal["max_wait", "caller_request", "no_agents", "agent_lost"]
    caller: str | None
    request: QueueRequest = field(repr=False, compare=False)


@dataclass(frozen=True)
class Transfer:
    """Blind-transfer the caller to a SIP URI (queues with ``blind_transfer_to``)."""

    call_id: str
    queue: str
    target: str


@dataclass(frozen=True)
class CallLeftQueue:
    """Event: a caller left the queue. ``wait_s`` is the time from joining the queue to leaving it."""

    call_id: str
    queue: str
    outcome: Literal["answered", "abandoned", "timeout", "callback", "transferred", "no_agents"]
    wait_s: float
    agent_id: str | None = None


@dataclass(frozen=True)
class AgentStateChanged:
    """Event: an agent's state changed (for the agent page and the supervisor dashboard)."""

    agent_id: str
    state: Literal["offline", "available", "ringing", "busy", "wrap_up", "paused"]
    reason: str | None = None


Action = (
    RingAgent | StopRinging | Announce | Connect | Fallback | Transfer | CallLeftQueue | AgentStateChanged
)
