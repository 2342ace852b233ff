"""Why an agent's bridged call ended, from the two legs as they were at its end: what the agent page shows
("The caller's line dropped") while the agent wraps up."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.leg import Leg

HANGUPS = ("remote hangup", "local hangup")  # a leg's end reasons that are a hang-up, not a line lost


@dataclass(frozen=True)
class CallEnding:
    """``reason``: ``caller_hangup``, ``caller_lost`` (the caller's line dropped: no media, the connection
    failed, their node died), ``agent_hangup``, ``agent_lost`` (the agent's phone or page dropped; the caller
    goes back to the queue) or ``ended``; ``text``: the sentence the agent page shows."""

    reason: str
    text: str


def why_ended(caller: Leg | None, agent: Leg | None) -> CallEnding:
    """Why the bridge of ``caller`` and ``agent`` ended: whichever leg ended first (the queue hangs up the other
    after the ``ended`` notice); a leg no longer known (None) is one that ended."""
    if caller is not None and caller.state == "ended":
        if caller.end_reason == "remote hangup":
            return CallEnding("caller_hangup", "The caller hung up.")
        return CallEnding("caller_lost", f"The caller's line dropped ({caller.end_reason or 'no reason given'}).")
    if agent is not None and agent.state == "ended" and agent.end_reason in HANGUPS:
        return CallEnding("agent_hangup", "You hung up.")
    if caller is not None and caller.state == "answered":  # the agent's side ended otherwise or its media stopped
        return CallEnding("agent_lost", "Your phone's line dropped; the caller went back to the queue.")
    return CallEnding("ended", "The call ended.")
