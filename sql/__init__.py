"""Plain SQL shipped as package data (`embedq.sql`): run-once schema files, idempotent function
files and the named queries. Read with importlib.resources; nothing here is Python."""
