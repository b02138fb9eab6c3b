"""What a listing of tagged instances returns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from migration.identity import InstanceRef


class TaggedInstance(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance: InstanceRef
    state: str
    tags: dict[str, str] = Field(default_factory=dict)
