"""Metrics of the feedback service (names from ARCHITECTURE.md where it names them).

Labels carry only bounded sets (label, outcome, metric, topic, reason), never an id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

__all__ = [
    "DRIFT_RETRAINS",
    "LABELS",
    "LABELS_APPLIED",
    "ONLINE_PUBLISHES",
    "ONLINE_QUALITY",
    "PARKED",
    "REJECTED",
    "RETRAINS",
]

LABELS = Counter("fraud_labels", "Labels received on the labels topic, by verdict.", ["label"])
LABELS_APPLIED = Counter(
    "fraud_feedback_labels",
    "Labels joined with their decision, by outcome: new, duplicate (no-op) or corrected.",
    ["outcome"],
)
PARKED = Gauge("fraud_feedback_parked_labels", "Labels waiting for their decision to arrive.")
REJECTED = Counter(
    "fraud_feedback_rejected_records",
    "Records the feedback service could not read, by topic and reason.",
    ["topic", "reason"],
)
ONLINE_QUALITY = Gauge(
    "fraud_online_model_quality",
    "Progressive validation of the online model (predict, then learn), by metric.",
    ["metric"],
)
ONLINE_PUBLISHES = Counter(
    "fraud_online_model_publishes", "Online model publications, by outcome.", ["outcome"]
)
RETRAINS = Counter(
    "fraud_retrain_runs",
    "Retrain runs, by outcome: champion, challenger, rejected (by the gate) or failed.",
    ["outcome"],
)
DRIFT_RETRAINS = Counter(
    "fraud_drift_retrain_triggers",
    "Retrains started because prediction drift stayed above FRAUD_DRIFT_RETRAIN_PSI.",
)
