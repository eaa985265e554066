"""The benchmark's limit: consume transactions and produce them unchanged to ``decisions``.

No decoding, no features, no scoring: the same key and value bytes go straight back out.
What this process sustains is the ceiling of "consume then produce" in Python with
confluent-kafka on this broker and machine, so the scorer's figures can be read against
it. It is tuned the way the scorer's Kafka source and sink are (``fetch.wait.max.ms`` 5,
``linger.ms`` 1, the same producer settings), so the gap between the two is processing.

Run as ``python -m streams.bench.passthrough`` with the scorer's ``FRAUD_*`` variables;
Ctrl-C or SIGTERM stops it after flushing what it has produced.
"""

from __future__ import annotations

import signal
import threading
import uuid
from types import FrameType

import structlog
from confluent_kafka import Consumer, Producer

from streams.settings import Settings

__all__ = ["run_passthrough"]

_log = structlog.get_logger("passthrough")
#: Records taken per ``consume`` call once one has arrived.
BATCH = 1_000
_FLUSH_TIMEOUT_S = 10.0


def _consumer(settings: Settings) -> Consumer:
    """A throwaway group at the end of the topic: only what is sent from now on."""
    return Consumer(
        settings.kafka_config(
            **{
                "group.id": f"fraudstream-passthrough-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 5,  # as the scorer: latency over fetch batching
            }
        )
    )


def run_passthrough(settings: Settings, stop: threading.Event) -> int:
    """Copy records until ``stop`` is set; returns how many were handed to the producer."""
    consumer = _consumer(settings)
    producer = Producer(settings.producer_config(**{"linger.ms": 1}))
    source, target = settings.topic_transactions, settings.topic_decisions
    produce, poll = producer.produce, producer.poll
    consumer.subscribe([source])
    copied = 0
    _log.info("passthrough_started", step="passthrough", source=source, target=target)
    try:
        while not stop.is_set():
            # consume(n, timeout) waits for n records or the whole timeout: block on the
            # first record instead, then take the batch that is already there.
            first = consumer.poll(0.1)
            if first is None:
                continue
            for message in (first, *consumer.consume(num_messages=BATCH, timeout=0)):
                error = message.error()
                if error is not None:
                    _log.warning("consume_failed", step="passthrough", error=str(error))
                    continue
                while True:
                    try:
                        produce(target, message.value(), message.key())
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        poll(0.01)
                copied += 1
            poll(0)
    finally:
        consumer.close()
        undelivered = producer.flush(_FLUSH_TIMEOUT_S)
        _log.info("passthrough_stopped", step="passthrough", copied=copied, undelivered=undelivered)
    return copied


def main() -> None:
    """Entry point: run until Ctrl-C or SIGTERM."""
    from streams.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    run_passthrough(settings, stop)


if __name__ == "__main__":
    main()
