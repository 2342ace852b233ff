"""The ``agents:`` and ``queues:`` sections of voicebot.yaml (names after Asterisk queues.conf / FreeSWITCH
callcenter.conf: strategy, timeout, wrapuptime, autopause, joinempty, announce-frequency, servicelevel)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A SIP address an agent (or a blind transfer) is reached at: sip:/sips: URI, optionally in angle brackets.
_SIP_URI = re.compile(r"^<?sips?:[^\s<>]+>?$", re.IGNORECASE)

# Conditions a queue's ``priority_rules`` can name. The reasons are those of the hand-off packet
# (dialogs.manager.handoff.REASONS); the levels are its ``frustration.level``.
FRUSTRATION_LEVELS = ("frustrated", "annoyed")
HANDOFF_REASONS = (
    "caller_request",
    "human_only",
    "not_understood",
    "slot_not_understood",
    "verification_failed",
    "frustration",
    "action_error",
)
CUSTOMER_CONDITIONS = ("verified", "unverified")
PRIORITY_CONDITIONS = (*FRUSTRATION_LEVELS, *HANDOFF_REASONS, *CUSTOMER_CONDITIONS)

STRATEGIES = ("longest_idle", "round_robin", "ring_all")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentConfig(_Section):
    """A human agent: who, how to reach them, what they can do."""

    id: str = Field(min_length=1, description="Short unique name, used in the API (/api/agents/{id}).")
    name: str = Field(default="", description="Display name; empty: the id.")
    contact: str = Field(
        default="webrtc",
        description="A SIP URI (sip:alice@10.0.0.5) to ring, or `webrtc` for the agent web page.",
    )
    skills: list[str] = Field(
        default_factory=list, description="Skills; an agent serves every queue whose skills they all have."
    )
    max_calls: int = Field(default=1, ge=1, description="Calls the agent can hold at once.")
    logged_in: bool = Field(default=False, description="Start logged in (available) rather than offline.")
    sip_password_env: str | None = Field(
        default=None,
        description="Cluster: name of the environment variable holding the password the agent's phone must prove "
                    "(digest) to register with the SIP front as the user of `contact`; empty: its REGISTER is "
                    "accepted from a trusted network without a password.",
    )

    @field_validator("contact")
    @classmethod
    def _contact(cls, v: str) -> str:
        v = v.strip()
        if v.lower() == "webrtc":
            return "webrtc"
        if not _SIP_URI.match(v):
            raise ValueError(f"expected a SIP URI like sip:alice@pbx.example.com or `webrtc`, got {v!r}")
        return v.strip("<>")

    @model_validator(mode="after")
    def _sip_user(self) -> AgentConfig:
        if self.sip_password_env and self.sip_user is None:
            raise ValueError("sip_password_env needs a SIP contact with a user part (sip:alice@front)")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def sip_user(self) -> str | None:
        """The user part of a SIP ``contact`` (the name the agent's phone registers as); None for webrtc."""
        if self.contact == "webrtc":
            return None
        user, at, _host = self.contact.partition(":")[2].partition("@")
        return user if at and user else None


class QueueConfig(_Section):
    """A queue of callers waiting for agents with the required skills."""

    name: str = Field(min_length=1, description="The name hand-offs use (intent `queue:` in the domain).")
    skills: list[str] = Field(default_factory=list, description="Skills an agent needs; empty: every agent.")
    strategy: Literal["longest_idle", "round_robin", "ring_all"] = Field(
        default="longest_idle",
        description="Which free agent is offered the next caller (ring_all: all at once).",
    )
    agent_timeout: float = Field(
        default=20.0,
        gt=0,
        description="Seconds an agent may ring (or take to accept) before the next agent is tried.",
    )
    autopause: bool = Field(default=True, description="An agent who does not answer in time is paused.")
    agent_confirm: bool = Field(
        default=False, description="The agent must accept first (key 1 / a button; 2 declines)."
    )
    decline_retry: float = Field(
        default=60.0,
        ge=0,
        description="Seconds before an agent who declined a caller is offered that caller again.",
    )
    max_wait: float = Field(
        default=300.0, gt=0, description="Seconds a caller waits at most before the fallback."
    )
    wrap_up: float = Field(
        default=10.0, ge=0, description="Seconds after a call before the agent gets the next one."
    )
    announce_every: float = Field(
        default=30.0, ge=0, description="Seconds between position announcements; 0: only once."
    )
    agent_no_media_s: float = Field(
        default=1.5, ge=0, description="A bridged agent whose side sends no audio for this long (their phone or "
        "browser vanished; RTP and WebRTC send packets even in silence) is lost: the caller hears an apology and goes back to the front of the queue. 0: never.",
    )
    fallback: Literal["callback", "voicemail", "none"] = Field(
        default="callback",
        description="After max_wait: record a callback request, take a voicemail, or say goodbye.",
    )
    callback_key: str | None = Field(
        default="1",
        description="Key the caller presses to ask for a callback instead of waiting; empty: none.",
    )
    join_empty: bool = Field(
        default=True,
        description="Callers may queue when no agent of the queue is logged in; false: the fallback at once.",
    )
    service_level_s: float = Field(
        default=20.0,
        gt=0,
        description="Answered within this many seconds counts as served within the service level.",
    )
    expected_handle_time: float = Field(
        default=180.0,
        gt=0,
        description="Seconds per call assumed for the wait estimate until real calls were handled.",
    )
    priority_rules: dict[str, int] = Field(
        default_factory=dict,
        description="Added to a caller's priority when the hand-off matches, e.g. {frustrated: 5, human_only: 2}. "
        "The domain's intent priority and frustration_priority are already in the packet.",
    )
    blind_transfer_to: str | None = Field(
        default=None, description="A SIP URI: calls for this queue are transferred there instead of queued."
    )

    @field_validator("callback_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if v not in set("0123456789*#"):
            raise ValueError(f"expected one key of 0-9 * #, got {v!r}")
        return v

    @field_validator("priority_rules")
    @classmethod
    def _rules(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(PRIORITY_CONDITIONS))
        if unknown:
            raise ValueError(
                f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(PRIORITY_CONDITIONS)}"
            )
        return v

    @field_validator("blind_transfer_to")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not _SIP_URI.match(v.strip()):
            raise ValueError(f"expected a SIP URI like sip:sales@pbx.example.com, got {v!r}")
        return v.strip().strip("<>")


def serves(agent: AgentConfig, queue: QueueConfig) -> bool:
    """True if the agent has every skill the queue requires."""
    return set(queue.skills) <= set(agent.skills)


def check_queues(
    agents: list[AgentConfig], queues: list[QueueConfig], domain_queues: set[str] | None = None
) -> list[tuple[str, str]]:
    """Problems a schema cannot see: duplicate ids or names, queues no agent can serve, queues the domain
    hands off to that the config does not define. One ``(key path, message)`` per problem."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, a in enumerate(agents):
        if a.id in seen:
            problems.append((f"agents.{i}.id", f"duplicate agent id {a.id!r}"))
        seen.add(a.id)
    names: set[str] = set()
    all_skills = {s for a in agents for s in a.skills}
    for i, q in enumerate(queues):
        if q.name in names:
            problems.append((f"queues.{i}.name", f"duplicate queue name {q.name!r}"))
        names.add(q.name)
        if q.blind_transfer_to:
            continue
        missing = sorted(set(q.skills) - all_skills)
        if missing:
            problems.append(
                (
                    f"queues.{i}.skills",
                    f"no agent has the skill(s) {', '.join(missing)}: "
                    f"callers of queue {q.name!r} would never reach anyone",
                )
            )
        elif agents and not any(serves(a, q) for a in agents):
            problems.append((f"queues.{i}.skills", f"no single agent has all of {', '.join(q.skills)}"))
        elif not agents:
            problems.append((f"queues.{i}", f"queue {q.name!r} has no agents: define `agents:`"))
    if queues and domain_queues:
        for name in sorted(domain_queues - names):
            problems.append(
                (
                    "queues",
                    f"the domain hands off to queue {name!r}, which is not defined here "
                    f"(its callers go to the first queue, {queues[0].name!r})",
                )
            )
    return problems
