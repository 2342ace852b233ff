"""What a domain file may say: intents, slots, flows and responses (modelled on Rasa's domain files).

A domain is a folder with ``domain.yaml`` (slots, intents, flows, responses) and ``nlu.yaml``
(example utterances per intent), or one file holding both. Every model forbids unknown keys so that a
typo in an integrator's file is reported with its key path instead of being silently ignored.
"""

from __future__ import annotations

import string
from difflib import get_close_matches
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SlotType = Literal[
    "order_number", "email", "address", "city", "postcode", "date", "yes_no", "pin", "phone", "text", "reason",
]

# The dialog acts every domain has; the dialog manager gives them their meaning.
DIALOG_ACTS = ("greet", "goodbye", "affirm", "deny", "thanks", "repeat", "out_of_scope")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Slot(Strict):
    type: SlotType
    prompt: str | list[str] = Field(..., description="What the bot says to ask for this slot.")
    reprompt: str | list[str] | None = Field(None, description="Said when the answer was not understood.")
    description: str | None = None


class Step(Strict):
    """One step of a flow. Exactly one of the step kinds is set.

    - ``ask: slot`` asks for a slot unless it is already filled.
    - ``confirm: response`` says the response and waits for yes/no; "no" ends the flow with ``cancelled``.
    - ``action: name`` runs a registered action (database work); its outcome selects the next respond.
    - ``respond: response`` or ``respond: {outcome: response, ...}`` says a response, chosen by the last
      action's outcome (``default`` when no outcome matches).
    - ``handoff: reason`` transfers the caller to a human.
    """

    ask: str | None = None
    confirm: str | None = None
    action: str | None = None
    respond: str | dict[str, str] | None = None
    handoff: str | None = None
    when: str | None = Field(None, description="Run only if the last action's data has this key set (truthy).")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("ask", "confirm", "action", "respond", "handoff") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "a step has exactly one of ask / confirm / action / respond / handoff"
                + (f" (this one has {', '.join(kinds)})" if kinds else " (this one has none)")
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("ask", "confirm", "action", "respond", "handoff"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated step without a kind")


class Intent(Strict):
    description: str | None = None
    examples: list[str] = Field(default_factory=list)
    heard: list[str] = Field(default_factory=list, description=(
        "What the speech recogniser made of the examples over a phone line (written by `voicebot nlu-augment`); "
        "the NLU trains on them beside the examples."))
    slots: list[str] = Field(default_factory=list, description="Slots this intent uses (filled from its words).")
    verify: bool = Field(False, description="Identity verification is required before the flow runs.")
    human_only: bool = Field(False, description="Always handed to a human agent.")
    queue: str | None = Field(None, description="Agent queue for a hand-off of this intent.")
    priority: int = Field(0, description="Queue priority of a hand-off of this intent (higher jumps ahead).")
    announce: str | None = Field(None, description="Short phrase used when announcing this intent in an agenda.")
    steps: list[Step] = Field(default_factory=list)
    summary: str | None = Field(
        None, description="Template for the agent's one-line summary, e.g. 'wants to cancel {plan}'."
    )

    @field_validator("examples")
    @classmethod
    def _no_blank_examples(cls, v: list[str]) -> list[str]:
        for i, ex in enumerate(v):
            if not isinstance(ex, str) or not ex.strip():
                raise ValueError(f"example {i} is empty")
        return v


class Variant(Strict):
    text: str
    style: Literal["default", "calm"] = "default"


VerificationMethod = Literal["postcode", "date_of_birth", "pin"]
VERIFICATION_METHODS: tuple[VerificationMethod, ...] = ("postcode", "date_of_birth", "pin")


class Verification(Strict):
    methods: list[VerificationMethod] = Field(default_factory=lambda: list(VERIFICATION_METHODS))
    max_attempts: int | None = Field(None, ge=1, description="Overrides dialog.max_verification_attempts.")


class Domain(Strict):
    version: Literal[1] = 1
    name: str = "unnamed domain"
    language: str = "en"
    slots: dict[str, Slot] = Field(default_factory=dict)
    intents: dict[str, Intent] = Field(default_factory=dict)
    responses: dict[str, list[Variant]] = Field(default_factory=dict)
    verification: Verification = Field(default_factory=Verification)
    default_queue: str = "general"
    on_frustration: Literal["offer", "handoff"] = Field(
        "offer", description="When the caller is frustrated: offer a human, or hand off at once with priority."
    )
    frustration_priority: int = Field(5, description="Queue priority added to a hand-off caused by frustration.")
    knowledge: str | None = Field(
        None, description="Folder of knowledge entries (FAQ answers), relative to the domain file; the loader "
                          "makes it absolute.")

    @field_validator("responses", mode="before")
    @classmethod
    def _variants(cls, v: Any) -> Any:
        # Plain strings are default-style variants; `calm:` lists are the empathetic ones.
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for name, body in v.items():
            if isinstance(body, str):
                out[name] = [{"text": body}]
            elif isinstance(body, list):
                out[name] = [{"text": b} if isinstance(b, str) else b for b in body]
            elif isinstance(body, dict) and set(body) <= {"default", "calm"}:
                items: list[Any] = []
                for style in ("default", "calm"):
                    texts = body.get(style) or []
                    texts = [texts] if isinstance(texts, str) else texts
                    items += [{"text": t, "style": style} for t in texts]
                out[name] = items
            else:
                out[name] = body
        return out

    def examples(self) -> dict[str, list[str]]:
        return {name: list(intent.examples) for name, intent in self.intents.items()}

    def spoken_name(self, intent: str) -> str:
        """How the bot names request ``intent`` in a sentence ("Did you also want help with {what}?"): its
        ``announce`` phrase, else its description, else its name in words."""
        it = self.intents[intent]
        return it.announce or it.description or intent.replace("_", " ")


# Responses the dialog manager itself says, so every domain must declare them.
REQUIRED_RESPONSES = (
    "greeting", "how_can_i_help", "anything_else", "goodbye", "you_are_welcome", "not_understood",
    "empty_input", "agenda_intro", "agenda_next", "verify_intro", "verify_ask_phone", "verify_ask_factor",
    "verify_ok", "verify_failed", "verify_unknown_phone", "handoff", "handoff_verification", "handoff_no_match",
    "offer_human", "offer_human_declined", "flow_cancelled", "action_error", "repeat_nothing", "interrupt_ack",
)


# Placeholders the dialog manager fills in its own responses (besides first_name, which every response may use).
MANAGER_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "agenda_intro": frozenset({"count", "first"}),
    "agenda_next": frozenset({"next"}),
    "recall_yes": frozenset({"matter_status"}),
}
ALWAYS_PLACEHOLDERS = frozenset({"first_name"})


def did_you_mean(name: str, valid: Any) -> str:
    """`` (did you mean 'x'?)`` for the nearest valid name, or nothing."""
    near = get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


def placeholders(text: str) -> list[str]:
    """The ``{names}`` a response template uses."""
    try:
        return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(text) if f]
    except ValueError:
        return []


def _step_responses(step: Step) -> list[str]:
    names = [step.confirm] if step.confirm else []
    if isinstance(step.respond, str):
        names.append(step.respond)
    elif isinstance(step.respond, dict):
        names += list(step.respond.values())
    return names


def reference_problems(domain: Domain, actions: dict[str, frozenset[str]] | None = None) -> list[tuple[str, str]]:
    """Cross-references a schema cannot check: slots, responses, actions, placeholders and dialog acts that must
    exist. ``actions`` maps each registered action to the data keys it may return (None: not checked)."""
    problems: list[tuple[str, str]] = []
    for name in REQUIRED_RESPONSES:
        if name not in domain.responses:
            problems.append((f"responses.{name}", "missing: the dialog manager says this response"))
    for act in DIALOG_ACTS:
        if act not in domain.intents:
            problems.append((f"intents.{act}", f"missing: every domain needs the dialog act '{act}'"))
    # Which values each response may use: a flow's slots and its actions' data, where the flow says it.
    said = set(REQUIRED_RESPONSES) | set(MANAGER_PLACEHOLDERS)  # responses someone says (others fill nothing)
    allowed: dict[str, set[str]] = {name: set(ALWAYS_PLACEHOLDERS | MANAGER_PLACEHOLDERS.get(name, frozenset()))
                                    for name in domain.responses}
    for iname, intent in domain.intents.items():
        for slot in intent.slots:
            if slot not in domain.slots:
                problems.append((f"intents.{iname}.slots", f"unknown slot '{slot}' (declare it under slots:)"
                                 + did_you_mean(slot, domain.slots)))
        values = set(intent.slots) | {st.ask for st in intent.steps if st.ask}
        for i, step in enumerate(intent.steps):
            where = f"intents.{iname}.steps.{i}"
            if step.ask is not None and step.ask not in domain.slots:
                problems.append((f"{where}.ask", f"unknown slot '{step.ask}' (declare it under slots:)"
                                 + did_you_mean(step.ask, domain.slots)))
            if step.action is not None and actions is not None:
                if step.action not in actions:
                    hint = did_you_mean(step.action, actions) or f" (known: {', '.join(sorted(actions))})"
                    problems.append((f"{where}.action", f"unknown action '{step.action}'{hint}"))
                    values.add("*")  # what it would return is unknown: its responses' placeholders are not judged
                else:
                    values |= actions[step.action]
        for i, step in enumerate(intent.steps):
            for r in _step_responses(step):
                if r not in domain.responses:
                    problems.append((f"intents.{iname}.steps.{i}",
                                     f"unknown response '{r}' (declare it under responses:)"
                                     + did_you_mean(r, domain.responses)))
                else:
                    allowed[r] |= values
                    said.add(r)
        if not intent.examples and iname != "out_of_scope":
            problems.append((f"intents.{iname}.examples", "no example utterances: the intent can never be recognised"))
    if actions is not None:
        for name, variants in domain.responses.items():
            if "*" in allowed[name] or name not in said:
                continue
            ok = allowed[name] | {f"{v}_spoken" for v in allowed[name]}
            for n, variant in enumerate(variants):
                for ph in placeholders(variant.text):
                    if ph not in ok:
                        hint = did_you_mean(ph, ok) or (
                            f" (this response may use: {', '.join(sorted(allowed[name]))})")
                        problems.append((f"responses.{name}.{n}",
                                         f"unknown placeholder '{{{ph}}}': nothing fills it, the caller would hear "
                                         f"nothing there{hint}"))
    return problems
