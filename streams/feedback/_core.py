"""What one joined label does to the feedback loop's state, independent of Faust.

The offline store is the loop's log of applied verdicts: a batch's rows are written there
*before* its offsets are committed, and at start-up the learner, the merchant label book
and the verdict map are rebuilt from the last checkpoint plus the store files written
after it. Replaying a file goes through :meth:`FeedbackCore.apply`, the same code as live,
so a restarted service ends in exactly the state of one that never stopped, and a label
redelivered after a crash finds its verdict already there: a no-op, never applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from models._fs import private_dir
from models.manifest import write_atomically
from models.offline_store import JoinedLabel, applied_label_files, read_joined_labels
from models.online import OnlineLearner
from operators.engine import DECISION_FEATURES
from operators.merchant_labels import MerchantLabelBook
from schemas._types import epoch_ms
from streams.exceptions import FeedbackError

__all__ = ["LEARNER_FEATURES", "FeedbackCore", "Outcome"]

#: What the online learner sees: every feature a decision carries (the champion's inputs
#: plus the merchant label windows), so what it learns from is what scorers can give it.
LEARNER_FEATURES: tuple[str, ...] = DECISION_FEATURES

Outcome = Literal["new", "duplicate", "corrected"]
_CHECKPOINT_FORMAT = 1


def _epoch_ms(row: JoinedLabel) -> tuple[int, int]:
    return epoch_ms(row.event_time), epoch_ms(row.labeled_at)


class FeedbackCore:
    """The learner, the merchant label book and every transaction's current verdict."""

    def __init__(
        self,
        learner: OnlineLearner | None = None,
        book: MerchantLabelBook | None = None,
        verdicts: dict[str, int] | None = None,
        applied_files: Iterable[str] = (),
    ) -> None:
        self.learner = learner or OnlineLearner(LEARNER_FEATURES)
        self.book = book or MerchantLabelBook()
        self.verdicts: dict[str, int] = verdicts or {}
        self.applied_files: set[str] = set(applied_files)
        self.dirty_merchants: set[str] = set()
        self.labels_since_publish = 0

    def apply(self, row: JoinedLabel) -> Outcome:
        """Apply one verdict: learn it, count it for its merchant, remember it."""
        outcome = self.classify(row)
        if outcome == "duplicate":
            return outcome
        fraud = row.label == 1
        if outcome == "new":
            self.learner.learn_one(row.features, fraud)
        else:
            self.learner.correct(row.features, fraud)
        self.verdicts[row.tx_id] = row.label
        if row.merchant_id is not None:
            event_ms, known_ms = _epoch_ms(row)
            if self.book.apply(row.tx_id, row.merchant_id, event_ms, fraud, known_ms):
                self.dirty_merchants.add(row.merchant_id)
        self.labels_since_publish += 1
        return outcome

    def classify(self, row: JoinedLabel) -> Outcome:
        """What :meth:`apply` would do with ``row``, without doing it."""
        previous = self.verdicts.get(row.tx_id)
        if previous == row.label:
            return "duplicate"
        return "new" if previous is None else "corrected"

    def mark_applied(self, files: Sequence[Path]) -> None:
        """Record store files whose rows are in the state (a checkpoint will not replay them)."""
        self.applied_files.update(path.name for path in files)

    # --- checkpoints -------------------------------------------------------------------

    def checkpoint(self) -> bytes:
        """The whole state as JSON: learner weights, label book, verdicts, applied files."""
        return orjson.dumps(
            {
                "format": _CHECKPOINT_FORMAT,
                "learner": self.learner.state(),
                "book": self.book.state(),
                "verdicts": self.verdicts,
                "files": sorted(self.applied_files),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def save(self, path: Path) -> None:
        """Write :meth:`checkpoint` atomically (a crash leaves the previous one)."""
        private_dir(path.parent)
        write_atomically(path, self.checkpoint())

    @classmethod
    def from_checkpoint(cls, raw: bytes) -> FeedbackCore:
        """The state a :meth:`checkpoint` holds."""
        try:
            data: dict[str, Any] = orjson.loads(raw)
            if data.get("format") != _CHECKPOINT_FORMAT:
                raise FeedbackError(f"checkpoint format {data.get('format')!r} is not supported")
            return cls(
                learner=OnlineLearner.from_state(data["learner"]),
                book=MerchantLabelBook.from_state(data["book"]),
                verdicts={str(k): int(v) for k, v in data["verdicts"].items()},
                applied_files=[str(name) for name in data["files"]],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FeedbackError(f"unreadable feedback checkpoint: {exc}") from exc

    @classmethod
    def restore(cls, store: Path, checkpoint: Path) -> tuple[FeedbackCore, int]:
        """The last checkpoint plus every store file written after it, and how many rows.

        Without a checkpoint the whole store is replayed; without a store, a fresh state.
        """
        core = cls.from_checkpoint(checkpoint.read_bytes()) if checkpoint.exists() else cls()
        replayed = 0
        files = applied_label_files(store) if store.exists() else []
        for path in files:
            if path.name in core.applied_files:
                continue
            for row in read_joined_labels(path):
                core.apply(row)
                replayed += 1
            core.applied_files.add(path.name)
        return core, replayed
