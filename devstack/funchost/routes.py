"""HTTP trigger route templates (ASP.NET Core syntax, as the Functions host reads them).

``orders/{id}``, ``{id:int}`` and the other common constraints, optional ``{name?}`` segments
and catch-all ``{*rest}``. Matched case-insensitively, literal routes before templated ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "decimal": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?",
    "float": r"-?\d+(?:\.\d+)?",
}
_TOKEN = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+)(?:\([^)]*\))?)?(\?)?\}")


@dataclass
class RouteTemplate:
    template: str
    pattern: re.Pattern[str] = field(init=False)
    names: dict[str, str] = field(init=False, default_factory=dict)  # regex group -> route parameter
    literal_chars: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        segments = [s for s in self.template.strip("/").split("/") if s != ""]
        regex = ""
        for segment in segments:
            token = _TOKEN.fullmatch(segment)
            if token is None:
                if "{" in segment:
                    regex += "/" + self._mixed(segment)
                else:
                    regex += "/" + re.escape(segment)
                    self.literal_chars += len(segment)
                continue
            catch_all, name, constraint, optional = token.groups()
            group = f"p{len(self.names)}"
            self.names[group] = name
            body = ".*" if catch_all else _CONSTRAINTS.get((constraint or "").lower(), r"[^/]+")
            if catch_all or optional:
                regex += f"(?:/(?P<{group}>{body}))?"
            else:
                regex += f"/(?P<{group}>{body})"
        self.pattern = re.compile("^" + regex + "/?$", re.IGNORECASE)

    def _mixed(self, segment: str) -> str:
        """A segment mixing text and parameters, e.g. ``file.{ext}``."""
        out = ""
        position = 0
        for token in _TOKEN.finditer(segment):
            out += re.escape(segment[position : token.start()])
            self.literal_chars += token.start() - position
            group = f"p{len(self.names)}"
            self.names[group] = token.group(2)
            out += f"(?P<{group}>[^/]+?)"
            position = token.end()
        return out + re.escape(segment[position:])

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match("/" + path.strip("/") if path.strip("/") else "")
        if found is None:
            return None
        return {self.names[g]: v for g, v in found.groupdict().items() if v is not None}

    @property
    def sort_key(self) -> tuple[Any, ...]:
        return (-self.literal_chars, len(self.names))
