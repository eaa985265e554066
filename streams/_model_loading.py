"""Loading a model version for serving: verified end to end and warmed up, off the hot path.

Two checks guard a published version. The ``ModelUpdate`` pins the manifest's bytes
(sha256), and the manifest pins every model file (checked by
:meth:`~operators.scoring.EnsembleScorer.load`). The manifest the scorer finally serves
must be the one whose bytes were hashed, so a folder altered between the two reads is
refused as well. An online model is one ``.onnx`` file (with its sidecar): the update pins
that file's bytes, and :meth:`~operators.scoring.OnlineScorer.load` checks them again as
it loads. Every refusal is a :class:`~streams.exceptions.ModelUpdateRefusedError` with a
stable ``reason`` code.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import orjson
from pydantic import ValidationError

from models.exceptions import ManifestError, ModelIntegrityError
from models.manifest import MANIFEST_FILENAME, PLAIN_NAME, Manifest, sha256_bytes
from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer, OnlineScorer
from schemas import ModelUpdate
from schemas.exceptions import FraudstreamError
from streams.exceptions import ModelUpdateRefusedError

__all__ = [
    "ALIASES_FILENAME",
    "load_alias",
    "load_model_dir",
    "load_online_update",
    "load_update",
    "local_folder",
    "registry_alias",
]

ALIASES_FILENAME = "aliases.json"
_VERSION = re.compile(PLAIN_NAME)


def load_model_dir(model_dir: Path) -> EnsembleScorer:
    """Load a model folder (every file's sha256 checked) and run it once.

    ONNX Runtime allocates on its first run: doing it here keeps that cost out of the
    first batch's latency budget. Raises what ``EnsembleScorer.load`` raises.
    """
    model = EnsembleScorer.load(model_dir, expected_feature_names=FEATURE_NAMES)
    model.score(np.full((1, len(FEATURE_NAMES)), np.nan))
    return model


def local_folder(uri: str) -> Path:
    """The folder a ``ModelUpdate.uri`` names: a plain path or a ``file://`` URL."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ModelUpdateRefusedError("unsupported_uri", f"{uri}: a file URL of another host")
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, a path
        raise ModelUpdateRefusedError(
            "unsupported_uri", f"{uri}: only local folders (path or file://) can be served"
        )
    return Path(uri)


def load_update(update: ModelUpdate) -> EnsembleScorer:
    """Verify and load the version an update announces; refuse it with a reason if unsafe."""
    folder = local_folder(update.uri)
    try:
        raw = (folder / MANIFEST_FILENAME).read_bytes()
    except OSError as exc:
        raise ModelUpdateRefusedError(
            "manifest_missing", f"{folder / MANIFEST_FILENAME}: {exc.strerror or exc}"
        ) from exc
    actual = sha256_bytes(raw)
    if actual != update.sha256:
        raise ModelUpdateRefusedError(
            "manifest_hash_mismatch",
            f"{folder / MANIFEST_FILENAME}: sha256 {actual}, the update says {update.sha256}",
        )
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ModelUpdateRefusedError("manifest_invalid", f"{folder}: {exc}") from exc
    if manifest.version != update.version:
        raise ModelUpdateRefusedError(
            "version_mismatch",
            f"{folder} holds version {manifest.version!r}, the update says {update.version!r}",
        )
    if manifest.feature_names != FEATURE_NAMES:
        raise ModelUpdateRefusedError(
            "feature_order",
            f"model {manifest.version!r} expects features {list(manifest.feature_names)}, "
            f"the scorer computes {list(FEATURE_NAMES)}",
        )
    model = _load(folder)
    if model.manifest != manifest:
        raise ModelUpdateRefusedError(
            "manifest_changed", f"{folder}: manifest.json changed while the model was loading"
        )
    return model


def load_online_update(update: ModelUpdate) -> OnlineScorer:
    """Verify, load and warm up the online model an update announces; refuse it if unsafe."""
    path = local_folder(update.uri)
    if path.suffix != ".onnx":  # a .pkl/.joblib is refused by name: pickle never loads
        raise ModelUpdateRefusedError(
            "not_onnx", f"{path}: only ONNX graphs (.onnx) are served, nothing is unpickled"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelUpdateRefusedError("model_missing", f"{path}: {exc.strerror or exc}") from exc
    actual = sha256_bytes(raw)
    if actual != update.sha256:
        raise ModelUpdateRefusedError(
            "file_hash_mismatch", f"{path}: sha256 {actual}, the update says {update.sha256}"
        )
    try:
        model = OnlineScorer.load(path, update.sha256)
        model.score(np.full((1, len(model.feature_names)), np.nan))
    except ModelIntegrityError as exc:
        raise ModelUpdateRefusedError("file_integrity", str(exc)) from exc
    except ManifestError as exc:  # the sidecar: version and feature order
        raise ModelUpdateRefusedError("sidecar_invalid", str(exc)) from exc
    except (FraudstreamError, OSError, ValueError) as exc:
        raise ModelUpdateRefusedError("load_failed", f"{path}: {exc}") from exc
    if model.version != update.version:
        raise ModelUpdateRefusedError(
            "version_mismatch",
            f"{path} holds version {model.version!r}, the update says {update.version!r}",
        )
    return model


def load_alias(root: Path, role: str) -> EnsembleScorer | None:
    """The version ``aliases.json`` names for ``role``, loaded; None when there is none."""
    version = registry_alias(root, role)
    if version is None:
        return None
    model = _load(root / version)
    if model.version != version:
        raise ModelUpdateRefusedError(
            "version_mismatch", f"{root / version} holds version {model.version!r}"
        )
    return model


def registry_alias(root: Path, role: str) -> str | None:
    """The version ``<root>/aliases.json`` names for ``role`` (None: no registry or alias)."""
    path = root / ALIASES_FILENAME
    try:
        aliases = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ModelUpdateRefusedError("aliases_unreadable", f"{path}: {exc}") from exc
    version = aliases.get(role) if isinstance(aliases, dict) else None
    if version is None:
        return None
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ModelUpdateRefusedError("aliases_invalid", f"{path}: {role} is {version!r}")
    return version


def _load(folder: Path) -> EnsembleScorer:
    try:
        return load_model_dir(folder)
    except ModelIntegrityError as exc:
        raise ModelUpdateRefusedError("file_integrity", str(exc)) from exc
    except ManifestError as exc:
        raise ModelUpdateRefusedError("manifest_invalid", str(exc)) from exc
    except (FraudstreamError, OSError, ValueError) as exc:
        raise ModelUpdateRefusedError("load_failed", f"{folder}: {exc}") from exc
