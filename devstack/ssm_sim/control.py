"""A typed client for the SSM stand-in's control API (``/_ssm/``), and the install document from the template.

control = SsmSimControl(stack.ssm.url)
control.add_document(install_document(name))        # what infra/aws/template.yaml defines
control.add_node(ManagedNode(instance_id=..., platform_type="Linux", ...))
control.set_faults(FaultPlan(instances={"i-0abc...": "install-fails"}))
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from devstack.settings import REPO_ROOT
from devstack.ssm_sim.contract import FaultPlan, InvocationInfo, ManagedNode, SsmDocument

TEMPLATE = REPO_ROOT / "infra" / "aws" / "template.yaml"
DOCUMENT_RESOURCE = "MobilityInstallDocument"
# The name the local stack gives the document (the template's is MobilityInstall-${AWS::StackName}).
LOCAL_DOCUMENT_NAME = "MobilityInstall-aws2azure"


class SsmSimControlError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"SSM stand-in control API answered {status}: {body}")
        self.status = status


def install_document(name: str = LOCAL_DOCUMENT_NAME, template: Path = TEMPLATE) -> SsmDocument:
    """The Mobility install document exactly as the SAM template defines it (parameter defaults left as
    CloudFormation intrinsics: the stand-in runs no script, it only honours the steps and preconditions)."""
    resource = yaml.load(template.read_text(), Loader=_CfnLoader)["Resources"][DOCUMENT_RESOURCE]
    return SsmDocument(name=name, content=resource["Properties"]["Content"])


class _CfnLoader(yaml.SafeLoader):
    """CloudFormation short-form tags (!Ref X) read as their long form, as infra/tools/cfn_yaml.py does."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


class SsmSimControl:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/") + "/_ssm", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SsmSimControl:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, *, json: Any = None) -> Any:
        response = self._client.request(method, path, json=json)
        if response.status_code >= 400:
            raise SsmSimControlError(response.status_code, response.text)
        return response.json()

    def add_node(self, node: ManagedNode) -> ManagedNode:
        return ManagedNode.model_validate(self._call("POST", "/nodes", json=node.model_dump(mode="json")))

    def nodes(self) -> list[ManagedNode]:
        return [ManagedNode.model_validate(n) for n in self._call("GET", "/nodes")]

    def add_document(self, document: SsmDocument) -> list[str]:
        steps: list[str] = self._call("POST", "/documents", json=document.model_dump(mode="json"))["steps"]
        return steps

    def set_faults(self, plan: FaultPlan) -> FaultPlan:
        return FaultPlan.model_validate(self._call("PUT", "/faults", json=plan.model_dump(mode="json")))

    def faults(self) -> FaultPlan:
        return FaultPlan.model_validate(self._call("GET", "/faults"))

    def invocations(self) -> list[InvocationInfo]:
        return [InvocationInfo.model_validate(i) for i in self._call("GET", "/invocations")]

    def calls(self) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", "/calls")
        return result
