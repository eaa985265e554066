"""Errors of the model layer: training, registry, evaluation and the traffic simulator.

They derive from :class:`schemas.exceptions.FraudstreamError` so that the CLI and the
services can tell a refusal by fraudstream (bad configuration, bad input file) from a bug.
"""

from __future__ import annotations

from schemas.exceptions import FraudstreamError

__all__ = [
    "BacktestError",
    "EvaluationError",
    "ManifestError",
    "ModelFormatError",
    "ModelIntegrityError",
    "ModelsError",
    "RegistryError",
    "SimulatorError",
    "TrainingError",
]


class ModelsError(FraudstreamError):
    """Root of every deliberate error raised by the ``models`` package."""


class SimulatorError(ModelsError):
    """The simulator was asked for something it cannot produce (bad size, rate, path or clock).

    Raised before any work is done, so a typo on the command line costs nothing.
    """


class ManifestError(ModelsError):
    """A model directory's ``manifest.json`` is missing, unreadable or breaks its contract.

    A scorer must not guess a feature order or a threshold, so any doubt about the
    manifest stops the load and the running model (or rules-only mode) stays in place.
    """


class ModelIntegrityError(ModelsError):
    """A model file is missing or its sha256 differs from the manifest; nothing was loaded.

    The message names every offending file, so an operator can tell a truncated copy from
    a tampered one without opening the directory.
    """


class ModelFormatError(ModelsError):
    """A hash-verified model file does not follow the member contract (ONNX, inputs, outputs).

    The file is the one the trainer wrote, so this points at an exporter bug or at a model
    built for another feature vector, never at a transfer problem.
    """


class TrainingError(ModelsError):
    """Training was refused: unusable input, or an ONNX export that disagrees with its model.

    Raised before the manifest is written, so a failed run never publishes a model.
    """


class RegistryError(ModelsError):
    """The model registry refused an operation: unknown version, nothing to roll back to...

    Aliases are left exactly as they were, so a refused promotion changes nothing.
    """


class EvaluationError(ModelsError):
    """Scores, labels and keys given to a metric do not line up (length, NaN, empty)."""


class BacktestError(ModelsError):
    """A backtest cannot run as configured (bad window, unusable file, no rows)."""
