"""Writes and orchestration: the only place that combines engine, transport and database."""
