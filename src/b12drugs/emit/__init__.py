"""Emit: output formats (table, JSON, JSON lines) and alert sinks."""
