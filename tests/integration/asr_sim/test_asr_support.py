"""The comparison helpers the shape tests rely on do catch what they are meant to catch."""

from __future__ import annotations

from azure.mgmt.recoveryservicessiterecovery import models

from tests.integration.asr_sim.support import structure_mismatches, unknown_keys


def test_a_missing_key_and_a_wrong_type_are_reported() -> None:
    example = {"properties": {"a": "x", "b": 1, "nested": {"c": True}, "list": [{"d": "y"}]}}
    actual = {"properties": {"a": 3, "nested": {"c": True}, "list": [{"e": "y"}]}}
    assert structure_mismatches(example, actual) == [
        "$.properties.a: example is string, simulator gives number",
        "$.properties.b: missing",
        "$.properties.list[0].d: missing",
    ]


def test_provider_specific_objects_compare_only_their_instance_type() -> None:
    example = {"providerSpecificDetails": {"instanceType": "HyperVReplicaAzure", "only": "hyper-v"}}
    assert structure_mismatches(example, {"providerSpecificDetails": {"instanceType": "InMageRcm"}}) == []
    assert structure_mismatches(example, {"providerSpecificDetails": {}}) == [
        "$.providerSpecificDetails.instanceType: missing"
    ]


def test_an_empty_list_cannot_stand_in_for_examples_elements() -> None:
    assert structure_mismatches({"tasks": [{"x": 1}]}, {"tasks": []}) == [
        "$.tasks: example has elements, simulator gives an empty list"
    ]


def test_keys_the_sdk_model_does_not_declare_are_reported_through_discriminators() -> None:
    item = {
        "name": "x",
        "properties": {
            "protectionState": "Protected",
            "inventedField": 1,
            "providerSpecificDetails": {
                "instanceType": "InMageRcm",
                "initialReplicationProgressPercentage": 5,
                "protectedDisks": [{"diskId": "d", "madeUp": True}],
            },
        },
    }
    assert unknown_keys(models.ReplicationProtectedItem, item) == [
        "$.properties.inventedField: not a field of ReplicationProtectedItemProperties",
        "$.properties.providerSpecificDetails.protectedDisks[0].madeUp: not a field of InMageRcmProtectedDiskDetails",
    ]
