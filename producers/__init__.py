"""Everything that publishes: Kafka producer, outbox relay, publisher library, signed sender."""
