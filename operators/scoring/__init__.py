"""Model scoring for the hot path: a hash-verified ONNX ensemble behind one call per batch.

The dataflow calls :meth:`EnsembleScorer.score` on a batch's feature matrix and, for the
rows it reviews or blocks, :meth:`EnsembleScorer.top_features` for reason codes. Any
scoring failure is a :class:`~operators.exceptions.ScoringError`, the signal to decide
the batch rules-only and flag it degraded. Only ONNX Runtime and numpy are imported here:
no training library is needed to serve. :class:`OnlineScorer` serves the online learner's
graph (published by the feedback service) under the same verification rules.
"""

from operators.scoring._online import OnlineScorer
from operators.scoring._scorer import EnsembleScorer, ScoreBatch
from operators.scoring._session import OnnxMember

__all__ = ["EnsembleScorer", "OnlineScorer", "OnnxMember", "ScoreBatch"]
