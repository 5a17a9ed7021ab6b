"""sklambda.connection: one resolution of where a publisher's stack is (arguments, environment, local stack)."""

import json
import os

import pytest

from sklambda import connection
from sklambda.connection import Target, find_local_details, read_local_details, resolve
from sklambda.errors import ConfigurationError

LOCAL = {
    "pid": os.getpid(),
    "model_bucket": "local-models",
    "signing_key_id": "arn:aws:kms:us-east-1:123456789012:key/local",
    "aws_endpoint_url": "http://127.0.0.1:45661",
    "region": "eu-west-1",
    "access_key_id": "testing",
    "secret_access_key": "testing-secret",
    "api_url": "http://127.0.0.1:45662",
    "api_key": "k3y",
    "buckets": {"DataBucket": "local-data"},
    "runtime_path": "/rt/layer:/rt/stand-in",
    "state_machines": {"RetrainStateMachine": "arn:aws:states:eu-west-1:123456789012:stateMachine:retrain"},
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout (template.yaml) whose local stack is running (this process's pid), entered from a subfolder."""
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / ".sklambda").mkdir()
    (tmp_path / ".sklambda" / "local.json").write_text(json.dumps(LOCAL))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv(connection.ENV_LOCAL_FILE, raising=False)
    return tmp_path


def test_a_running_local_stack_is_found_from_a_subfolder_when_the_environment_names_no_registry(project):
    # GIVEN an empty environment, in a subfolder of a checkout whose local stack runs
    # WHEN the target is resolved
    target = resolve(environ={})
    # THEN every value comes from the stack's details, and the source says so
    assert target.model_bucket == "local-models" and target.signing_key_id == LOCAL["signing_key_id"]
    assert target.endpoint_url == LOCAL["aws_endpoint_url"] and target.region == "eu-west-1"
    assert target.data_bucket == "local-data" and target.runtime_path == LOCAL["runtime_path"]
    assert target.local_file == project / ".sklambda" / "local.json"
    assert target.source.startswith("local stack ")


def test_the_environment_beats_the_local_stack_and_arguments_beat_the_environment(project):
    # GIVEN a registry named by the environment (a cloud account) while a local stack runs
    env = {"SKLAMBDA_MODEL_BUCKET": "cloud-models", "SKLAMBDA_SIGNING_KEY_ID": "cloud-key", "AWS_REGION": "us-west-2"}
    # WHEN resolved with and without explicit arguments
    from_env = resolve(environ=env)
    explicit = resolve(model_bucket="given", signing_key_id="given-key", environ=env)
    # THEN the local stack is not read at all: no endpoint or fake credentials leak into a cloud publish
    assert (from_env.model_bucket, from_env.endpoint_url, from_env.access_key_id) == ("cloud-models", None, None)
    assert from_env.local_file is None and from_env.source == "environment" and from_env.region == "us-west-2"
    assert (explicit.model_bucket, explicit.signing_key_id, explicit.source) == ("given", "given-key", "arguments")


def test_a_local_stack_fills_only_what_the_environment_left_out(project):
    # GIVEN only the bucket in the environment, and a command that needs the signing key
    target = resolve(environ={"SKLAMBDA_MODEL_BUCKET": "mine"})
    # THEN the bucket stays the environment's; the key and endpoint come from the running stack
    assert target.model_bucket == "mine" and target.signing_key_id == LOCAL["signing_key_id"]
    assert target.endpoint_url == LOCAL["aws_endpoint_url"]


def test_a_stopped_stacks_details_are_ignored_and_the_error_says_how_to_get_a_registry(project):
    # GIVEN details left behind by a process that has exited
    stale = {**LOCAL, "pid": 2**22 + 12345}
    (project / ".sklambda" / "local.json").write_text(json.dumps(stale))
    # WHEN resolved with nothing else configured
    with pytest.raises(ConfigurationError) as refused:
        resolve(environ={})
    # THEN it names what is missing and the three ways to give it
    message = refused.value.message
    assert "no model bucket and no signing key configured" in message
    assert "SKLAMBDA_MODEL_BUCKET" in message and "sklambda local env" in message and "make local" in message
    assert "local.json is from a local stack that is not running any more" in message
    assert read_local_details(project / ".sklambda" / "local.json") is None


def test_read_only_commands_need_no_signing_key(tmp_path, monkeypatch):
    # GIVEN no local stack at all, and only a bucket
    monkeypatch.setenv(connection.ENV_LOCAL_FILE, str(tmp_path / "absent.json"))
    # WHEN a command that does not verify resolves
    target = resolve(model_bucket="b", need_signing_key=False, environ={})
    # THEN the bucket is enough
    assert target.model_bucket == "b" and target.signing_key_id is None


def test_sklambda_local_file_names_the_details_file_anywhere(tmp_path, monkeypatch):
    # GIVEN details outside any checkout, named by SKLAMBDA_LOCAL_FILE
    details = tmp_path / "elsewhere.json"
    details.write_text(json.dumps(LOCAL))
    monkeypatch.setenv(connection.ENV_LOCAL_FILE, str(details))
    # THEN that file is the one found and read
    assert find_local_details(tmp_path) == details
    assert resolve(environ={}).model_bucket == "local-models"


def test_the_environment_a_target_exports_resolves_back_to_the_same_target(project, tmp_path):
    # GIVEN the target of the running stack
    target = resolve(environ={})
    # WHEN its environment is exported and resolved again with no local stack to read
    exported = target.environment()
    (project / ".sklambda" / "local.json").unlink()
    again = resolve(environ=exported)
    # THEN both regions are set (the AWS CLI v1 reads only AWS_DEFAULT_REGION) and nothing is lost on the way
    assert exported["AWS_REGION"] == exported["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert exported["SKLAMBDA_API_URL"] == LOCAL["api_url"] and exported["SKLAMBDA_DATA_BUCKET"] == "local-data"
    # AND the retraining state machine `sklambda retrain` starts is exported with the registry (`local env` users)
    assert exported["SKLAMBDA_RETRAIN_STATE_MACHINE_ARN"] == LOCAL["state_machines"]["RetrainStateMachine"]
    fields = ("model_bucket", "signing_key_id", "endpoint_url", "region", "access_key_id", "api_key", "runtime_path",
              "retrain_state_machine_arn")  # fmt: skip
    assert all(getattr(again, f) == getattr(target, f) for f in fields)
    assert again.source == "environment"


def test_a_target_from_details_takes_the_data_bucket_from_either_key():
    # GIVEN details with the data bucket under its own key, and older ones with it only among the buckets
    newer = Target.from_local_details({"data_bucket": "d1", "buckets": {"DataBucket": "ignored"}})
    older = Target.from_local_details({"buckets": {"DataBucket": "d2"}})
    # THEN both name it
    assert (newer.data_bucket, older.data_bucket) == ("d1", "d2")
