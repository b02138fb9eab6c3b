"""Fixtures for the AWS side's tests: moto's server and Azurite, provisioned as infra/aws would, per module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

import boto3
import pytest
from azure.storage.queue import QueueClient

from devstack.aws_local import QUEUE_NAME, provision
from devstack.launcher import Stack
from devstack.settings import MOTO_AMIS_FILE
from tests.integration.aws.aws_test_support import LocalAws, QueueReader


def _with_env(values: Mapping[str, str]) -> Callable[[], None]:
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)

    def restore() -> None:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    return restore


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    stack = Stack(tmp_path_factory.mktemp("aws-stack"))
    # Only moto's server process reads this (at its start): our AMI list, with arm64 and FreeBSD images.
    restore = _with_env({"MOTO_AMIS_PATH": str(MOTO_AMIS_FILE)})
    try:
        settings = stack.up(["moto", "azurite"], quiet=True)
    finally:
        restore()
    try:
        side = provision(settings)
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=side.region
        )
        ec2 = session.client("ec2", endpoint_url=side.aws_environment["AWS_ENDPOINT_URL"])
        reader = QueueReader(
            QueueClient.from_connection_string(settings.azurite.connection_string, QUEUE_NAME)  # type: ignore[union-attr]
        )
        aws = LocalAws(stack=settings, side=side, ec2=ec2, queue=reader, session=session)
        aws.set_env(side.lambda_environment())
        try:
            yield aws
        finally:
            aws.restore_env()
    finally:
        stack.down(quiet=True)
