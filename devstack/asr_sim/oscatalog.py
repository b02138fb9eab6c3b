"""The operating systems the simulated InMageRcm provider supports (replicationSupportedOperatingSystems).

A machine's ``os_name`` is supported when it starts with a listed ``osName`` (ignoring case) and the rest
names one of that entry's versions, e.g. "Ubuntu 22.04", "Windows Server 2019 Datacenter", "RHEL 9.2".
Amazon Linux is absent on purpose: Site Recovery does not support it, which makes it the natural
"unsupported OS" case for EC2 fleets.
"""

from __future__ import annotations

import re
from typing import Any

SUPPORTED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Windows Server", "Windows", ("2012 R2", "2016", "2019", "2022", "2025")),
    ("Ubuntu", "Linux", ("18.04", "20.04", "22.04", "24.04")),
    ("RHEL", "Linux", ("7", "8", "9")),
    ("Red Hat Enterprise Linux", "Linux", ("7", "8", "9")),
    ("CentOS", "Linux", ("7",)),
    ("Rocky Linux", "Linux", ("8", "9")),
    ("Oracle Linux", "Linux", ("7", "8", "9")),
    ("SUSE Linux Enterprise Server", "Linux", ("12", "15")),
    ("Debian", "Linux", ("10", "11", "12")),
)


def is_supported(os_type: str, os_name: str) -> bool:
    name = " ".join(os_name.split()).lower()
    for listed, listed_type, versions in SUPPORTED:
        if listed_type.lower() != os_type.lower() or not name.startswith(listed.lower()):
            continue
        rest = name[len(listed) :].strip()
        for version in versions:
            # "22.04" matches "22.04" and "22.04.3"; "9" matches "9" and "9.2" but not "90".
            if re.match(re.escape(version.lower()) + r"(?![0-9])", rest):
                return True
    return False


def supported_os_list(instance_type: str | None) -> list[dict[str, Any]]:
    if instance_type not in (None, "", "InMageRcm"):
        return []
    return [
        {
            "instanceType": "InMageRcm",
            "supportedOs": [
                {"osName": name, "osType": os_type, "osVersions": [{"version": v} for v in versions]}
                for name, os_type, versions in SUPPORTED
            ],
        }
    ]
