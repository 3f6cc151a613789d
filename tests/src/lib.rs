//! Test harness: starts PostgreSQL (and later RabbitMQ) clusters of its own for the integration tests.
