"""Adapters: one Azure SDK each, raising only migration.errors types."""
