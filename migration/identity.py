"""Who an instance is, across both clouds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

INSTANCE_ID_PATTERN = re.compile(r"^i-[0-9a-f]{8,17}$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
# us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, us-isob-east-1, il-central-1
REGION_PATTERN = re.compile(r"^(us|eu|ap|ca|sa|me|af|il|mx|cn)(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")


def _matches(pattern: re.Pattern[str], what: str, example: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} (expected something like {example})")
        return value

    return AfterValidator(check)


InstanceId = Annotated[str, _matches(INSTANCE_ID_PATTERN, "EC2 instance id", "i-0123456789abcdef0")]
AccountId = Annotated[str, _matches(ACCOUNT_ID_PATTERN, "AWS account id", "123456789012")]
Region = Annotated[str, _matches(REGION_PATTERN, "AWS region", "eu-west-1")]


class InstanceRef(BaseModel):
    """An EC2 instance, named so that it is unique across accounts and regions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: AccountId
    region: Region
    instance_id: InstanceId

    @property
    def migration_id(self) -> str:
        """The id of the migration record and of its one orchestration.

        Durable Functions instance ids may not contain '/', '\\', '#' or '?'; this uses none.
        """
        return f"{self.account_id}-{self.region}-{self.instance_id}"

    @classmethod
    def from_migration_id(cls, migration_id: str) -> InstanceRef:
        account, _, rest = migration_id.partition("-")
        region, sep, instance = rest.rpartition("-i-")
        if not sep:
            raise ValueError(f"{migration_id!r} is not a migration id (account-region-instance)")
        return cls(account_id=account, region=region, instance_id=f"i-{instance}")
