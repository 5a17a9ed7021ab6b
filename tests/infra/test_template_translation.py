"""The translated template the local stack reads: aws-sam-translator's output, and what the stack reads from it.

No AWS, no servers: a small SAM template is translated offline, and the readers (functions, API routes, SQS event
sources) are run on it with a resolver that is given the physical ids a provisioner would have created.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sklambda_infra import translation
from sklambda_infra.local.events import sqs_event_sources
from sklambda_infra.local.gateway import api_routes
from sklambda_infra.template import (
    NO_VALUE,
    Resolver,
    TemplateError,
    environment_variables,
    load_template,
    parse_template,
    referenced_function,
    resources_of_type,
)
from sklambda_infra.translation import LOCAL_ARTIFACTS_BUCKET, resolve_language_extensions, translate

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "arn:aws:lambda:us-east-1:123456789012"

TEMPLATE = """
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Retention: {Type: Number, Default: 7}
  Secret: {Type: String, Default: ""}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  HasSecret: !Not [!Equals [!Ref Secret, ""]]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 30
    Layers: [!Ref Shared]
    Environment:
      Variables:
        LOG_LEVEL: INFO
        OVERRIDDEN: from-globals
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Queue:
    Type: AWS::SQS::Queue
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/shared/}
  Own:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/own/}
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Variables: {color: blue}
      BinaryMediaTypes: [application~1octet-stream]
      Auth: !If [IsProd, {ApiKeyRequired: true, UsagePlan: {CreateUsagePlan: PER_API}}, {ApiKeyRequired: true}]
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/fn/
      Handler: app.handler
      Layers: [!Ref Own]
      AutoPublishAlias: live
      Environment:
        Variables:
          OVERRIDDEN: from-function
          BUCKET: !Ref Bucket
          STAGE: !If [IsProd, production, development]
          SECRET: !If [HasSecret, !Ref Secret, !Ref AWS::NoValue]
          DEBUG: true
          RETENTION: !Ref Retention
      Events:
        Predict: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/models/{name}/predict", Method: post}}
        Health:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health, Method: get, Auth: {ApiKeyRequired: false}}
        Proxy: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/{proxy+}", Method: any, TimeoutInMillis: 700}}
        Jobs: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 1}}
  Other:
    Type: AWS::Serverless::Function
    Properties:
      Handler: main.handler
      Events:
        Ping: {Type: Api, Properties: {Path: /ping, Method: get}}
"""


@pytest.fixture
def sam_template() -> dict:
    return parse_template(TEMPLATE)


def provisioned(template: dict, **parameters: str) -> Resolver:
    """A resolver over `template` with the physical ids a provisioner would give its functions, APIs and queue."""
    resolver = Resolver(template, parameters=parameters, fallback=lambda logical_id, attribute: f"{logical_id}-id")
    refs, attributes = dict(resolver.refs), dict(resolver.attributes)
    for function in resources_of_type(template, "AWS::Lambda::Function"):
        refs[function] = f"stack-{function}"
        attributes[(function, "Arn")] = f"{ACCOUNT}:function:stack-{function}"
    for alias in resources_of_type(template, "AWS::Lambda::Alias"):
        properties = template["Resources"][alias]["Properties"]
        refs[alias] = f"{ACCOUNT}:function:stack-{properties['FunctionName']['Ref']}:{properties['Name']}"
    attributes[("Queue", "Arn")] = "arn:aws:sqs:us-east-1:123456789012:stack-Queue"
    resolver.refs, resolver.attributes = refs, attributes
    return resolver


# --- the translation ----------------------------------------------------------------------------------------------
def test_sam_merges_globals_under_each_functions_own_properties(sam_template: dict) -> None:
    # GIVEN Globals.Function and a function with its own layer and variables
    # WHEN SAM translates the template
    resources = translate(sam_template, project_root=ROOT).template["Resources"]
    fn, other = resources["Fn"]["Properties"], resources["Other"]["Properties"]
    # THEN each AWS::Lambda::Function has the globals, its own values winning and lists global first
    assert resources["Fn"]["Type"] == "AWS::Lambda::Function" and "Globals" not in resources
    assert (fn["Runtime"], fn["Timeout"], other["Timeout"]) == ("python3.12", 30, 30)
    shared, own = (layer["Ref"] for layer in fn["Layers"])
    assert shared.startswith("Shared") and own.startswith("Own")  # SAM suffixes layer versions with a hash
    # AND the environment, resolved, is Globals + the function's own values, as the strings Lambda sets
    env = environment_variables(provisioned(translate(sam_template, project_root=ROOT).template), "Fn")
    assert env == {
        "LOG_LEVEL": "INFO",
        "OVERRIDDEN": "from-function",
        "BUCKET": "Bucket-id",
        "STAGE": "development",
        "DEBUG": "true",
        "RETENTION": "7",
    }


def test_language_extensions_resolve_conditions_on_known_parameters_only(sam_template: dict) -> None:
    # GIVEN Stage=prod and a Secret the caller does not know yet
    resolved = resolve_language_extensions(sam_template, {"Stage": "prod"}, unknown=["Secret"])
    variables = resolved["Resources"]["Fn"]["Properties"]["Environment"]["Variables"]
    # THEN a decidable Fn::If is replaced by its branch, the other one is left for CloudFormation, NoValue intact
    assert variables["STAGE"] == "production"
    assert variables["SECRET"] == {"Fn::If": ["HasSecret", {"Ref": "Secret"}, {"Ref": "AWS::NoValue"}]}
    # AND once the Secret is known, its NoValue branch removes the variable
    resolved = resolve_language_extensions(sam_template, {"Secret": ""})
    assert "SECRET" not in resolved["Resources"]["Fn"]["Properties"]["Environment"]["Variables"]
    # AND the parameters and conditions themselves are kept
    assert resolved["Conditions"] == sam_template["Conditions"] and resolved["Parameters"] == sam_template["Parameters"]


def test_an_unknown_parameter_keeps_its_condition_for_the_resolver(sam_template: dict) -> None:
    # GIVEN the translation made before the Secret exists
    template = translate(sam_template, project_root=ROOT, unknown=["Secret"]).template
    # WHEN the resolver evaluates the function's environment without, then with, a secret
    assert "SECRET" not in environment_variables(provisioned(template), "Fn")
    resolver = provisioned(template)
    resolver.set_parameter("Secret", "s3cr3t")
    # THEN the variable follows the condition, as CloudFormation would decide it at deploy time
    assert environment_variables(resolver, "Fn")["SECRET"] == "s3cr3t"


def test_without_language_extensions_an_if_in_auth_is_what_sam_rejects(sam_template: dict) -> None:
    # GIVEN the template without AWS::LanguageExtensions (SAM accepts no intrinsic in an API's Auth)
    sam_template["Transform"] = "AWS::Serverless-2016-10-31"
    # WHEN translating THEN SAM's own message comes back as a TemplateError
    with pytest.raises(TemplateError, match=r"SAM rejects the template: .*\[Api\].*Auth"):
        translate(sam_template, project_root=ROOT)


def test_local_code_is_packaged_under_a_key_that_leads_back_to_its_folder(sam_template: dict) -> None:
    # GIVEN local CodeUri / ContentUri folders, and a function with no CodeUri (SAM CLI reads ".")
    translated = translate(sam_template, project_root=ROOT)
    resources = translated.template["Resources"]
    # WHEN each translated Code / Content is looked up
    fn_code = resources["Fn"]["Properties"]["Code"]
    (shared,) = [r for name, r in resources.items() if name.startswith("Shared")]
    # THEN it is in the stand-in bucket and maps back to the folder in the project
    assert fn_code["S3Bucket"] == LOCAL_ARTIFACTS_BUCKET
    assert translated.local_folder(fn_code) == ROOT / "functions" / "fn"
    assert translated.local_folder(shared["Properties"]["Content"]) == ROOT / "layers" / "shared"
    assert translated.local_folder(resources["Other"]["Properties"]["Code"]) == ROOT
    # AND code already in S3 is no local folder
    assert translated.local_folder({"S3Bucket": "releases", "S3Key": "Fn"}) is None


def test_translation_is_cached_per_process_and_each_caller_gets_its_own_copy() -> None:
    # GIVEN the project's template translated once
    template = load_template(ROOT / "template.yaml")
    started = time.perf_counter()
    first = translate(template, project_root=ROOT, parameters={"AuthMode": "IAM"})
    cost = time.perf_counter() - started
    hits = translation._translated.cache_info().hits
    # WHEN it is translated again with the same inputs, and the first copy is changed
    first.template["Resources"].clear()
    again = translate(template, project_root=ROOT, parameters={"AuthMode": "IAM"})
    # THEN the second answer comes from the cache, whole
    assert translation._translated.cache_info().hits == hits + 1
    assert "PredictFunction" in again.template["Resources"]
    print(f"template.yaml translated in {cost:.2f} s")


def test_parameter_values_are_checked_before_translating() -> None:
    template = load_template(ROOT / "template.yaml")
    with pytest.raises(TemplateError, match="AuthMode='NONE' is not one of"):
        translate(template, project_root=ROOT, parameters={"AuthMode": "NONE"})


# --- what the local stack reads from it ---------------------------------------------------------------------------
def test_functions_are_found_by_ref_getatt_name_arn_and_qualified_arn(sam_template: dict) -> None:
    resolver = provisioned(translate(sam_template, project_root=ROOT).template)
    arn = f"{ACCOUNT}:function:stack-Fn"
    for reference in ({"Ref": "Fn"}, {"Fn::GetAtt": ["Fn", "Arn"]}, "stack-Fn", arn, f"{arn}:live", f"{arn}:7"):
        assert referenced_function(resolver, reference) == "Fn", reference
    for reference in ({"Ref": "Bucket"}, "stack-Fnx", f"{ACCOUNT}:function:elsewhere", NO_VALUE):
        assert referenced_function(resolver, reference) is None, reference


def test_api_routes_come_from_the_rest_api_body_sam_generates(sam_template: dict) -> None:
    # GIVEN the translated template with provisioned functions (the explicit API invokes Fn through its alias)
    resolver = provisioned(translate(sam_template, project_root=ROOT).template)
    # WHEN the gateway reads its routes
    routes = {(r.method, r.resource): r for r in api_routes(resolver)}
    # THEN every event is a route to its function, on its API's stage
    assert set(routes) == {
        ("POST", "/models/{name}/predict"),
        ("GET", "/health"),
        ("ANY", "/{proxy+}"),
        ("GET", "/ping"),
    }
    predict = routes[("POST", "/models/{name}/predict")]
    assert (predict.function, predict.api.logical_id, predict.api.stage) == ("Fn", "Api", "v1")
    assert predict.api.stage_variables == {"color": "blue"}
    assert predict.api.binary_media_types == ("application/octet-stream",)
    # AND the API key is required where the API requires it, not where the event says false
    assert predict.api_key_required and routes[("ANY", "/{proxy+}")].api_key_required
    assert not routes[("GET", "/health")].api_key_required
    # AND the integration timeout is the event's, else API Gateway's 29 s
    assert routes[("ANY", "/{proxy+}")].timeout_s == 0.7 and predict.timeout_s == 29.0
    # AND an event without RestApiId is on SAM's implicit API, stage Prod, without key
    ping = routes[("GET", "/ping")]
    assert (ping.function, ping.api.logical_id, ping.api.stage, ping.api_key_required) == (
        "Other",
        "ServerlessRestApi",
        "Prod",
        False,
    )


def test_iam_auth_is_reported_as_an_authorizer_of_each_route() -> None:
    # GIVEN the project's template in IAM mode
    source = load_template(ROOT / "template.yaml")
    template = translate(source, project_root=ROOT, parameters={"AuthMode": "IAM"})
    resolver = provisioned(template.template, AuthMode="IAM")
    # WHEN the routes are read THEN every route names AWS_IAM (not enforced locally) and needs no key
    routes = api_routes(resolver)
    api_events = [
        event
        for function in ("PredictFunction", "FeedbackFunction")
        for event in source["Resources"][function]["Properties"]["Events"].values()
        if event["Type"] == "Api"
    ]
    assert len(routes) == len(api_events)
    assert {(r.function, r.authorizer, r.api_key_required, r.api.stage) for r in routes} == {
        ("PredictFunction", "AWS_IAM", False, "v1"),
        ("FeedbackFunction", "AWS_IAM", False, "v1"),
    }


def test_the_predict_api_takes_every_body_as_binary_as_the_template_says() -> None:
    # GIVEN the project's template: its PredictApi's BinaryMediaTypes, with SAM's ~1 for a slash
    template = load_template(ROOT / "template.yaml")
    declared = template["Resources"]["PredictApi"]["Properties"]["BinaryMediaTypes"]
    # WHEN the local gateway reads its routes from the translated template
    routes = api_routes(provisioned(translate(template, project_root=ROOT).template))
    # THEN every route has the template's binary media types, and they match a request without any Content-Type
    #      (tritonclient.http sends none with its binary tensors; API Gateway takes it for application/json)
    assert {r.api.binary_media_types for r in routes} == {tuple(t.replace("~1", "/") for t in declared)}
    assert routes[0].api.binary_media_types == ("*/*",)


def test_sqs_event_sources_come_from_event_source_mappings(sam_template: dict) -> None:
    resolver = provisioned(translate(sam_template, project_root=ROOT).template)
    (source,) = sqs_event_sources(resolver)
    assert (source.function, source.event, source.batch_size) == ("Fn", "FnJobs", 1)
    assert source.queue_arn == "arn:aws:sqs:us-east-1:123456789012:stack-Queue"
    assert not source.report_batch_item_failures and source.enabled
