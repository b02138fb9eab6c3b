"""A throwaway test CA (trustme) and a loopback server certificate signed by it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerCertificates:
    ca_cert: Path
    server_cert_chain: Path
    server_key: Path


def create_certificates(directory: Path) -> ServerCertificates:
    """Write ca.pem (trust this), server.pem and server.key (the server's) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="aws2azure local ASR simulator")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = ServerCertificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca_cert))
    with paths.server_cert_chain.open("wb") as chain:
        for blob in leaf.cert_chain_pems:
            chain.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(paths.server_key))
    paths.server_key.chmod(0o600)
    return paths
