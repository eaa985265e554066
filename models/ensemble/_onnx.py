"""ONNX graph work shared by every member: the member contract and the explainer graph.

Converters disagree on outputs (a label plus a ``[n, 2]`` probability tensor, sometimes a
ZipMap). Rewriting each exported graph to a single ``[n]`` P(fraud) output here keeps the
hot path free of per-converter special cases: the scorer asks every member for the same
output name and gets exactly the column it needs.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from models.exceptions import TrainingError
from models.manifest import (
    EXPLAINER_CONTRIBUTIONS,
    EXPLAINER_STANDARDIZED,
    MEMBER_INPUT,
    MEMBER_OUTPUT,
)

__all__ = ["IR_VERSION", "ONNX_ML_OPSET", "ONNX_OPSET", "logistic_explainer", "to_member_contract"]

#: Highest default-domain opset every converter in the lock file supports (onnxmltools: 15).
ONNX_OPSET = 15
ONNX_ML_OPSET = 3
#: IR version of the converters' output; old enough for any ONNX Runtime we would deploy.
IR_VERSION = 8
_PROBABILITIES = "probabilities"


def to_member_contract(model: onnx.ModelProto, member: str) -> onnx.ModelProto:
    """Reduce a converter's classifier graph to ``features -> fraud_probability [n]``.

    Takes column 1 (P(class 1)) of the ``probabilities`` output with one Gather, and drops
    every other graph output (the label), so ONNX Runtime never materialises them.
    """
    graph = model.graph
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if inputs != [MEMBER_INPUT]:
        raise TrainingError(f"{member}: exported graph inputs {inputs}, expected [{MEMBER_INPUT}]")
    if _PROBABILITIES not in {o.name for o in graph.output}:
        raise TrainingError(f"{member}: exported graph has no {_PROBABILITIES!r} output")
    positive = numpy_helper.from_array(np.array(1, dtype=np.int64), name="positive_class_index")
    graph.initializer.append(positive)
    graph.node.append(
        helper.make_node(
            "Gather",
            [_PROBABILITIES, positive.name],
            [MEMBER_OUTPUT],
            axis=1,
            name="take_fraud_probability",
        )
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(MEMBER_OUTPUT, TensorProto.FLOAT, [None]))
    if not any(op.domain in ("", "ai.onnx") for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("", ONNX_OPSET))
    model.doc_string = f"fraudstream ensemble member {member!r}: {MEMBER_INPUT} -> {MEMBER_OUTPUT}"
    onnx.checker.check_model(model, full_check=True)
    return model


def logistic_explainer(
    medians: NDArray[np.floating],
    means: NDArray[np.floating],
    scales: NDArray[np.floating],
    coefficients: NDArray[np.floating],
) -> onnx.ModelProto:
    """Graph computing a logistic regression's per-feature logit contributions.

    ``standardized = (impute(x) - mean) / scale`` and ``contributions = coef *
    standardized``, with the contribution forced to 0 where ``x`` is NaN: a missing value
    is imputed to a typical one, so it is never a reason for a score.
    """
    width = len(coefficients)
    if not len(medians) == len(means) == len(scales) == width:
        raise TrainingError("explainer parameters do not have one value per feature")

    def constant(name: str, values: NDArray[np.floating]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name=name)

    initializers = [
        constant("medians", medians),
        constant("means", means),
        constant("inverse_scales", 1.0 / np.asarray(scales, dtype=np.float64)),
        constant("coefficients", coefficients),
        constant("zero", np.zeros(1)),
    ]
    nodes = [
        helper.make_node("IsNaN", [MEMBER_INPUT], ["is_missing"]),
        helper.make_node("Where", ["is_missing", "medians", MEMBER_INPUT], ["imputed"]),
        helper.make_node("Sub", ["imputed", "means"], ["centred"]),
        helper.make_node("Mul", ["centred", "inverse_scales"], [EXPLAINER_STANDARDIZED]),
        helper.make_node("Mul", [EXPLAINER_STANDARDIZED, "coefficients"], ["raw_contributions"]),
        helper.make_node(
            "Where", ["is_missing", "zero", "raw_contributions"], [EXPLAINER_CONTRIBUTIONS]
        ),
    ]
    matrix = [None, width]
    graph = helper.make_graph(
        nodes,
        "logistic_contributions",
        [helper.make_tensor_value_info(MEMBER_INPUT, TensorProto.FLOAT, matrix)],
        [
            helper.make_tensor_value_info(EXPLAINER_CONTRIBUTIONS, TensorProto.FLOAT, matrix),
            helper.make_tensor_value_info(EXPLAINER_STANDARDIZED, TensorProto.FLOAT, matrix),
        ],
        initializer=initializers,
    )
    return checked_model(graph, "per-feature logit contributions of the logistic-regression member")


def checked_model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    """A hand-built graph as a model at the project's opset and IR version, fully checked."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="fraudstream",
        ir_version=IR_VERSION,
        doc_string=doc,
    )
    onnx.checker.check_model(model, full_check=True)
    return model
