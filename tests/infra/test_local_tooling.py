"""Local-stack tooling with no stack: proxy events and responses, route tables, bucket policies, worker env."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sklambda_infra.local.functions import FunctionSpec, worker_environment
from sklambda_infra.local.gateway import (
    ApiSettings,
    BadProxyResponse,
    Route,
    RouteTable,
    http_response,
    proxy_event,
)
from sklambda_infra.local.provision import local_bucket_policy
from sklambda_infra.template import Pseudo
from tests.support import LOCAL_PLUMBING, PROXY_EVENT_KEYS


def _route(method: str, resource: str, function: str = "Fn") -> Route:
    return Route(method, resource, function, ApiSettings("Api", stage="v1"), api_key_required=False)


def test_route_table_prefers_literal_segments_over_parameters_over_greedy_paths():
    # GIVEN overlapping resources
    table = RouteTable(
        [
            _route("GET", "/models/{name}", "ByName"),
            _route("GET", "/models/latest", "Latest"),
            _route("ANY", "/{proxy+}", "CatchAll"),
        ]
    )
    # WHEN paths are matched THEN the most specific resource wins and path parameters are decoded
    assert table.match("GET", "/models/latest")[0].function == "Latest"
    route, params = table.match("GET", "/models/churn%20v2")
    assert (route.function, params) == ("ByName", {"name": "churn v2"})
    route, params = table.match("DELETE", "/a/b/c")
    assert (route.function, params) == ("CatchAll", {"proxy": "a/b/c"})


def test_route_table_has_no_match_for_a_missing_method_on_a_known_resource():
    table = RouteTable([_route("GET", "/health")])
    assert table.match("POST", "/health") is None
    assert table.match("GET", "/health/") is not None


def test_proxy_event_has_the_rest_api_v1_shape():
    # GIVEN a request with repeated headers and query parameters
    route = Route("POST", "/models/{name}/predict", "Predict", ApiSettings("Api", stage="v1"), True)
    event = proxy_event(
        route,
        method="POST",
        raw_path="/models/churn/predict?alias=production&tag=a&tag=b",
        headers=[("Content-Type", "application/json"), ("X-Multi", "1"), ("X-Multi", "2"), ("Host", "h:3000")],
        body=b'{"instances": []}',
        path_parameters={"name": "churn"},
        request_id="req-1",
        api_key="secret",
        api_key_id="key-1",
    )
    # THEN it has exactly API Gateway's keys, single values are the last ones and multi values keep all
    assert set(event) == PROXY_EVENT_KEYS
    assert event["resource"] == "/models/{name}/predict"
    assert event["path"] == "/models/churn/predict"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["X-Multi"] == "2" and event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["headers"]["X-Forwarded-Proto"] == "http"  # as API Gateway says https: the scheme the client used
    assert event["queryStringParameters"] == {"alias": "production", "tag": "b"}
    assert event["multiValueQueryStringParameters"]["tag"] == ["a", "b"]
    assert event["pathParameters"] == {"name": "churn"}
    assert event["stageVariables"] is None
    assert event["body"] == '{"instances": []}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "req-1" and context["stage"] == "v1"
    assert context["resourcePath"] == "/models/{name}/predict" and context["httpMethod"] == "POST"
    assert context["path"] == "/models/churn/predict"  # as requested: the local gateway's URLs have no stage
    assert context["identity"]["apiKey"] == "secret" and context["identity"]["apiKeyId"] == "key-1"


def test_proxy_event_without_query_or_body_uses_nulls_like_api_gateway():
    event = proxy_event(
        _route("GET", "/health"), method="GET", raw_path="/health", headers=[], body=b"", path_parameters={}
    )
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None and event["body"] is None


def test_proxy_event_base64_encodes_binary_media_types():
    route = Route("POST", "/upload", "Fn", ApiSettings("Api", binary_media_types=("application/octet-stream",)), False)
    event = proxy_event(
        route,
        method="POST",
        raw_path="/upload",
        headers=[("Content-Type", "application/octet-stream")],
        body=b"\x00\xff",
        path_parameters={},
    )
    assert event["isBase64Encoded"] is True and event["body"] == "AP8="


@pytest.mark.parametrize(
    ("content_type", "binary_types", "encoded"),
    [
        (None, ("*/*",), True),  # no Content-Type: API Gateway takes it for application/json
        (None, ("application/json",), True),
        (None, ("application/octet-stream",), False),
        ("application/octet-stream; charset=binary", ("application/*",), True),
        ("text/csv", ("image/*", "application/octet-stream"), False),
    ],
)
def test_proxy_event_base64_encodes_a_body_whose_content_type_is_a_binary_media_type(
    content_type, binary_types, encoded
):
    # GIVEN an API with these binary media types and a request with this Content-Type (or none)
    route = Route("POST", "/v2/models/{name}/infer", "Fn", ApiSettings("Api", binary_media_types=binary_types), False)
    headers = [("Content-Type", content_type)] if content_type else []
    # WHEN it becomes a proxy event
    body = b"{}\xff"
    event = proxy_event(route, method="POST", raw_path="/x", headers=headers, body=body, path_parameters={})
    # THEN the body is base64 exactly when the media type matches, else text (bytes UTF-8 cannot read replaced)
    assert event["isBase64Encoded"] is encoded
    assert event["body"] == (base64.b64encode(body).decode() if encoded else "{}\ufffd")


@pytest.mark.parametrize(
    ("accept", "content_type", "binary_types", "decoded"),
    [
        (None, "application/octet-stream", ("*/*",), True),  # tritonclient: no Accept
        (None, "application/octet-stream", ("application/octet-stream",), True),
        (None, "application/octet-stream", ("image/png",), False),
        ("application/json", "application/octet-stream", ("application/octet-stream",), False),  # first Accept wins
        ("image/png, application/octet-stream", "application/octet-stream", ("application/octet-stream",), False),
        ("application/octet-stream, */*", "application/json", ("application/octet-stream",), True),
        ("*/*", "application/octet-stream", ("application/octet-stream",), True),
        (None, "application/octet-stream", (), False),  # no binary media types: the base64 text goes out as is
    ],
)
def test_a_base64_answer_is_decoded_when_the_first_accept_or_its_content_type_is_binary(
    accept, content_type, binary_types, decoded
):
    # GIVEN a proxy answer with isBase64Encoded, and the request's Accept
    result = {"statusCode": 200, "headers": {"Content-Type": content_type}, "body": "AP8=", "isBase64Encoded": True}
    # WHEN API Gateway maps it
    response = http_response(result, "req-1", accept=accept, binary_media_types=binary_types)
    # THEN the body is the bytes, or the base64 text itself
    assert response.body == (b"\x00\xff" if decoded else b"AP8=")


def test_http_response_merges_headers_and_decodes_base64_bodies():
    # GIVEN a proxy response with both header maps and a base64 body
    response = http_response(
        {
            "statusCode": 201,
            "headers": {"X-One": "1", "Set-Cookie": "ignored"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "AP8=",
            "isBase64Encoded": True,
        },
        "req-1",
        binary_media_types=("*/*",),
    )
    # THEN multiValueHeaders win for the same name, the body is decoded, and API Gateway's defaults are added
    assert response.status == 201 and response.body == b"\x00\xff"
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert response.header("X-One") == "1"
    assert response.header("Content-Type") == "application/json"
    assert response.header("x-amzn-RequestId") == "req-1"


@pytest.mark.parametrize(
    "result",
    [None, "text", {"statusCode": "abc"}, {"statusCode": 200, "body": {"a": 1}}, {"statusCode": 200, "extra": 1}],
)
def test_http_response_refuses_malformed_proxy_responses(result):
    with pytest.raises(BadProxyResponse):
        http_response(result, "req-1")


def test_bucket_policy_statements_with_conditions_are_left_out_locally():
    # GIVEN a TLS-only deny (moto cannot evaluate aws:SecureTransport) and an unconditional deny
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "TlsOnly", "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteBucket"},
        ],
    }
    # WHEN it is prepared for moto THEN only the unconditional statement is kept, and the other is reported
    kept, dropped = local_bucket_policy(policy)
    assert [s["Sid"] for s in kept["Statement"]] == ["NoDelete"]
    assert dropped == ["TlsOnly"]


def test_worker_environment_is_the_templates_plus_local_plumbing(monkeypatch):
    # GIVEN a variable in the parent's environment that the template does not give the function
    monkeypatch.setenv("SKLAMBDA_SECRET_OF_THE_PARENT", "leak")
    spec = FunctionSpec(
        logical_id="Fn",
        name="stack-fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:stack-fn",
        handler="app.handler",
        runtime="python3.11",
        code_dir=Path("/code"),
        python_path=(Path("/code"),),
        timeout_s=7,
        memory_mb=512,
        environment={"FROM_TEMPLATE": "1", "AWS_REGION": "template-cannot-move-the-region"},
    )
    # WHEN the worker's environment is built
    env = worker_environment(spec, Pseudo(region="eu-west-1"), "http://127.0.0.1:4566")
    # THEN it is the template's variables plus the plumbing only; the plumbing wins
    assert set(env) == {"FROM_TEMPLATE"} | LOCAL_PLUMBING
    assert env["AWS_REGION"] == "eu-west-1" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512" and env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "7"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
