"""The on-disk format of one model version: ``manifest.json`` beside its ONNX files.

The scorer must never guess. The feature order, the member weights and the decision
thresholds travel with the files they belong to, and every file is pinned by sha256, so a
truncated copy or a tampered file is refused before ONNX Runtime ever parses it. The
registry (:mod:`models.registry`) stores, promotes and rolls back these directories as they are;
``parent_version`` links a retrain to the champion it was gated against.

Every model file is ONNX and named by a plain file name inside the directory (no paths,
so a manifest cannot point outside it); nothing here ever unpickles.

Member contract (what the trainer writes and the scorer checks): one input
:data:`MEMBER_INPUT`, float32 ``[n, len(feature_names)]`` in manifest order, NaN for a
missing value; one output :data:`MEMBER_OUTPUT`, float32 ``[n]``, P(fraud) in [0, 1].
The optional explainer takes the same input and returns :data:`EXPLAINER_CONTRIBUTIONS`
and :data:`EXPLAINER_STANDARDIZED`, both float32 ``[n, len(feature_names)]``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    AwareDatetime,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models._manifest_sections import (
    Distribution,
    EvaluationMetrics,
    GateRecord,
    OperatingPoint,
    ReferenceDistributions,
    ScoreMetrics,
    TimeWindow,
)
from models._manifest_sections import Strict as _Strict
from models.exceptions import ManifestError, ModelIntegrityError

__all__ = [
    "EXPLAINER_CONTRIBUTIONS",
    "EXPLAINER_STANDARDIZED",
    "FORMAT_VERSION",
    "MANIFEST_FILENAME",
    "MEMBER_INPUT",
    "MEMBER_OUTPUT",
    "PLAIN_NAME",
    "Distribution",
    "EvaluationMetrics",
    "ExplainerEntry",
    "GateRecord",
    "Manifest",
    "MemberEntry",
    "OperatingPoint",
    "ReferenceDistributions",
    "ScoreMetrics",
    "Thresholds",
    "TimeWindow",
    "ValidationMetrics",
    "fsync_directory",
    "read_manifest",
    "read_verified_files",
    "sha256_bytes",
    "write_atomically",
    "write_manifest",
]

MANIFEST_FILENAME = "manifest.json"
#: Bumped on any change an older reader could misread; readers refuse newer formats.
#: 2 added the optional ``training_cutoff``, ``label_delay``, ``reference``, ``gate`` and
#: evaluation metrics; a format-1 manifest loads with them unset. 3 added the observed
#: range (``low``, ``high``) of each reference distribution, for out-of-range rates.
FORMAT_VERSION = 3
MEMBER_INPUT = "features"
MEMBER_OUTPUT = "fraud_probability"
EXPLAINER_CONTRIBUTIONS = "contributions"
EXPLAINER_STANDARDIZED = "standardized"

#: File names and versions: one path segment, safe as a directory name, never hidden.
PLAIN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_SHA256 = r"^[0-9a-f]{64}$"


class MemberEntry(_Strict):
    """One ensemble member: its file, the file's hash and its weight in the weighted mean."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    file: str = Field(pattern=PLAIN_NAME)
    sha256: str = Field(pattern=_SHA256)
    weight: float = Field(ge=0.0, le=1.0)


class ExplainerEntry(_Strict):
    """The ONNX graph behind ``top_features``, hash-pinned like a member.

    ``logistic_contributions``: per feature, ``coef * (x - mean) / scale`` of the named
    logistic-regression member after its median imputation, 0 where the input is NaN.
    """

    method: Literal["logistic_contributions"] = "logistic_contributions"
    member: str
    file: str = Field(pattern=PLAIN_NAME)
    sha256: str = Field(pattern=_SHA256)


class Thresholds(_Strict):
    """Decision thresholds on the ensemble score: BLOCK at ``>= block``, REVIEW at ``>= review``.

    ``basis`` records how they were set (fitted on validation data, or defaults and why),
    because an analyst asking "why this cut-off?" must find the answer with the model.
    """

    block: float = Field(ge=0.0, le=1.0)
    review: float = Field(ge=0.0, le=1.0)
    target_precision: float = Field(gt=0.0, le=1.0)
    review_share: float = Field(gt=0.0, lt=1.0)
    basis: str

    @model_validator(mode="after")
    def _review_not_above_block(self) -> Self:
        if self.review > self.block:
            raise ValueError(f"review threshold {self.review} is above block {self.block}")
        return self


class ValidationMetrics(EvaluationMetrics):
    """The ensemble's metrics plus each member's, to see what every member adds."""

    members: dict[str, ScoreMetrics] = Field(default_factory=dict)


class Manifest(_Strict):
    """Everything a scorer needs to serve a model version, and an auditor to trust it."""

    format_version: int = FORMAT_VERSION
    version: str = Field(pattern=PLAIN_NAME)
    created_at: AwareDatetime
    feature_names: tuple[str, ...] = Field(min_length=1)
    combination: Literal["weighted_mean"] = "weighted_mean"
    members: tuple[MemberEntry, ...] = Field(min_length=1)
    thresholds: Thresholds
    metrics: ValidationMetrics
    training_window: TimeWindow
    training_rows: int = Field(ge=1)
    training_frauds: int = Field(ge=0)
    validation_window: TimeWindow
    validation_rows: int = Field(ge=1)
    validation_frauds: int = Field(ge=0)
    parent_version: str | None = None
    code_revision: str
    explainer: ExplainerEntry | None = None
    #: Point-in-time training: nothing after ``training_cutoff`` was replayed, and a
    #: label was used only if ``event_time + label_delay <= training_cutoff``.
    training_cutoff: AwareDatetime | None = None
    label_delay: timedelta | None = Field(default=None, ge=timedelta(0))
    reference: ReferenceDistributions | None = None
    gate: GateRecord | None = None

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if not 1 <= value <= FORMAT_VERSION:
            raise ValueError(f"format_version {value} is not supported (max {FORMAT_VERSION})")
        return value

    @field_validator("feature_names")
    @classmethod
    def _unique_features(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates or not all(names):
            raise ValueError(f"feature names must be non-empty and unique: {duplicates}")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names are not unique: {names}")
        files = [file for file, _ in self.files]
        if len(set(files)) != len(files) or MANIFEST_FILENAME in files:
            raise ValueError(f"model files must be distinct and not the manifest: {files}")
        if sum(m.weight for m in self.members) <= 0.0:
            raise ValueError("member weights sum to zero")
        if self.explainer is not None and self.explainer.member not in names:
            raise ValueError(f"explainer refers to unknown member {self.explainer.member!r}")
        return self

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """``(file, sha256)`` of every model file the manifest pins, members first."""
        pinned = [(m.file, m.sha256) for m in self.members]
        if self.explainer is not None:
            pinned.append((self.explainer.file, self.explainer.sha256))
        return tuple(pinned)

    def to_json(self) -> str:
        """Render the exact text of ``manifest.json`` (stable key order, UTC 'Z' times)."""
        return self.model_dump_json(by_alias=True, indent=2) + "\n"


def sha256_bytes(data: bytes) -> str:
    """Lower-case hex sha256, the digest format pinned in manifests and ModelUpdate messages."""
    return hashlib.sha256(data).hexdigest()


def read_manifest(model_dir: Path | str) -> Manifest:
    """Parse and validate ``model_dir/manifest.json``; any doubt raises :class:`ManifestError`."""
    path = Path(model_dir) / MANIFEST_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        raise ManifestError(f"{path}: invalid manifest: {exc}") from exc


def write_manifest(manifest: Manifest, model_dir: Path | str) -> Path:
    """Write the manifest atomically (temp file + rename), last, to publish a model directory.

    A reader therefore sees either no manifest (an incomplete directory, ignored) or a
    complete one whose files are already in place.
    """
    path = Path(model_dir) / MANIFEST_FILENAME
    write_atomically(path, manifest.to_json().encode("utf-8"))
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so no reader ever sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temp_name).replace(path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def fsync_directory(directory: Path) -> None:
    """Make renames into ``directory`` durable: its entries are flushed, not only the files."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_verified_files(manifest: Manifest, model_dir: Path | str) -> Mapping[str, bytes]:
    """Read every pinned file and check its sha256; return ``{file: bytes}`` only if all match.

    The bytes returned are the bytes hashed, so a file swapped between check and load is
    impossible. Every bad file is named in one :class:`ModelIntegrityError`.
    """
    directory = Path(model_dir)
    contents: dict[str, bytes] = {}
    problems: list[str] = []
    for file, expected in manifest.files:
        path = directory / file
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        actual = sha256_bytes(data)
        if actual != expected:
            problems.append(f"{path}: sha256 {actual} does not match the manifest's {expected}")
            continue
        contents[file] = data
    if problems:
        raise ModelIntegrityError(
            f"model {manifest.version!r} refused, nothing loaded: " + "; ".join(problems)
        )
    return contents
