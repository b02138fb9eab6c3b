"""The status page: waves, counts per phase, and every instance, refreshing itself."""

from functions.status_page.blueprint import bp

__all__ = ["bp"]
