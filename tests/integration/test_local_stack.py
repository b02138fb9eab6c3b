"""The local stack comes up on loopback, its stand-ins answer through the official SDKs, and
``down`` leaves no process behind."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devstack.launcher import LaunchContext, Stack, StackError, _is_ours, pick_port
from devstack.settings import StackSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, StackSettings]]:
    stack = Stack(tmp_path_factory.mktemp("stack"))
    settings = stack.up(["azurite", "moto"])
    yield stack, settings
    stack.down()


def test_settings_file_names_every_endpoint(stack: tuple[Stack, StackSettings]) -> None:
    running, settings = stack
    assert StackSettings.load(running.settings_path) == settings
    assert settings.azurite is not None
    assert settings.moto is not None
    assert settings.moto.url.startswith("http://127.0.0.1:")
    assert set(running.running()) == {"azurite", "moto"}


def test_table_update_with_a_stale_etag_is_refused(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    assert settings.azurite is not None
    service = TableServiceClient.from_connection_string(settings.azurite.connection_string)
    table = service.create_table_if_not_exists("stacksmoke")
    created = table.create_entity({"PartitionKey": "p", "RowKey": "r", "phase": "Requested"})
    first_etag = created["etag"]
    table.update_entity(
        {"PartitionKey": "p", "RowKey": "r", "phase": "Replicating"},
        mode=UpdateMode.REPLACE, etag=first_etag, match_condition=MatchConditions.IfNotModified,
    )  # fmt: skip
    with pytest.raises(ResourceModifiedError) as caught:
        table.update_entity(
            {"PartitionKey": "p", "RowKey": "r", "phase": "Failed"},
            mode=UpdateMode.REPLACE, etag=first_etag, match_condition=MatchConditions.IfNotModified,
        )  # fmt: skip
    assert caught.value.status_code == 412
    assert table.get_entity("p", "r")["phase"] == "Replicating"


def test_queue_message_round_trips_base64(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    assert settings.azurite is not None
    queue = QueueClient.from_connection_string(
        settings.azurite.connection_string, "stacksmoke",
        message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy(),
    )  # fmt: skip
    queue.create_queue()
    queue.send_message('{"hello": "azure"}')
    received = list(queue.receive_messages(max_messages=1))
    assert [m.content for m in received] == ['{"hello": "azure"}']
    assert received[0].dequeue_count == 1


def test_ec2_instance_is_created_and_tagged_in_moto(stack: tuple[Stack, StackSettings]) -> None:
    _, settings = stack
    assert settings.moto is not None
    ec2 = boto3.client(
        "ec2", endpoint_url=settings.moto.url, region_name=settings.moto.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    image_id = ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "aws2azure:migrate", "Value": "true"}])
    found = ec2.describe_instances(Filters=[{"Name": "tag:aws2azure:migrate", "Values": ["true"]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [instance_id]


def test_a_second_up_on_the_same_state_dir_is_refused(stack: tuple[Stack, StackSettings]) -> None:
    running, _ = stack
    with pytest.raises(StackError, match="already running"):
        Stack(running.root).up(["moto"])


def test_a_taken_preferred_port_moves_to_the_next_free_one() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        taken = blocker.getsockname()[1]
        blocker.listen()
        chosen = pick_port(taken)
        assert chosen != taken
        assert _free(chosen)
        assert LaunchContext(Path("."), Path("clock"), {}).port(taken) != taken


def test_ports_picked_for_one_stack_are_distinct() -> None:
    ctx = LaunchContext(Path("."), Path("clock"), {})
    assert len({ctx.port(10000) for _ in range(3)}) == 3


def test_down_leaves_no_process_behind(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "third")
    stack.up(["azurite", "moto"], quiet=True)
    records = [dict(r) for _, r in stack._records()]
    pids = [int(r["pid"]) for r in records]
    assert len(pids) == 2
    assert sorted(stack.down()) == ["azurite", "moto"]
    assert not any(_is_ours(r) for r in records)
    for pid in pids:
        assert not _alive(pid)
    assert not stack.settings_path.exists()


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
