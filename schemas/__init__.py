"""Message contracts: the single source of truth for every record on every topic."""

from schemas._pan import REDACTED, contains_pan, redact_pans, redact_pans_bytes
from schemas.codec import decode, decode_transaction, encode
from schemas.dlq import DlqRecord
from schemas.exceptions import (
    FraudstreamError,
    PanDetectedError,
    RecordError,
    SchemaValidationError,
)
from schemas.messages import (
    CURRENT_SCHEMA_VERSION,
    Decision,
    Label,
    Message,
    ModelUpdate,
    RuleHit,
    Transaction,
)

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "REDACTED",
    "Decision",
    "DlqRecord",
    "FraudstreamError",
    "Label",
    "Message",
    "ModelUpdate",
    "PanDetectedError",
    "RecordError",
    "RuleHit",
    "SchemaValidationError",
    "Transaction",
    "contains_pan",
    "decode",
    "decode_transaction",
    "encode",
    "redact_pans",
    "redact_pans_bytes",
]
