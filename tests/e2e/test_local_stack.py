"""The local stack: template resources in moto, a local API Gateway, one worker process per function.

Most tests share one stack started from tests/fixtures/local_stack/template.yaml on free ports; the fixture's
functions are stdlib-only so workers start in milliseconds. The e2e ones drive real clients (aws CLI, curl,
`python -m sklambda_infra.local up/down`) and the project's own template.yaml.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from sklambda.runtime_env import RuntimeManifest
from sklambda_infra import layer
from sklambda_infra.local import FunctionCrashed, FunctionError, FunctionTimeout, LocalStack
from sklambda_infra.local.functions import FunctionRunner
from sklambda_infra.local.gateway import (
    ApiSettings,
    Route,
)
from tests.support import LOCAL_PLUMBING, PROXY_EVENT_KEYS, Log, aws_cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "local_stack"


@pytest.fixture
def log(fixture_stack_log: Log) -> Log:
    return fixture_stack_log


@pytest.fixture
def stack(fixture_stack: LocalStack) -> LocalStack:
    return fixture_stack


def request(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    """(status, headers, body bytes) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def keyed(stack: LocalStack) -> dict:
    return {"x-api-key": stack.api_key}


# ---------------------------------------------------------------------------------------------------------------
# Pure pieces: routes, events, responses, policies, environment


def _route(method: str, resource: str, function: str = "Fn") -> Route:
    return Route(method, resource, function, ApiSettings("Api", stage="v1"), api_key_required=False)


# ---------------------------------------------------------------------------------------------------------------
# Provisioning


def test_provisioner_creates_the_bucket_with_sse_kms_public_access_block_versioning_and_ownership(stack):
    # GIVEN the fixture's ModelBucket encrypted with DataKey
    s3, details = stack.client("s3"), stack.details
    bucket = details["model_bucket"]
    # THEN the bucket has a generated lowercase name and every configured property
    assert bucket.startswith("sklambda-local-modelbucket-") and bucket == bucket.lower()
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": details["data_key_id"],
    }
    assert rule["BucketKeyEnabled"] is True
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # AND objects written without headers get SSE-KMS with the data key (the bucket policy does not block them)
    s3.put_object(Bucket=bucket, Key="models/x.txt", Body=b"hello")
    head = s3.head_object(Bucket=bucket, Key="models/x.txt")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == details["data_key_id"]
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["DenyDeletingTheBucket"]
    assert "DenyInsecureTransport" in details["notes"]["ModelBucketPolicy"][0]


def test_provisioner_creates_kms_keys_with_their_spec_usage_rotation_and_alias(stack):
    kms, details = stack.client("kms"), stack.details
    signing = kms.describe_key(KeyId=details["signing_key_id"])["KeyMetadata"]
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    data = kms.describe_key(KeyId=details["data_key_id"])["KeyMetadata"]
    assert (data["KeySpec"], data["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert kms.get_key_rotation_status(KeyId=details["data_key_id"])["KeyRotationEnabled"] is True
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/sklambda-local-data"] == details["resources"]["DataKey"]
    # AND the signing key really signs (what publishing model cards needs)
    signature = kms.sign(KeyId=details["signing_key_id"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert kms.verify(
        KeyId=details["signing_key_id"],
        Message=b"m",
        Signature=signature["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]


def test_provisioner_resolves_references_between_resources(stack):
    # GIVEN the log group and alarm name the probe function through !Sub / !Ref
    details = stack.details
    function_name = details["functions"]["ProbeFunction"]["name"]
    log_group = details["resources"]["ProbeLogGroup"]
    # THEN they use the function's local name, and parameters reach typed properties
    assert log_group == f"/aws/lambda/{function_name}"
    groups = stack.client("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert groups[0]["retentionInDays"] == 7
    alarm = stack.client("cloudwatch").describe_alarms(AlarmNames=[details["resources"]["ProbeErrorsAlarm"]])
    alarm = alarm["MetricAlarms"][0]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}]
    assert alarm["AlarmActions"] == [details["resources"]["AlarmTopic"]]
    table = stack.client("dynamodb").describe_table(TableName=details["resources"]["Table"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_provisioner_honours_conditions_and_lists_cloud_only_resources(stack):
    details = stack.details
    # THEN the queue (WithQueue=no) is skipped, and resources without a local equivalent are listed, not dropped
    assert details["skipped_by_condition"] == {"Jobs": "MakeQueue"}
    # (the template's as SAM translates it: with the role SAM generates for each function)
    assert details["cloud_only"] == {
        "Dashboard": "AWS::CloudWatch::Dashboard",
        "ProbeRole": "AWS::IAM::Role",
        "ProbeFunctionRole": "AWS::IAM::Role",
        "SlowFunctionRole": "AWS::IAM::Role",
        "OtherFunctionRole": "AWS::IAM::Role",
        "ApprovalStateMachineRole": "AWS::IAM::Role",
        "ApprovalStateMachineRequestedRole": "AWS::IAM::Role",
    }
    # AND what the stack runs or emulates itself is listed with how: functions, the layer, the API, its stage, the
    #     rule that starts the state machine
    types, local = details["resource_types"], details["local_equivalents"]
    assert {"ProbeFunction", "SlowFunction", "OtherFunction", "FixtureApi", "ApprovalStateMachineRequested"} <= set(
        local
    )
    assert {types[name] for name in local} == {
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::Permission",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Stage",
        "AWS::Events::Rule",
    }
    assert next(name for name in local if types[name] == "AWS::Lambda::LayerVersion").startswith("SharedLayer")
    assert set(details["resources"]) | set(details["cloud_only"]) | set(local) | {"Jobs"} == set(types)


def test_an_event_starts_the_state_machine_which_waits_for_its_approval_over_sns_then_announces_it(stack):
    # GIVEN the fixture's approval state machine (started by events from fixture.requests), and a queue subscribed
    #       to the topic its approval requests go to, as an approver's mailbox would be
    details = stack.details
    sqs, sns, sfn = stack.client("sqs"), stack.client("sns"), stack.client("stepfunctions")
    queue = sqs.create_queue(QueueName="approver-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=details["resources"]["AlarmTopic"], Protocol="sqs", Endpoint=queue_arn)
    machine = details["state_machines"]["ApprovalStateMachine"]

    # WHEN a matching event is put on the default bus through the stack's endpoint
    stack.client("events").put_events(
        Entries=[{"Source": "fixture.requests", "DetailType": "Requested", "Detail": json.dumps({"model": "churn"})}]
    )

    # THEN an execution starts with the event's detail, and its approval request (with a task token) reaches SNS
    messages = []
    deadline = time.monotonic() + 20
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    [message] = messages
    request = json.loads(json.loads(message["Body"])["Message"])
    assert request["request"] == {"model": "churn"}
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING"

    # WHEN the approver answers with SendTaskSuccess against the stack's endpoint
    sfn.send_task_success(taskToken=request["token"], output=json.dumps({"approved": True, "by": "ops"}))

    # THEN the execution goes on, announces the approval with PutEvents, and succeeds
    assert stack.watcher is not None and stack.watcher.wait(execution["executionArn"], 20)
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["approval"] == {"approved": True, "by": "ops"}
    assert output["announced"]["FailedEntryCount"] == 0 and len(output["announced"]["Entries"]) == 1


@pytest.mark.e2e
def test_parameter_overrides_change_conditions_auth_and_environment(log):
    # GIVEN the fixture started with the queue on and API keys off (a stack of its own: other parameters)
    parameters = {"WithQueue": "yes", "AuthMode": "NONE"}
    with LocalStack(FIXTURE, stack_name="overrides", aws_port=0, api_port=0, parameters=parameters, log=log) as stack:
        # THEN the queue exists and the probe's !If picks its URL
        queue_url = stack.details["resources"]["Jobs"]
        attributes = stack.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        assert attributes["Attributes"]["VisibilityTimeout"] == "60"
        assert stack.details["functions"]["ProbeFunction"]["environment"]["QUEUE_URL"] == queue_url
        # AND no route needs a key, so no key is created
        assert stack.api_key is None
        status, _, _ = request(f"{stack.api_url}/probe")
        assert status == 200


# ---------------------------------------------------------------------------------------------------------------
# Gateway


def test_gateway_refuses_a_request_without_api_key_with_403_forbidden(stack):
    status, headers, body = request(f"{stack.api_url}/probe")
    assert status == 403
    assert json.loads(body) == {"message": "Forbidden"}
    assert headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_gateway_refuses_a_wrong_api_key(stack):
    status, _, body = request(f"{stack.api_url}/probe", headers={"x-api-key": "not-the-key"})
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})


def test_gateway_passes_a_request_with_the_api_key_as_a_proxy_event(stack):
    # WHEN the probe is called with the key, a query string and a body
    status, headers, body = request(
        f"{stack.api_url}/probe/report?x=1&x=2", method="POST", headers={**keyed(stack), "X-Test": "t"}, body=b"{}"
    )
    # THEN the function got a REST API proxy event for its route, and its response headers come back
    assert status == 200
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"] and headers["X-Probe"] == "single"
    event = json.loads(body)["event"]
    assert set(event) == PROXY_EVENT_KEYS
    assert (event["resource"], event["path"], event["httpMethod"]) == ("/probe/{action}", "/probe/report", "POST")
    assert event["pathParameters"] == {"action": "report"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["body"] == "{}"
    assert event["requestContext"]["stage"] == "test"
    assert event["requestContext"]["identity"]["apiKey"] == stack.api_key
    assert event["requestContext"]["identity"]["apiKeyId"] == stack.details["api_key_id"]


def test_api_key_is_a_real_key_in_moto_and_keys_created_later_work_too(stack):
    # GIVEN the key the stack created is in moto's API Gateway
    apigateway = stack.client("apigateway")
    key = apigateway.get_api_key(apiKey=stack.details["api_key_id"], includeValue=True)
    assert key["value"] == stack.api_key and key["enabled"]
    # WHEN someone creates another key through the AWS API THEN the gateway accepts it
    other = apigateway.create_api_key(name="another", enabled=True)
    assert request(f"{stack.api_url}/probe", headers={"x-api-key": other["value"]})[0] == 200
    # AND a disabled key is refused
    apigateway.update_api_key(
        apiKey=other["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    assert request(f"{stack.api_url}/probe", headers={"x-api-key": other["value"]})[0] == 403


def test_route_with_api_key_required_false_is_public(stack):
    status, _, body = request(f"{stack.api_url}/other")
    assert status == 200 and "env" in json.loads(body)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nowhere"), ("POST", "/probe"), ("GET", "/other/deeper"), ("TRACE", "/probe")]
)
def test_unknown_route_is_403_missing_authentication_token(stack, method, path):
    status, headers, body = request(f"{stack.api_url}{path}", method=method, headers=keyed(stack))
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


# ---------------------------------------------------------------------------------------------------------------
# Workers


def test_worker_runs_with_only_the_templates_environment_and_its_own_sys_path(stack, monkeypatch):
    # GIVEN a variable only in the local stack's own environment
    monkeypatch.setenv("SKLAMBDA_SECRET_OF_THE_PARENT", "leak")
    stack.runners["ProbeFunction"].recycle()  # the next call starts a fresh worker, after the variable was set
    # WHEN the probe reports what it sees
    report = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])
    env, details = report["env"], stack.details
    # THEN its environment is Globals + its own variables (resolved to the local physical ids) + plumbing only
    template_env = {
        "SHARED_SETTING": "from-globals",
        "OVERRIDDEN": "local",
        "MODEL_BUCKET": details["model_bucket"],
        "SIGNING_KEY_ID": details["arns"]["SigningKey"],
        "TABLE_NAME": details["resources"]["Table"],
        "QUEUE_URL": "none",
    }
    assert set(env) == set(template_env) | LOCAL_PLUMBING
    assert {k: env[k] for k in template_env} == template_env
    assert env["AWS_ENDPOINT_URL"] == details["aws_endpoint_url"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == details["functions"]["ProbeFunction"]["name"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    # AND sys.path is the code, then the layer, then the standard library: no venv, no project
    code, layer = str(FIXTURE / "functions" / "probe"), str(FIXTURE / "layers" / "common" / "python")
    assert report["sys_path"][:2] == [code, layer]
    assert not any("site-packages" in p or p.startswith(str(ROOT / "infra")) for p in report["sys_path"])
    assert report["layer"] == "shared-layer"
    # AND the context object looks like Lambda's
    context = report["context"]
    assert context["function_name"] == env["AWS_LAMBDA_FUNCTION_NAME"]
    assert context["invoked_function_arn"].endswith(f":function:{context['function_name']}")
    assert context["memory_limit_in_mb"] == 256 and 0 < context["remaining_ms"] <= 3000


def test_two_functions_do_not_share_environment_path_or_process(stack):
    probe = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])
    other = json.loads(stack.invoke("OtherFunction", {})["body"])
    assert probe["pid"] != other["pid"]
    assert other["env"]["OTHER_ONLY"] == "yes" and "OTHER_ONLY" not in probe["env"]
    assert "MODEL_BUCKET" not in other["env"] and other["env"]["OVERRIDDEN"] == "global"
    assert other["sys_path"][0] == str(FIXTURE / "functions" / "other")
    assert str(FIXTURE / "layers" / "common" / "python") not in other["sys_path"]


def test_worker_stays_warm_between_invocations(stack):
    first = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])
    second = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])
    assert (first["pid"], first["started"]) == (second["pid"], second["started"])


def test_handler_output_goes_to_the_stack_log_not_the_protocol(stack, log):
    stack.invoke("ProbeFunction", {"action": "report"})
    assert "[ProbeFunction] probe action=report" in log
    assert any(line.startswith("[ProbeFunction] REPORT RequestId: ") for line in log)


def test_integration_timeout_answers_504_and_the_worker_is_replaced(stack):
    # GIVEN a route whose TimeoutInMillis (700 ms) is shorter than the call
    pid_before = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])["pid"]
    started = time.monotonic()
    status, _, body = request(f"{stack.api_url}/impatient/sleep?seconds=5", headers=keyed(stack))
    # THEN API Gateway's 504 comes back after the integration timeout, not after the sleep
    assert (status, json.loads(body)) == (504, {"message": "Endpoint request timed out"})
    assert time.monotonic() - started < 3
    # AND the next call gets a fresh worker
    assert json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])["pid"] != pid_before


def test_function_timeout_answers_502_and_direct_invoke_raises(stack, log):
    # GIVEN SlowFunction with Timeout: 1
    status, _, body = request(f"{stack.api_url}/slow/sleep?seconds=5", headers=keyed(stack))
    # THEN Lambda's timeout reaches the client as API Gateway's 502, and the log says why
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    assert any("Task timed out after 1.00 seconds" in line for line in log)
    with pytest.raises(FunctionTimeout):
        stack.invoke("SlowFunction", {"action": "sleep", "seconds": 5})
    assert stack.invoke("SlowFunction", {"action": "report"})["statusCode"] == 200


def test_crashing_worker_answers_502_then_recovers(stack):
    # WHEN the handler kills its own process
    status, _, body = request(f"{stack.api_url}/probe/crash", headers=keyed(stack))
    # THEN the client sees 502, and the next request is served by a new worker
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    status, _, _ = request(f"{stack.api_url}/probe/report", headers=keyed(stack))
    assert status == 200
    with pytest.raises(FunctionCrashed):
        stack.invoke("ProbeFunction", {"action": "crash"})


def test_handler_exception_answers_502_and_the_worker_stays_warm(stack):
    pid = json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])["pid"]
    status, _, body = request(f"{stack.api_url}/probe/raise", headers=keyed(stack))
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})
    with pytest.raises(FunctionError) as caught:
        stack.invoke("ProbeFunction", {"action": "raise"})
    assert caught.value.error["errorType"] == "RuntimeError"
    assert json.loads(stack.invoke("ProbeFunction", {"action": "report"})["body"])["pid"] == pid


def test_malformed_proxy_response_answers_502(stack):
    status, _, body = request(f"{stack.api_url}/probe/malformed", headers=keyed(stack))
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


# ---------------------------------------------------------------------------------------------------------------
# Real clients (e2e)


@pytest.mark.e2e
def test_aws_cli_lists_the_model_bucket(stack):
    out = aws_cli(stack, "s3", "ls")
    assert stack.details["model_bucket"] in out.stdout


@pytest.mark.e2e
def test_curl_reaches_the_api_with_the_key_and_is_refused_without(stack):
    url = f"{stack.api_url}/probe/report"
    curl = shutil.which("curl")
    if curl is None:  # the same requests through urllib
        assert request(url)[0] == 403
        assert request(url, headers=keyed(stack))[0] == 200
        return
    without = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True)
    assert without.stdout == "403"
    with_key = subprocess.run(
        [curl, "-s", "-H", f"x-api-key: {stack.api_key}", url], capture_output=True, text=True, timeout=30
    )
    assert json.loads(with_key.stdout)["event"]["path"] == "/probe/report"


@pytest.mark.e2e
def test_cli_up_writes_local_json_status_reports_it_and_down_stops_it(tmp_path):
    # GIVEN a copy of the fixture project (it has a model bucket and signing key: `up` would publish the sample
    # model there but for --no-sample)
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    command = [sys.executable, "-m", "sklambda_infra.local"]
    up = subprocess.Popen(
        [*command, "up", "--project-root", str(project), "--aws-port", "0", "--api-port", "0", "--no-sample"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    details_file = project / ".sklambda" / "local.json"
    try:
        # WHEN `up` has started
        deadline = time.monotonic() + 30
        while not details_file.exists():
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "local.json did not appear"
            time.sleep(0.1)
        details = json.loads(details_file.read_text())
        # THEN the details have what clients need and point at live servers
        for key in (
            "api_url",
            "api_key",
            "aws_endpoint_url",
            "region",
            "access_key_id",
            "secret_access_key",
            "stack_name",
            "resources",
            "model_bucket",
            "signing_key_id",
            "data_key_id",
            "pid",
        ):
            assert details[key], key
        assert details["pid"] == up.pid
        assert request(f"{details['api_url']}/probe", headers={"x-api-key": details["api_key"]})[0] == 200
        status = subprocess.run([*command, "status", "--project-root", str(project)], capture_output=True, text=True)
        assert status.returncode == 0 and details["api_url"] in status.stdout
        # WHEN a shell evaluates `local env` (without any AWS configuration of its own)
        # THEN the AWS CLI and a plain HTTP client reach the stack with no other setup
        python = shlex.quote(sys.executable)
        script = (
            f'eval "$({python} -m sklambda_infra.local env --project-root {shlex.quote(str(project))})" && '
            f"{python} -m awscli s3 ls && "
            f'{python} -c "import os, urllib.request as u; '
            "e = os.environ; key = {'x-api-key': e['SKLAMBDA_API_KEY']}; "
            "r = u.Request(e['SKLAMBDA_API_URL'] + '/probe', headers=key); "
            'print(u.urlopen(r).status)"'
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKLAMBDA_"))}
        shell = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env={**clean, "HOME": str(tmp_path)}, timeout=60
        )
        assert shell.returncode == 0, shell.stderr
        assert details["model_bucket"] in shell.stdout and shell.stdout.rstrip().endswith("200")
        # WHEN `down` runs THEN the stack stops and removes its file
        down = subprocess.run([*command, "down", "--project-root", str(project)], capture_output=True, text=True)
        assert down.returncode == 0, down.stderr
        up.wait(timeout=20)
        assert up.returncode == 0
        assert not details_file.exists()
        printed = up.stdout.read()
        assert "curl -s -H 'x-api-key:" in printed
        # THEN with --no-sample no sample model was published or announced
        assert "sample_model" not in details and "Sample model" not in printed
        assert "sample model" not in up.stderr.read()
        status = subprocess.run([*command, "status", "--project-root", str(project)], capture_output=True, text=True)
        assert status.returncode == 3
        stopped = subprocess.run([*command, "env", "--project-root", str(project)], capture_output=True, text=True)
        assert stopped.returncode == 3 and stopped.stdout == "" and "not running" in stopped.stderr
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=20)


@pytest.mark.e2e
@pytest.mark.skipif(
    not (ROOT / "template.yaml").exists() or not (ROOT / "functions" / "predict" / "app.py").exists(),
    reason="needs the project's template.yaml and predict function",
)
def test_project_template_serves_health_with_the_api_key_only(project_stack, log, tmp_path):
    # GIVEN the project's own template and predict function
    stack = project_stack
    details = stack.details
    env = details["functions"]["PredictFunction"]["environment"]
    # THEN the function is wired to the local bucket and signing key
    assert env["SKLAMBDA_MODEL_BUCKET"] == details["model_bucket"]
    assert env["SKLAMBDA_SIGNING_KEY_ID"] == details["signing_key_id"]
    # AND /health answers with the key and is refused without
    assert request(f"{stack.api_url}/health")[0] == 403
    status, _, body = request(f"{stack.api_url}/health", headers=keyed(stack))
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
    # AND the function runs on the host copy of the dependency layer and says so: its package set is the pins'
    host_copy = layer.local_env()
    manifest = RuntimeManifest.read(host_copy)
    assert json.loads(body)["runtime"] == {
        "fingerprint": manifest.fingerprint,
        "python": manifest.python,
        "platform": "host",
        "packages": dict(manifest.packages),
    }
    assert host_copy in stack.functions["PredictFunction"].python_path
    assert any("host-Python copy" in note for note in details["functions"]["PredictFunction"]["notes"])

    # WHEN a probe runs in a worker with the predict function's layers and runtime stand-in
    spec = stack.functions["PredictFunction"]
    (tmp_path / "app.py").write_text(PROBE_IMPORTS)
    probe = replace(spec, code_dir=tmp_path, python_path=(tmp_path, *spec.python_path[1:]), handler="app.handler")
    runner = FunctionRunner(probe, stack.runners["PredictFunction"].env, log)
    try:
        found = runner.invoke({"names": ["sklearn", "sklambda", "boto3", "moto", "yaml", "pytest"]}).result
    finally:
        runner.stop()

    # THEN what the venv has beside the layer (moto, PyYAML, pytest) cannot be imported; the layer's can
    assert {name: origin is not None for name, origin in found.items()} == {
        "sklearn": True,
        "sklambda": True,
        "boto3": True,
        "moto": False,
        "yaml": False,
        "pytest": False,
    }
    assert found["sklearn"].startswith(str(host_copy))
    assert found["boto3"].startswith(str(layer.local_runtime_stand_in()))


PROBE_IMPORTS = """
import importlib.util


def handler(event, context):
    specs = {name: importlib.util.find_spec(name) for name in event["names"]}
    return {name: spec.origin if spec else None for name, spec in specs.items()}
"""
