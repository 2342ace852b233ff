"""The ``prosody:`` section of voicebot.yaml: how the frustration score is built and graded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ProsodyConfig(BaseModel):
    """Frustration scoring settings. Every field has a working default; see audio/frustration.py."""

    model_config = ConfigDict(extra="forbid")

    baseline_utterances: int = Field(
        default=3, ge=1, le=20, description="The caller's first N utterances form their personal baseline."
    )
    annoyed: float = Field(
        default=0.4, gt=0.0, lt=1.0, description="Score at or above which a turn is 'annoyed'."
    )
    frustrated: float = Field(
        default=0.7, gt=0.0, lt=1.0, description="Score at or above which a turn is 'frustrated'."
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Override the weight of a prosodic cue, by feature name (e.g. pitch_level_st: 0.5; 0 turns it off).",
    )
    words_weight: float = Field(
        default=1.0, ge=0.0, le=5.0, description="Multiplier for what the caller says."
    )
    dialog_weight: float = Field(
        default=1.0, ge=0.0, le=5.0, description="Multiplier for re-asks, no-match, failed checks."
    )
    rising_min_rise: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="Three turns of rising score count as a trend if they rise this much.",
    )
    max_explanations: int = Field(
        default=3, ge=1, le=10, description="How many reasons a score's explanation lists."
    )

    @field_validator("weights")
    @classmethod
    def _known_features(cls, value: dict[str, float]) -> dict[str, float]:
        # Imported here so loading the config does not pull in numpy for every CLI command.
        from audio.prosody.features import FEATURE_NAMES

        unknown = sorted(set(value) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown cue(s) {', '.join(unknown)}; known: {', '.join(FEATURE_NAMES)}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ProsodyConfig:
        if self.annoyed >= self.frustrated:
            raise ValueError("'annoyed' must be below 'frustrated'")
        return self
