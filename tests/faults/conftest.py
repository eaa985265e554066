"""The fault-injection suite runs on the same real servers as the integration tests.

Its fixtures are the integration suite's (the local broker and Redis, fresh topics per
test, a tiny trained ensemble); faults that take a server down use a private instance of
their own, so no other test ever sees a killed broker or a stopped Redis.
"""

from tests.integration.conftest import (  # noqa: F401 - fixtures, registered by import
    feedback_topics,
    model_dir,
    redis_client,
    score_topics,
    servers,
    topic,
)
