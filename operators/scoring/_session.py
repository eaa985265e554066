"""ONNX Runtime sessions for the hot path, and one ensemble member behind the member contract.

Sessions are single-threaded and sequential on purpose: the dataflow scales by running one
scorer per worker process (one per Kafka partition group), so ONNX Runtime thread pools
would only oversubscribe the cores and add thread wake-up latency to small batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.exceptions import ModelFormatError
from models.manifest import MEMBER_INPUT, MEMBER_OUTPUT
from operators.exceptions import ScoringError

__all__ = ["OnnxMember", "as_float32_batch", "check_input", "check_output", "new_session"]

_FLOAT_TENSOR = "tensor(float)"


def new_session(model: bytes, *, what: str) -> ort.InferenceSession:
    """Open a CPU session with one intra-op and one inter-op thread, executing sequentially.

    ``model`` must be the hash-verified bytes; ``what`` names the file in errors.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for any unusable graph
        raise ModelFormatError(f"{what}: ONNX Runtime cannot load it: {exc}") from exc


def check_input(session: ort.InferenceSession, n_features: int, *, what: str) -> None:
    """Refuse a graph whose only input is not ``features`` float32 ``[n, n_features]``."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != MEMBER_INPUT or inputs[0].type != _FLOAT_TENSOR:
        found = [(i.name, i.type) for i in inputs]
        raise ModelFormatError(f"{what}: inputs {found}, expected one {MEMBER_INPUT} float")
    shape = inputs[0].shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != n_features):
        raise ModelFormatError(
            f"{what}: input shape {shape} does not take the manifest's {n_features} features"
        )


def check_output(session: ort.InferenceSession, name: str, rank: int, *, what: str) -> None:
    """Refuse a graph without output ``name`` as a float tensor of the given rank."""
    outputs = {o.name: o for o in session.get_outputs()}
    output = outputs.get(name)
    if output is None or output.type != _FLOAT_TENSOR or len(output.shape) != rank:
        found = [(o.name, o.type, o.shape) for o in outputs.values()]
        raise ModelFormatError(f"{what}: outputs {found}, expected {name} float rank {rank}")


def as_float32_batch(matrix: Any, n_features: int) -> NDArray[np.float32]:
    """Return the matrix as C-contiguous float32 ``[n, n_features]`` (no copy if it is).

    ONNX evaluates in float32, as the members were trained; anything else is refused with
    :class:`ScoringError` so the caller can fall back to rules-only.
    """
    if not isinstance(matrix, np.ndarray) or matrix.dtype.kind not in "fiu":
        kind = matrix.dtype if isinstance(matrix, np.ndarray) else type(matrix).__name__
        raise ScoringError(f"features must be a numeric numpy array, got {kind}")
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise ScoringError(f"features must have shape [n, {n_features}], got {list(matrix.shape)}")
    return np.ascontiguousarray(matrix, dtype=np.float32)


class OnnxMember:
    """One verified member file, ready to score batches.

    The signature is checked once at load, so the per-batch path is a single
    ``session.run`` with prebuilt arguments.
    """

    __slots__ = ("_output_names", "_session", "n_features", "name")

    def __init__(self, name: str, model: bytes, n_features: int, *, file: str = "") -> None:
        what = f"member {name!r} ({file or 'in memory'})"
        self.name = name
        self.n_features = n_features
        self._session = new_session(model, what=what)
        check_input(self._session, n_features, what=what)
        check_output(self._session, MEMBER_OUTPUT, 1, what=what)
        self._output_names = [MEMBER_OUTPUT]

    def predict(self, matrix: Any) -> NDArray[np.float32]:
        """P(fraud) ``[n]`` for any numeric ``[n, n_features]`` matrix (cast to float32)."""
        return self.predict_prepared(as_float32_batch(matrix, self.n_features))

    def predict_prepared(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """P(fraud) for a batch already passed through :func:`as_float32_batch`."""
        try:
            outputs = self._session.run(self._output_names, {MEMBER_INPUT: batch})
        except Exception as exc:  # ORT's errors are untyped; the dataflow needs one type
            raise ScoringError(
                f"member {self.name!r} failed on a batch of shape {list(batch.shape)}: {exc}"
            ) from exc
        scores: NDArray[np.float32] = outputs[0]
        return scores
