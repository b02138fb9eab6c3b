"""The HTTP status and control API: a Durable Functions blueprint, ``bp``, for ``function_app.py``.

Routes are thin (``blueprint``): each parses its input, calls one function of ``logic`` (which knows
nothing of HTTP) and maps the result or the error to a JSON response (``responses``).
"""

from functions.api.blueprint import bp

__all__ = ["bp"]
