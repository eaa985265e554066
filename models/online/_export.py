"""Publishing the online learner: its ONNX graph plus a JSON sidecar, both atomic.

Scorers verify the ``.onnx`` bytes against the sha256 published on ``model-updates`` and
read the sidecar for the version and the feature order. Both files are written as a temp
file, fsynced and renamed, the graph first, so a sidecar never describes a graph that is
not fully on disk.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson

from models._fs import private_dir
from models.exceptions import TrainingError
from models.manifest import PLAIN_NAME, fsync_directory, sha256_bytes, write_atomically
from models.online._graph import ONLINE_ROLE
from models.online._learner import OnlineLearner

__all__ = ["online_version", "write_online_model"]


def online_version(n_learned: int, moment: datetime) -> str:
    """A unique, sortable version name such as ``online-20261124T105415m697-n1200``.

    Letters separate every digit group: a run of 13+ digits joined by dashes can pass the
    Luhn check, and then every message carrying the name is refused as holding a card
    number. Sorting by name sorts by time.
    """
    utc = moment.astimezone(UTC)
    return f"online-{utc:%Y%m%dT%H%M%S}m{utc.microsecond // 1000:03d}-n{n_learned}"


def write_online_model(learner: OnlineLearner, folder: Path, version: str) -> tuple[Path, str]:
    """Write ``<folder>/<version>.onnx`` and its ``<version>.json`` sidecar atomically.

    The sidecar holds ``role``, ``version``, ``file``, ``feature_names``, ``n_learned``,
    ``quality`` (NaN written as null) and ``sha256``. Returns the graph's path and the
    sha256 hex of its bytes, the pair a ``ModelUpdate`` announces. An existing version is
    overwritten: versions are the caller's to keep unique.
    """
    if re.fullmatch(PLAIN_NAME, version) is None:
        raise TrainingError(f"online model version {version!r} must match {PLAIN_NAME}")
    data = learner.to_onnx().SerializeToString()
    digest = sha256_bytes(data)
    folder = private_dir(Path(folder))
    graph_path = folder / f"{version}.onnx"
    sidecar = {
        "role": ONLINE_ROLE,
        "version": version,
        "file": graph_path.name,
        "feature_names": list(learner.feature_names),
        "n_learned": learner.n_learned,
        "quality": learner.quality(),
        "sha256": digest,
    }
    write_atomically(graph_path, data)
    write_atomically(folder / f"{version}.json", orjson.dumps(sidecar, option=orjson.OPT_INDENT_2))
    fsync_directory(folder)
    return graph_path, digest
