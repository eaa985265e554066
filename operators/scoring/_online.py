"""Serving the online learner: a hash-verified ONNX graph, its sidecar, one run per batch.

The feedback service publishes ``<version>.onnx`` and ``<version>.json`` (see
:func:`models.online.write_online_model`) and announces the graph's path and sha256 on
``model-updates``. A scorer loads it here, with ONNX Runtime only: the bytes are hashed
before anything parses them, and the sidecar, which names the version and the feature
order, must agree with the announcement. Like :class:`EnsembleScorer`, an OnlineScorer
is immutable; a new version is a new object swapped in between batches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from models.exceptions import ManifestError, ModelIntegrityError
from models.manifest import PLAIN_NAME, sha256_bytes
from operators.scoring._session import OnnxMember, as_float32_batch

__all__ = ["OnlineScorer"]

_ONLINE = "online"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OnlineScorer:
    """P(fraud) from one published online model; see the module doc."""

    __slots__ = ("_member", "feature_names", "sha256", "version")

    def __init__(
        self, member: OnnxMember, *, version: str, feature_names: Sequence[str], sha256: str
    ) -> None:
        if member.n_features != len(feature_names):
            raise ManifestError(
                f"online model {version!r}: graph takes {member.n_features} features, "
                f"sidecar names {len(feature_names)}"
            )
        self._member = member
        self.version = version
        self.feature_names = tuple(feature_names)
        self.sha256 = sha256

    @classmethod
    def load(
        cls,
        path: Path | str,
        sha256: str,
        *,
        expected_feature_names: Sequence[str] | None = None,
    ) -> OnlineScorer:
        """Load ``<version>.onnx`` after checking its bytes against ``sha256``.

        Raises :class:`~models.exceptions.ModelIntegrityError` (as
        :meth:`EnsembleScorer.load` does for a bad hash) if the graph is missing, its
        sha256 differs, or the sidecar records another hash or version;
        :class:`~models.exceptions.ManifestError` if the sidecar is missing or malformed
        or its features differ from ``expected_feature_names``;
        :class:`~models.exceptions.ModelFormatError` if ONNX Runtime refuses the graph or
        it breaks the member contract. All are ``ModelsError``: keep the current model.
        """
        graph_path = Path(path)
        try:
            data = graph_path.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(
                f"online model {graph_path}: cannot be read ({exc.strerror or exc})"
            ) from exc
        actual = sha256_bytes(data)
        if actual != sha256.lower():
            raise ModelIntegrityError(
                f"online model {graph_path}: sha256 {actual} does not match the announced "
                f"{sha256}; nothing loaded"
            )
        sidecar = _read_sidecar(graph_path)
        if sidecar["sha256"] != actual:
            raise ModelIntegrityError(
                f"online model {graph_path}: sidecar records sha256 {sidecar['sha256']}, "
                f"the file has {actual}"
            )
        if sidecar["version"] != graph_path.stem:
            raise ModelIntegrityError(
                f"online model {graph_path}: sidecar is for version {sidecar['version']!r}"
            )
        names: tuple[str, ...] = tuple(sidecar["feature_names"])
        if expected_feature_names is not None and tuple(expected_feature_names) != names:
            raise ManifestError(
                f"online model {sidecar['version']!r} expects features {list(names)}, "
                f"the caller provides {list(expected_feature_names)}"
            )
        member = OnnxMember(_ONLINE, data, len(names), file=graph_path.name)
        return cls(member, version=sidecar["version"], feature_names=names, sha256=actual)

    def score(self, matrix: Any) -> NDArray[np.float64]:
        """P(fraud) ``[n]`` for ``[n, len(feature_names)]`` features (NaN = missing).

        Bad shapes or dtypes and ONNX Runtime failures raise
        :class:`~operators.exceptions.ScoringError`, as for the ensemble.
        """
        batch = as_float32_batch(matrix, len(self.feature_names))
        return self._member.predict_prepared(batch).astype(np.float64)


def _read_sidecar(graph_path: Path) -> dict[str, Any]:
    """The ``<version>.json`` next to the graph, with its fields type-checked."""
    path = graph_path.with_suffix(".json")
    try:
        sidecar = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(
            f"online model {graph_path}: sidecar {path.name} cannot be read ({exc.strerror or exc})"
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"online model {graph_path}: sidecar is not JSON ({exc})") from exc
    if not isinstance(sidecar, dict):
        raise ManifestError(f"online model {graph_path}: sidecar must be a JSON object")
    version = sidecar.get("version")
    if not isinstance(version, str) or re.fullmatch(PLAIN_NAME, version) is None:
        raise ManifestError(f"online model {graph_path}: sidecar version {version!r} is invalid")
    names = sidecar.get("feature_names")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise ManifestError(
            f"online model {graph_path}: sidecar feature_names must be unique non-empty strings"
        )
    digest = sidecar.get("sha256")
    if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
        raise ManifestError(f"online model {graph_path}: sidecar sha256 {digest!r} is invalid")
    return sidecar
