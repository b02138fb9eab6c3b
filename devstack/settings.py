"""The one settings file the stack writes and tests, the demo and the CLI read."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state"
SETTINGS_FILE_NAME = "stack.json"
# The AMIs moto's server offers (Windows and Linux, HVM and one paravirtual, x86_64 and arm64), so
# every local stack, test and demo sees the same realistic images.
MOTO_AMIS_FILE = Path(__file__).resolve().parent / "data" / "amis.json"
# Azurite's well-known development account: public, documented, and only ever used on loopback.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def state_dir() -> Path:
    return Path(os.environ.get("AWS2AZURE_STATE_DIR", DEFAULT_STATE_DIR))


class AzuriteEndpoints(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{self.host}:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://{self.host}:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://{self.host}:{self.table_port}/{AZURITE_ACCOUNT};"
        )


class MotoEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    region: str = "eu-west-1"
    # moto accepts any credentials; these keep boto3 from looking for real ones.
    access_key_id: str = "testing"
    secret_access_key: str = "testing"


class AsrEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_url: str
    ca_cert: str
    subscription_id: str
    resource_group: str
    vault_name: str


class SsmEndpoint(BaseModel):
    """The local SSM stand-in (devstack/ssm_sim): AWS_ENDPOINT_URL_SSM points boto3's SSM client at it."""

    model_config = ConfigDict(frozen=True)

    url: str


class WebhookEndpoint(BaseModel):
    """The local webhook receiver (devstack/webhook_receiver.py): NOTIFY_WEBHOOK_URL and its signing secret."""

    model_config = ConfigDict(frozen=True)

    url: str
    secret: str


class HostEndpoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_url: str
    master_key: str
    function_keys: dict[str, str] = {}


class StackSettings(BaseModel):
    """Where every running service of the local stack answers."""

    model_config = ConfigDict(frozen=True)

    state_dir: str
    clock_file: str
    azurite: AzuriteEndpoints | None = None
    moto: MotoEndpoint | None = None
    asr: AsrEndpoint | None = None
    ssm: SsmEndpoint | None = None
    webhook: WebhookEndpoint | None = None
    host: HostEndpoint | None = None

    def write(self, path: Path | None = None) -> Path:
        target = path or Path(self.state_dir) / SETTINGS_FILE_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(target)
        return target

    @classmethod
    def load(cls, path: Path | None = None) -> StackSettings:
        source = path or state_dir() / SETTINGS_FILE_NAME
        if not source.exists():
            raise FileNotFoundError(f"no stack settings at {source}: start the local stack with 'aws2azure stack up'")
        return cls.model_validate_json(source.read_text())

    def aws_environment(self) -> dict[str, str]:
        """Environment variables that point boto3 at moto's server."""
        if self.moto is None:
            return {}
        return {
            "AWS_ENDPOINT_URL": self.moto.url,
            "AWS_DEFAULT_REGION": self.moto.region,
            "AWS_ACCESS_KEY_ID": self.moto.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.moto.secret_access_key,
        }
