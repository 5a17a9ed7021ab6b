"""template.yaml against the security scan (`make lint` runs checkov): what is fixed stays fixed, and every check
that is skipped instead says why, in the template, next to the resource."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


def test_every_log_group_is_encrypted_with_the_logs_key(template: dict) -> None:
    # GIVEN every log group of the stack (the functions' logs carry pseudonymized captured rows)
    groups = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert groups
    # THEN each is encrypted with LogsKey, a rotating key of the stack
    for name, group in groups.items():
        assert group["Properties"].get("KmsKeyId") == {"Fn::GetAtt": ["LogsKey", "Arn"]}, name
    key = template["Resources"]["LogsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True


def test_the_logs_key_is_used_only_by_cloudwatch_logs_for_this_accounts_log_groups(template: dict) -> None:
    # GIVEN the statements of the logs key's policy that grant more than administration
    statements = template["Resources"]["LogsKey"]["Properties"]["KeyPolicy"]["Statement"]
    users = [s for s in statements if any(not a.startswith(ADMIN_PREFIXES) for a in s["Action"])]
    # THEN the only one is for the CloudWatch Logs service of this region, and only for this account's log groups
    (logs,) = users
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": {
                "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
            }
        }
    }


ADMIN_PREFIXES = (
    "kms:Create",
    "kms:Describe",
    "kms:Enable",
    "kms:List",
    "kms:Put",
    "kms:Update",
    "kms:Revoke",
    "kms:Disable",
    "kms:Get",
    "kms:Delete",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)


def test_every_skipped_checkov_check_names_one_check_once_with_a_reason(template: dict) -> None:
    # GIVEN the checkov skips of every resource
    skips = {
        name: (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
        for name, resource in template["Resources"].items()
    }
    assert any(skips.values())
    for name, entries in skips.items():
        ids = [entry["id"] for entry in entries]
        # THEN each names a check id, at most once per resource, and says why in a sentence
        assert all(CHECK_ID.match(i) for i in ids), (name, ids)
        assert len(ids) == len(set(ids)), (name, ids)
        for entry in entries:
            assert len(entry.get("comment", "").split()) >= 6, (name, entry)
