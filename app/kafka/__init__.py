"""Events to and from Kafka: the outbox relay (:mod:`app.kafka.relay`), the consumer of other
services' events (:mod:`app.kafka.consumer`) and the workers that run them with the retention
duty (:mod:`app.kafka.workers`). Without ``KAFKA_BOOTSTRAP_SERVERS`` only retention runs and the
``support_events`` table is the event log."""
