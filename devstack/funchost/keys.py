"""Host keys, as the Functions host has them: a master key, a host-wide ``default`` function key,
one ``default`` key per HTTP function, and the Durable extension's system key. They are kept in
the state folder so a restarted host answers to the same keys."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _new_key() -> str:
    return secrets.token_urlsafe(30)


@dataclass
class HostKeys:
    master: str = field(default_factory=_new_key)
    host_default: str = field(default_factory=_new_key)
    durabletask_extension: str = field(default_factory=_new_key)
    functions: dict[str, str] = field(default_factory=dict)

    def ensure_functions(self, names: list[str]) -> None:
        for name in names:
            self.functions.setdefault(name, _new_key())

    def allows(self, function_name: str, auth_level: str, presented: str | None) -> bool:
        if auth_level == "anonymous":
            return True
        if not presented:
            return False
        if secrets.compare_digest(presented, self.master):
            return True
        if auth_level == "admin":
            return False
        candidates = [self.host_default, self.functions.get(function_name, "")]
        return any(candidate and secrets.compare_digest(presented, candidate) for candidate in candidates)

    def allows_system(self, presented: str | None) -> bool:
        return bool(presented) and any(
            secrets.compare_digest(str(presented), key) for key in (self.master, self.durabletask_extension)
        )

    @classmethod
    def load_or_create(cls, path: Path | None) -> HostKeys:
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            return cls(**data)
        keys = cls()
        keys.save(path)
        return keys

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)

    def function_keys(self) -> dict[str, str]:
        """What the stack settings publish: the host-wide default key and each function's key."""
        return {"default": self.host_default, **self.functions}
