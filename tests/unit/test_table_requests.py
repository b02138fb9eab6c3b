"""Classifying Table service requests by their URL (the forms in functions/adapters/table_requests.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from functions.adapters.table_requests import TableRequest, classify

BASE = "http://127.0.0.1:10002/devstoreaccount1/migrations"


def _query(filter_: str) -> str:
    return f"{BASE}()?$filter={quote(filter_)}&$top=100"


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", f"{BASE}(PartitionKey='w1',RowKey='123-eu-west-1-i-0abc')", TableRequest.POINT_READ),
        ("GET", _query("PartitionKey eq 'w1'"), TableRequest.PARTITION_QUERY),
        ("GET", _query("PartitionKey eq 'w1' and phase eq 'Replicating'"), TableRequest.PARTITION_QUERY),
        ("GET", _query("PartitionKey eq 'a or b' and kind eq 'record'"), TableRequest.PARTITION_QUERY),
        ("GET", _query("phase eq 'Replicating'"), TableRequest.SCAN),
        ("GET", _query("PartitionKey eq 'w1' or phase eq 'Failed'"), TableRequest.SCAN),
        ("GET", _query("PartitionKey ge 'w1'"), TableRequest.SCAN),
        ("GET", f"{BASE}()", TableRequest.SCAN),
        ("PATCH", f"{BASE}(PartitionKey='w1',RowKey='r')", TableRequest.WRITE),
        ("POST", "http://127.0.0.1:10002/devstoreaccount1/Tables", TableRequest.SERVICE),
    ],
)  # fmt: skip
def test_each_request_is_classified_by_its_url(method: str, url: str, kind: TableRequest) -> None:
    assert classify(method, url) is kind
