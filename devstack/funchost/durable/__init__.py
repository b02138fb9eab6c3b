"""Durable Functions for the local host: history replay through the real SDK, state in Azurite."""
