"""The ensemble scorer: verified load from a manifest, one ONNX run per member per batch.

Combination (``weighted_mean``): ``score = sum_i w_i * p_i / sum_i w_i`` over the members'
P(fraud) ``p_i``, with the weights ``w_i`` the trainer chose on time-ordered validation data
and stored in the manifest. A scorer is immutable; hot-swapping a model means loading a
new scorer between batches and replacing the reference, so a batch never sees two models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.exceptions import ManifestError
from models.manifest import Manifest, Thresholds, read_manifest, read_verified_files
from operators.scoring._explain import OnnxExplainer
from operators.scoring._session import OnnxMember, as_float32_batch

__all__ = ["EnsembleScorer", "ScoreBatch"]


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    """Scores of one batch, row-aligned with its input matrix.

    ``member_scores`` are what each ONNX member returned (float32), kept for the Decision
    message, the per-member score histogram and drift checks.
    """

    scores: NDArray[np.float64]
    member_scores: Mapping[str, NDArray[np.float32]]
    model_version: str

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class EnsembleScorer:
    """Scores feature matrices with the ensemble a manifest describes; see the module doc."""

    __slots__ = ("_explainer", "_manifest", "_members", "_weights")

    def __init__(
        self,
        manifest: Manifest,
        members: Sequence[OnnxMember],
        explainer: OnnxExplainer | None = None,
    ) -> None:
        if [m.name for m in members] != [m.name for m in manifest.members]:
            raise ManifestError("loaded members do not match the manifest's members")
        total = sum(m.weight for m in manifest.members)
        self._manifest = manifest
        self._members = tuple(members)
        self._weights = tuple(m.weight / total for m in manifest.members)
        self._explainer = explainer

    @classmethod
    def load(
        cls, model_dir: Path | str, *, expected_feature_names: Sequence[str] | None = None
    ) -> EnsembleScorer:
        """Load a model directory after checking every file's sha256 against the manifest.

        Raises :class:`~models.exceptions.ModelIntegrityError` (naming the files) before
        any file reaches ONNX Runtime if one is missing or altered. Pass the dataflow's
        feature order as ``expected_feature_names`` to refuse a model built for another
        feature vector instead of silently scoring misaligned columns.
        """
        manifest = read_manifest(model_dir)
        if expected_feature_names is not None and tuple(expected_feature_names) != (
            manifest.feature_names
        ):
            raise ManifestError(
                f"model {manifest.version!r} expects features {list(manifest.feature_names)}, "
                f"the caller provides {list(expected_feature_names)}"
            )
        contents = read_verified_files(manifest, model_dir)
        width = len(manifest.feature_names)
        members = [
            OnnxMember(entry.name, contents[entry.file], width, file=entry.file)
            for entry in manifest.members
        ]
        explainer = None
        if manifest.explainer is not None:
            explainer = OnnxExplainer(
                contents[manifest.explainer.file],
                manifest.feature_names,
                file=manifest.explainer.file,
            )
        return cls(manifest, members, explainer)

    @property
    def manifest(self) -> Manifest:
        """The full manifest, for metrics labels and the ModelUpdate/Decision messages."""
        return self._manifest

    @property
    def version(self) -> str:
        """Model version, stamped on every decision."""
        return self._manifest.version

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Column order of the matrices :meth:`score` expects."""
        return self._manifest.feature_names

    @property
    def thresholds(self) -> Thresholds:
        """BLOCK / REVIEW cut-offs fitted together with this model."""
        return self._manifest.thresholds

    @property
    def weights(self) -> Mapping[str, float]:
        """Normalised member weights (summing to 1) of the weighted mean."""
        return {m.name: w for m, w in zip(self._members, self._weights, strict=True)}

    def score(self, matrix: Any) -> ScoreBatch:
        """Score ``[n, len(feature_names)]`` features (float64 or float32, NaN = missing).

        One ONNX Runtime run per member on the whole batch. Any failure (bad shape or
        dtype, runtime error) raises :class:`~operators.exceptions.ScoringError`.
        """
        batch = as_float32_batch(matrix, len(self._manifest.feature_names))
        combined = np.zeros(batch.shape[0], dtype=np.float64)
        member_scores: dict[str, NDArray[np.float32]] = {}
        for member, weight in zip(self._members, self._weights, strict=True):
            scores = member.predict_prepared(batch)
            member_scores[member.name] = scores
            if weight:
                combined += weight * scores.astype(np.float64)
        return ScoreBatch(combined, member_scores, self._manifest.version)

    def top_features(self, matrix: Any, k: int = 3) -> list[list[str]]:
        """Up to ``k`` reason codes per row (``HIGH:``/``LOW:`` + feature name), strongest first.

        See :mod:`operators.scoring._explain` for the method. A model without an explainer
        returns empty lists. Failures raise :class:`~operators.exceptions.ScoringError`.
        """
        batch = as_float32_batch(matrix, len(self._manifest.feature_names))
        if self._explainer is None:
            return [[] for _ in range(batch.shape[0])]
        return self._explainer.top_features(batch, k)
