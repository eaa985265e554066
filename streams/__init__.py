"""The wiring: Bytewax dataflows, the feedback app, topics, Kafka/Redis settings, the CLI."""
