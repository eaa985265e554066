"""The online learner's model as a hand-built ONNX graph under the member contract.

No converter knows river, and the model is five arrays, so the graph is written node by
node with :mod:`onnx.helper`: the same impute -> standardise -> clip -> logistic steps as
:meth:`OnlineLearner.predict_one <models.online.OnlineLearner.predict_one>`, in float32.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from models.ensemble._onnx import checked_model
from models.manifest import MEMBER_INPUT, MEMBER_OUTPUT

__all__ = ["ONLINE_ROLE", "Parameters", "learner_graph"]

#: ``ModelUpdate.role`` of an online model, and the ensemble member name of the learner.
ONLINE_ROLE: Final = "online"


class Parameters(NamedTuple):
    """Everything a prediction needs, float64 arrays in feature order (the ONNX constants)."""

    impute: NDArray[np.float64]
    centre: NDArray[np.float64]
    inverse_scale: NDArray[np.float64]
    weights: NDArray[np.float64]
    intercept: float


def learner_graph(parameters: Parameters, clip: float, *, n_learned: int = 0) -> onnx.ModelProto:
    """``features float32 [n, f] -> fraud_probability float32 [n]`` for these parameters.

    Missing (NaN or ±inf) inputs take the imputation mean, as in the learner; a feature
    with zero variance standardises to 0 (inverse scale 0), as in river's scaler.
    """
    width = len(parameters.weights)

    def constant(name: str, values: object) -> TensorProto:
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name=name)

    initializers = [
        constant("impute_means", parameters.impute),
        constant("scaler_means", parameters.centre),
        constant("inverse_scales", parameters.inverse_scale),
        constant("clip_low", np.float32(-clip)),
        constant("clip_high", np.float32(clip)),
        constant("weights", parameters.weights),
        constant("intercept", np.array([parameters.intercept])),
    ]
    nodes = [
        helper.make_node("IsNaN", [MEMBER_INPUT], ["is_nan"]),
        helper.make_node("IsInf", [MEMBER_INPUT], ["is_inf"]),
        helper.make_node("Or", ["is_nan", "is_inf"], ["is_missing"]),
        helper.make_node("Where", ["is_missing", "impute_means", MEMBER_INPUT], ["imputed"]),
        helper.make_node("Sub", ["imputed", "scaler_means"], ["centred"]),
        helper.make_node("Mul", ["centred", "inverse_scales"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "clip_low", "clip_high"], ["clipped"]),
        helper.make_node("MatMul", ["clipped", "weights"], ["dot"]),  # [n, f] @ [f] -> [n]
        helper.make_node("Add", ["dot", "intercept"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], [MEMBER_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "online_logistic_regression",
        [helper.make_tensor_value_info(MEMBER_INPUT, TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(MEMBER_OUTPUT, TensorProto.FLOAT, [None])],
        initializer=initializers,
    )
    return checked_model(
        graph, f"fraudstream online learner ({n_learned} labels): {MEMBER_INPUT} -> {MEMBER_OUTPUT}"
    )
