"""Online learning from analysts' verdicts, between two batch retrains.

The feedback service feeds every confirmed label to an :class:`OnlineLearner` (river:
running-mean imputation, standardisation, clipped inputs, SGD logistic regression),
checkpoints it as JSON with :meth:`OnlineLearner.state`, and every so often publishes it
with :func:`write_online_model` as an ONNX graph plus sidecar, announced on
``model-updates`` with role :data:`ONLINE_ROLE`. Scorers load it with
:class:`operators.scoring.OnlineScorer`, which needs only ONNX Runtime.
:class:`OnlineMember` is the same learner behind the ensemble member protocol.
"""

from models.online._export import online_version, write_online_model
from models.online._graph import ONLINE_ROLE
from models.online._learner import OnlineLearner
from models.online._member import OnlineMember

__all__ = ["ONLINE_ROLE", "OnlineLearner", "OnlineMember", "online_version", "write_online_model"]
