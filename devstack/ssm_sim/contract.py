"""The stand-in's control API bodies (``/_ssm/``): managed nodes, documents, faults, what was run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PingStatus = Literal["Online", "ConnectionLost", "Inactive"]  # botocore ssm model, PingStatus
PlatformType = Literal["Windows", "Linux", "MacOS"]  # botocore ssm model, PlatformType
# install-fails: the install step ends Failed with the installer's error output; never-discovered: the step ends
# Success but the machine never registers with the appliance; stop-never-completes: EC2 never reports the
# instance stopped (read by devstack/ec2_events.py, which plays EC2's side of it).
Fault = Literal["install-fails", "never-discovered", "stop-never-completes"]


class ManagedNode(BaseModel):
    """An EC2 instance whose SSM Agent registered with Systems Manager (an InstanceInformation entry)."""

    model_config = ConfigDict(frozen=True)

    instance_id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    platform_type: PlatformType
    platform_name: str
    platform_version: str = ""
    ip_address: str
    computer_name: str
    ping_status: PingStatus = "Online"
    agent_version: str = "3.3.1345.0"


class SsmDocument(BaseModel):
    """A Command document (schemaVersion 2.2), as CloudFormation's AWS::SSM::Document creates it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=3, max_length=128, pattern=r"^[a-zA-Z0-9_\-.]{3,128}$")
    content: dict[str, Any]
    document_type: Literal["Command"] = "Command"


class FaultPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    # instance id -> fault
    instances: dict[str, Fault] = {}
    # Virtual seconds an install takes from SendCommand to the end of the step.
    install_seconds: float = Field(default=240.0, ge=0)


class InvocationInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    command_id: str
    instance_id: str
    document_name: str
    status: str
    registered_with_appliance: bool
