"""Counts what the Table clients actually send, by kind, at the HTTP pipeline.

A full-table scan costs one request per 1,000 entities and grows with the fleet; aws2azure's reads are
meant to be point reads (PartitionKey + RowKey) and single-partition queries only. This policy sits in the
Table clients' pipeline and classifies every request it sees, so a scan is counted whoever sends it.
The URL forms are the Table service's (Learn: "Query entities" and "Querying tables and entities":
``/{table}(PartitionKey='p',RowKey='r')`` for one entity, ``/{table}()?$filter=...`` for a query).
"""

from __future__ import annotations

import re
import threading
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

_POINT = re.compile(r"\(PartitionKey='(?:[^']|'')*',RowKey='(?:[^']|'')*'\)$")
_QUOTED = re.compile(r"'(?:[^']|'')*'")
_ONE_PARTITION = re.compile(r"PartitionKey eq ''(?: and .*)?", re.IGNORECASE | re.DOTALL)


class TableRequest(StrEnum):
    POINT_READ = "point_read"
    PARTITION_QUERY = "partition_query"
    SCAN = "scan"  # a query not bound to one partition: it reads the whole table
    WRITE = "write"
    SERVICE = "service"  # table-level operations (create, list tables)


def classify(method: str, url: str) -> TableRequest:
    """What one request to the Table service is (see the module docstring for the URL forms)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if method.upper() != "GET":
        return TableRequest.SERVICE if path.rstrip("/").endswith("/Tables") else TableRequest.WRITE
    if path.rstrip("/").endswith("/Tables"):
        return TableRequest.SERVICE
    if _POINT.search(path):
        return TableRequest.POINT_READ
    filters = parse_qs(parts.query).get("$filter", [])
    if filters:
        # Literals blanked first, so an " or " inside a value cannot make or break the match.
        shape = _QUOTED.sub("''", filters[0]).strip()
        if _ONE_PARTITION.fullmatch(shape) and not re.search(r"\b(or|not)\b", shape, re.IGNORECASE):
            return TableRequest.PARTITION_QUERY
    return TableRequest.SCAN


class TableRequestCounter(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """``counts[kind]``: the requests sent so far (every retry counts: each is a request).

    azure-data-tables builds its own pipeline and does not take ``per_call_policies``; its CustomHookPolicy
    runs ``raw_request_hook`` on every request, in the clients the service client hands out too, so that
    is where this counter is installed (``raw_request_hook=counter.on_request``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[TableRequest, int] = dict.fromkeys(TableRequest, 0)

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        kind = classify(request.http_request.method, request.http_request.url)
        with self._lock:
            self.counts[kind] += 1

    def __getitem__(self, kind: TableRequest) -> int:
        return self.counts[kind]
