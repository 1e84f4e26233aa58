"""The service catalog: one stack class per deployable service (PostgreSQL, Redis, MinIO, ...)."""
