"""The feedback loop: analysts' labels joined with decisions, teaching the system.

``fraudstream feedback`` runs :class:`FeedbackService` (a Faust app); ``fraudstream
retrain`` runs :func:`run_retrain`, the same job the service's weekly schedule runs.
"""

from streams.feedback._core import LEARNER_FEATURES, FeedbackCore, Outcome
from streams.feedback._retrain import run_retrain
from streams.feedback._schedule import RetrainSchedule, ServiceClock
from streams.feedback._service import FeedbackService, co_partitioned_count
from streams.feedback._snapshot import Snapshot, join

__all__ = [
    "LEARNER_FEATURES",
    "FeedbackCore",
    "FeedbackService",
    "Outcome",
    "RetrainSchedule",
    "ServiceClock",
    "Snapshot",
    "co_partitioned_count",
    "join",
    "run_retrain",
]
