"""The event contract between AWS and Azure: CloudEvents 1.0 in JSON structured mode.

Versioned by type name (``...MigrationRequested.v1``): a breaking change of ``data`` is a new
type, and both sides accept the versions they know.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, overload

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from migration.errors import InvalidInput
from migration.identity import InstanceRef
from migration.tags import (
    AZURE_VM_SIZE_PATTERN,
    DISK_TYPE_PATTERN,
    HTTP_URL_MAX,
    HTTP_URL_PATTERN,
    MAX_TCP_CHECKS,
    SUBNET_NAME_PATTERN,
    WAVE_PATTERN,
)

MIGRATION_REQUESTED: Final = "io.aws2azure.migration.MigrationRequested.v1"
FAILOVER_REQUESTED: Final = "io.aws2azure.migration.FailoverRequested.v1"
CANCEL_REQUESTED: Final = "io.aws2azure.migration.CancelRequested.v1"
EVENT_TYPES = (MIGRATION_REQUESTED, FAILOVER_REQUESTED, CANCEL_REQUESTED)

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VmChecks(_Data):
    """The operator's checks for the failed-over VM (aws2azure:check-tcp, aws2azure:check-http), run by the
    validation gate through Run Command (docs/VALIDATION.md)."""

    tcp_ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=MAX_TCP_CHECKS)] = Field(
        default_factory=list
    )
    http_url: Annotated[str, Field(pattern=HTTP_URL_PATTERN.pattern, max_length=HTTP_URL_MAX)] | None = None

    @property
    def empty(self) -> bool:
        return not self.tcp_ports and self.http_url is None


class MigrationRequestedData(_Data):
    instance: InstanceRef
    private_ip: IPvAnyAddress
    os_family: Literal["windows", "linux"]
    wave: Annotated[str, Field(pattern=WAVE_PATTERN.pattern)] | None = None
    cutover_at: AwareDatetime | None = None
    target_size: Annotated[str, Field(pattern=AZURE_VM_SIZE_PATTERN.pattern)] | None = None
    target_subnet: Annotated[str, Field(pattern=SUBNET_NAME_PATTERN.pattern)] | None = None
    test_failover: bool = False
    # aws2azure:target-disk-type (InMageRcm diskType) and aws2azure:hybrid-benefit; None: the deployment's defaults.
    target_disk_type: Annotated[str, Field(pattern=DISK_TYPE_PATTERN.pattern)] | None = None
    hybrid_benefit: bool | None = None
    disks_gib: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    # Optional (added within v1: absent in older messages, and left out of the JSON when None, so a request
    # without checks is the same message as before).
    checks: VmChecks | None = None
    # One tagging of the instance; a later re-tag is a new request, the same one delivered again is not.
    request_id: Annotated[str, Field(min_length=1, max_length=128)]


class FailoverRequestedData(_Data):
    instance: InstanceRef
    requested_by: Literal["schedule", "operator", "wave"]
    source_stopped: bool
    reason: Annotated[str, Field(max_length=512)] = ""


class CancelRequestedData(_Data):
    instance: InstanceRef
    requested_by: Literal["tag-removed", "operator"]
    reason: Annotated[str, Field(max_length=512)] = ""


class _CloudEvent(BaseModel):
    # CloudEvents allows extension attributes on the envelope; they are kept, not rejected.
    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: Annotated[str, Field(min_length=1, max_length=256)]
    source: Annotated[str, Field(min_length=1, max_length=512)]
    time: AwareDatetime
    subject: Annotated[str, Field(min_length=1)]
    datacontenttype: Literal["application/json"] = "application/json"

    @model_validator(mode="after")
    def _subject_is_the_instance(self) -> _CloudEvent:
        data = getattr(self, "data", None)
        instance = getattr(data, "instance", None)
        if instance is not None and self.subject != instance.instance_id:
            raise ValueError(
                f"subject {self.subject!r} does not match data.instance.instance_id {instance.instance_id!r}"
            )
        for name in self.model_extra or {}:
            if not _EXTENSION_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid CloudEvents extension attribute name")
        return self

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def instance(self) -> InstanceRef:
        return self.data.instance  # type: ignore[attr-defined,no-any-return]

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


# The envelope, for events Azure sends out (migration/notifications.py) rather than receives.
CloudEventEnvelope = _CloudEvent


class MigrationRequested(_CloudEvent):
    type: Literal["io.aws2azure.migration.MigrationRequested.v1"] = MIGRATION_REQUESTED
    data: MigrationRequestedData


class FailoverRequested(_CloudEvent):
    type: Literal["io.aws2azure.migration.FailoverRequested.v1"] = FAILOVER_REQUESTED
    data: FailoverRequestedData


class CancelRequested(_CloudEvent):
    type: Literal["io.aws2azure.migration.CancelRequested.v1"] = CANCEL_REQUESTED
    data: CancelRequestedData


# The one union of the events that cross from AWS to Azure (and that the API raises by hand).
AnyEvent = MigrationRequested | FailoverRequested | CancelRequested
AnyEventData = MigrationRequestedData | FailoverRequestedData | CancelRequestedData
MigrationEvent = Annotated[AnyEvent, Field(discriminator="type")]
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(MigrationEvent)
_EVENT_OF: dict[type[_Data], type[_CloudEvent]] = {
    MigrationRequestedData: MigrationRequested,
    FailoverRequestedData: FailoverRequested,
    CancelRequestedData: CancelRequested,
}


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        # A discriminated union puts the event type first in the location; the operator needs the field.
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        where = ".".join(str(part) for part in loc) or "event"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return problems


def parse_event(raw: str | bytes | dict[str, Any]) -> AnyEvent:
    """Parse and validate one event, or raise InvalidInput naming every problem found."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"event is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"event must be a JSON object, not {type(raw).__name__}")
    event_type = raw.get("type")
    if event_type is None:
        raise InvalidInput("event has no 'type'", problems=["type: field required"])
    if event_type not in EVENT_TYPES:
        raise InvalidInput(
            f"unknown event type {event_type!r}; this version accepts {', '.join(EVENT_TYPES)}",
            problems=[f"type: unknown event type {event_type!r}"],
        )
    try:
        return _EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        problems = _describe(exc)
        raise InvalidInput(
            f"invalid {event_type.rsplit('.', 2)[-2]} event: " + "; ".join(problems), problems=problems
        ) from exc


def new_event_id() -> str:
    return str(uuid.uuid4())


def event_source(instance: InstanceRef, component: str) -> str:
    return f"aws2azure/{component}/{instance.account_id}/{instance.region}"


@overload
def new_event(data: MigrationRequestedData, *, component: str, at: datetime,
              event_id: str | None = None) -> MigrationRequested: ...  # fmt: skip
@overload
def new_event(data: FailoverRequestedData, *, component: str, at: datetime,
              event_id: str | None = None) -> FailoverRequested: ...  # fmt: skip
@overload
def new_event(data: CancelRequestedData, *, component: str, at: datetime,
              event_id: str | None = None) -> CancelRequested: ...  # fmt: skip
def new_event(data: AnyEventData, *, component: str, at: datetime, event_id: str | None = None) -> AnyEvent:
    """The one way to make an event: the CloudEvents envelope around ``data``, sent by ``component``.

    ``event_id`` is given where a retry must send the same event again (the AWS side derives it from the
    request), else a new one is made. The subject is the instance, as the contract requires."""
    kind = _EVENT_OF[type(data)]
    return kind.model_validate({  # type: ignore[return-value]
        "specversion": "1.0", "id": event_id or new_event_id(), "source": event_source(data.instance, component),
        "time": at, "subject": data.instance.instance_id, "data": data,
    })  # fmt: skip
