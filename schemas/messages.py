"""The messages on every topic, as typed models: the single source of truth.

JSON Schema files in ``schemas/json/`` are exported from these classes
(``python -m schemas.export``) and a test keeps them in step.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from schemas._types import Amount, Identifier, SafeStr, Timestamp

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "Channel",
    "Decision",
    "DecisionKind",
    "Label",
    "Message",
    "ModelUpdate",
    "RuleHit",
    "Transaction",
]

CURRENT_SCHEMA_VERSION = 1
# Readers accept the current and the previous version; version 1 is the first.
SUPPORTED_SCHEMA_VERSIONS = frozenset(
    v for v in (CURRENT_SCHEMA_VERSION - 1, CURRENT_SCHEMA_VERSION) if v >= 1
)

Channel = Literal["pos", "ecom", "atm"]
DecisionKind = Literal["APPROVE", "REVIEW", "BLOCK"]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Mcc = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Message(BaseModel):
    """Base of every message: strict about unknown fields, immutable, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=4096)

    topic_role: ClassVar[str] = ""
    schema_version: int = CURRENT_SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            supported = sorted(SUPPORTED_SCHEMA_VERSIONS)
            raise ValueError(f"version {version} is not supported (supported: {supported})")
        return version


class Transaction(Message):
    """A payment event on ``transactions``, keyed by ``user_id``.

    ``card_id`` is a token issued upstream; a raw card number is refused in any field.
    Optional fields may be absent (the handbook data has no card, country or location):
    the features that need them become missing values.
    """

    topic_role: ClassVar[str] = "transactions"

    tx_id: Identifier = Field(description="Idempotency key: a repeated tx_id is one event.")
    user_id: Identifier
    card_id: Identifier | None = Field(default=None, description="A card token, never a PAN.")
    merchant_id: Identifier
    mcc: Mcc | None = Field(default=None, description="ISO 18245 merchant category code.")
    amount: Amount = Field(description='Decimal string, e.g. "12.30"; never a float.')
    currency: Currency = "EUR"
    country: Country | None = Field(default=None, description="ISO 3166-1 alpha-2.")
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    channel: Channel | None = None
    device_id: Identifier | None = None
    event_time: Timestamp = Field(description="RFC 3339 with a zone, or epoch milliseconds.")


class RuleHit(Message):
    """One rule that fired on a transaction, with the reason code it reports."""

    id: Identifier
    reason: SafeStr
    action: Literal["BLOCK", "REVIEW", "ALLOW", "TAG"]
    shadow: bool = False


class Decision(Message):
    """The verdict on one transaction, on ``decisions``, keyed by ``user_id``.

    ``features`` is the exact vector that was scored (plus the merchant label features
    the online model reads), so that training on decisions is point-in-time correct.
    ``merchant_id`` and ``amount`` come from the transaction, so that a label joined with
    its decision needs nothing else. ``degraded`` says the decision was made without part
    of the system (model or Redis), and ``degraded_cause`` says which.
    """

    topic_role: ClassVar[str] = "decisions"

    tx_id: Identifier
    user_id: Identifier
    merchant_id: Identifier | None = None
    amount: Amount | None = Field(default=None, description='The transaction amount, e.g. "12.30".')
    decision: DecisionKind
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    member_scores: dict[str, float] = Field(default_factory=dict)
    shadow_scores: dict[str, float] = Field(default_factory=dict)
    model_version: SafeStr | None = None
    rules_fired: list[RuleHit] = Field(default_factory=list)
    reasons: list[SafeStr] = Field(default_factory=list)
    features: dict[str, float | None] = Field(default_factory=dict)
    degraded: bool = False
    degraded_cause: SafeStr | None = None
    event_time: Timestamp
    decided_at: Timestamp
    latency_ms: float = Field(ge=0, allow_inf_nan=False)


class Label(Message):
    """An analyst verdict or a chargeback for a decided transaction, on ``labels``."""

    topic_role: ClassVar[str] = "labels"

    tx_id: Identifier
    user_id: Identifier
    label: Literal["fraud", "legit"]
    source: Literal["analyst", "chargeback", "customer"] = "analyst"
    labeled_at: Timestamp
    analyst_id: Identifier | None = None
    note: Annotated[SafeStr, StringConstraints(max_length=1000)] | None = None


class ModelUpdate(Message):
    """A model version published on the compacted ``model-updates`` topic, keyed by role."""

    topic_role: ClassVar[str] = "model-updates"

    version: Identifier
    role: Literal["champion", "challenger", "online"]
    uri: SafeStr = Field(description="Where the model folder or file lives (path or fsspec URL).")
    sha256: Sha256 = Field(description="Hash of the manifest (or file) the uri points at.")
    metrics: dict[str, float] = Field(default_factory=dict)
    published_at: Timestamp
