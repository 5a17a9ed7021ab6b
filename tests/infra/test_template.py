"""template.yaml read as a specification: what operators, the runtime and the handler rely on.

The template is loaded with cfn-lint's YAML loader (it understands !Ref, !Sub, ...). Checks that need the
resources SAM generates (RestApi, usage plan, API key, function versions) translate the template offline with
sklambda_infra.translation (aws-sam-translator), the translation the local stack runs, and evaluate what
CloudFormation decides from the parameters (`Fn::If` on AuthMode, ...) with its resolver. Nothing here talks to AWS.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

from sklambda import config
from sklambda_infra import translation
from sklambda_infra.template import Resolver
from sklambda_infra.translation import resolve_language_extensions

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PREDICT_APP = ROOT / "functions" / "predict" / "app.py"

# Every route functions/predict/app.py serves, as (method, API Gateway path).
SERVED_ROUTES = {
    ("POST", "/models/{name}/predict"),
    ("GET", "/models/{name}"),
    ("GET", "/health"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("POST", "/v2/models/{name}/infer"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ("GET", "/openapi.json"),
    ("GET", "/models/{name}/openapi.json"),
}
# The routes of functions/feedback/app.py, on the same API.
FEEDBACK_APP = ROOT / "functions" / "feedback" / "app.py"
FEEDBACK_ROUTES = {("POST", "/models/{name}/feedback")}
# Managed policies SAM attaches by itself (basic logging; X-Ray because Tracing is set, whatever its mode). Neither
# touches KMS or S3.
SAM_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


# --- loading -------------------------------------------------------------------------------------------------------
@functools.cache
def _template_json() -> str:
    # JSON round trip: plain dicts and strings instead of cfn-lint's position-carrying node types.
    return json.dumps(cfn_yaml.load(str(TEMPLATE)))


@pytest.fixture
def template() -> dict:
    return json.loads(_template_json())


def resources_of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def parameter_values(template: dict, overrides: dict[str, Any]) -> dict[str, Any]:
    values = {name: p.get("Default") for name, p in template["Parameters"].items()}
    unknown = set(overrides) - set(values)
    assert not unknown, f"not parameters of the template: {unknown}"
    return {**values, **overrides}


def translate(**overrides: Any) -> dict:
    """The CloudFormation that SAM produces for the given parameter values (defaults otherwise)."""
    return translation.translate(json.loads(_template_json()), project_root=ROOT, parameters=overrides).template


def deployed(translated: dict, **overrides: Any) -> Resolver:
    """What CloudFormation makes of `translated` with these parameter values: conditions and `Fn::If` evaluated; a
    reference to a resource resolves to "<LogicalId>" (Ref) or "<LogicalId.Attribute>" (Fn::GetAtt)."""

    def unresolved(logical_id: str, attribute: str | None) -> str:
        return f"<{logical_id}>" if attribute is None else f"<{logical_id}.{attribute}>"

    return Resolver(translated, parameters=overrides, fallback=unresolved)


def sam_validate(template: dict, region: str = "us-east-1") -> dict:
    """The translation `sam validate` runs (SAM CLI 1.170 samcli/lib/translate/sam_template_validator.py): no
    language extensions unless --language-extensions is given, no parameter values (SAM adds the Defaults), local
    CodeUri / ContentUri replaced with an S3 URI, aws-sam-translator's Translator without plugins.

    Raises samtranslator's InvalidDocumentException when SAM rejects the template.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(template)
    code_properties = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
    for resource in template["Resources"].values():
        prop = code_properties.get(resource["Type"])
        properties = resource.get("Properties", {})
        if prop and not (isinstance(properties.get(prop), dict) or str(properties.get(prop)).startswith("s3://")):
            properties[prop] = "s3://bucket/value"
    translator = Translator(
        managed_policy_map=None, sam_parser=Parser(), plugins=[], boto_session=boto3.session.Session(region_name=region)
    )
    return translator.translate(sam_template=template, parameter_values={}, get_managed_policy_map=dict)


# --- policy helpers ------------------------------------------------------------------------------------------------
def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def function_statements(template: dict, function: str = "PredictFunction") -> list[dict]:
    policies = as_list(template["Resources"][function]["Properties"].get("Policies", []))
    statements: list[dict] = []
    for policy in policies:
        assert isinstance(policy, dict) and "Statement" in policy, f"{function}: only inline statements, got {policy}"
        statements.extend(as_list(policy["Statement"]))
    return statements


def allowed_actions(statements: list[dict]) -> Iterator[tuple[str, dict]]:
    for statement in statements:
        if statement.get("Effect") == "Allow":
            for action in as_list(statement.get("Action", [])):
                yield action.lower(), statement


def grants_kms_sign(statements: list[dict]) -> list[dict]:
    """Statements that would let the holder sign: kms:Sign itself or any wildcard that covers it."""
    return [s for action, s in allowed_actions(statements) if re.fullmatch(action.replace("*", ".*"), "kms:sign")]


# --- lint and translation ------------------------------------------------------------------------------------------
def test_template_passes_cfn_lint_without_errors() -> None:
    # GIVEN the template as committed
    # WHEN cfn-lint checks it with its default rules (it validates SAM resources natively)
    matches = lint_file(TEMPLATE)
    # THEN nothing is an error; anything else is shown, not hidden
    for match in matches:
        print(f"cfn-lint {match.rule.id} line {match.linenumber}: {match.message}")
    errors = [m for m in matches if m.rule.id.startswith("E")]
    assert not errors, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in errors)


def test_sam_validate_accepts_the_template_without_language_extensions(template: dict) -> None:
    # GIVEN the template as `sam validate` reads it (no flags: language extensions are not processed)
    # WHEN SAM translates it as `sam validate` does
    translated = sam_validate(template)
    # THEN SAM accepts it: no intrinsic sits where SAM needs a literal (an API's Auth), and nothing needs the
    #      AWS::LanguageExtensions transform
    assert "AWS::LanguageExtensions" not in translation.transforms(template)
    assert translated["Resources"]["PredictApi"]["Type"] == "AWS::ApiGateway::RestApi"


def test_sam_validate_refuses_an_intrinsic_inside_auth(template: dict) -> None:
    # GIVEN the AuthMode switch written as an !If inside the API's Auth (the way it was before)
    from samtranslator.model.exceptions import InvalidDocumentException

    api = template["Resources"]["PredictApi"]["Properties"]
    api["Auth"] = {"Fn::If": ["UseApiKeys", {"ApiKeyRequired": True}, {"DefaultAuthorizer": "AWS_IAM"}]}
    # WHEN `sam validate` translates it THEN SAM refuses it, naming Auth
    with pytest.raises(InvalidDocumentException, match="Auth"):
        sam_validate(template)


def test_default_mode_translates_to_rest_api_with_usage_plan_and_api_key() -> None:
    # GIVEN the default parameters (AuthMode API_KEY)
    # WHEN SAM translates the template and CloudFormation decides the conditions
    translated = translate()
    resources = translated["Resources"]
    cloud = deployed(translated)
    kinds = {r["Type"] for name, r in resources.items() if cloud.enabled(name)}
    # THEN a REST API is created with one usage plan tying one API key to the stage
    assert {"AWS::ApiGateway::RestApi", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey"} <= kinds
    assert {"PredictApi", "PredictApiUsagePlan", "PredictApiApiKey", "PredictApiUsagePlanKey"} <= set(resources)
    plan = resources["PredictApiUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "PredictApi"}, "Stage": {"Ref": "PredictApiStage"}}]
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    key = resources["PredictApiApiKey"]["Properties"]
    assert key == {
        "Enabled": True,
        "StageKeys": [{"RestApiId": {"Ref": "PredictApi"}, "StageName": {"Ref": "PredictApiStage"}}],
    }
    usage_plan_key = resources["PredictApiUsagePlanKey"]["Properties"]
    assert usage_plan_key == {
        "KeyId": {"Ref": "PredictApiApiKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "PredictApiUsagePlan"},
    }
    # AND the ApiKeyId output names that key
    assert cloud.resolve(translated["Outputs"]["ApiKeyId"]["Value"]) == "<PredictApiApiKey>"


def test_usage_plan_throttle_comes_from_the_parameters(template: dict) -> None:
    # GIVEN the usage plan of the API_KEY mode
    plan = template["Resources"]["PredictApiUsagePlan"]
    # THEN it exists only in that mode and is throttled by the stack parameters, like the stage
    assert plan["Condition"] == "UseApiKeys"
    assert plan["Properties"]["Throttle"] == {
        "RateLimit": {"Ref": "ThrottleRateLimit"},
        "BurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    (method_settings,) = template["Resources"]["PredictApi"]["Properties"]["MethodSettings"]
    assert method_settings["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert method_settings["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    assert method_settings["MetricsEnabled"] is True


def test_iam_mode_signs_requests_with_sigv4_and_creates_no_api_key() -> None:
    # GIVEN AuthMode IAM
    # WHEN SAM translates the template and CloudFormation decides the conditions
    translated = translate(AuthMode="IAM")
    resources = translated["Resources"]
    cloud = deployed(translated, AuthMode="IAM")
    # THEN there is no key or usage plan, every route requires SigV4, and API Gateway invokes the function with
    #      its resource permission rather than the caller's credentials
    kinds = {r["Type"] for name, r in resources.items() if cloud.enabled(name)}
    assert not kinds & {"AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey"}
    body = cloud.resolve(resources["PredictApi"]["Properties"]["Body"])
    assert body["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    for method, path in SERVED_ROUTES:
        operation = body["paths"][path][method.lower()]
        assert operation["security"] == [{"AWS_IAM": []}], (method, path)
        assert "credentials" not in operation["x-amazon-apigateway-integration"], (method, path)
    # AND the ApiKeyId output no longer refers to a key that does not exist
    assert cloud.resolve(translated["Outputs"]["ApiKeyId"]["Value"]) == "none"


def test_switching_auth_mode_redeploys_the_stage() -> None:
    # GIVEN the API's methods, whose security CloudFormation picks from AuthMode after SAM has named the deployment
    api = json.loads(_template_json())["Resources"]["PredictApi"]["Properties"]
    # THEN the API is deployed on every stack update, so the stage serves the methods of the mode chosen
    assert api["AlwaysDeploy"] is True


def test_the_stack_needs_no_capability_beyond_capability_iam(template: dict) -> None:
    # GIVEN the resources CloudFormation creates (after the SAM transform) and the template's own
    resources = translate()["Resources"]
    iam = {name: r for name, r in resources.items() if r["Type"].startswith("AWS::IAM::")}
    # THEN it has IAM resources (CAPABILITY_IAM), none with a custom name (that would need CAPABILITY_NAMED_IAM), and
    #      no nested stack or application (CAPABILITY_AUTO_EXPAND), as README "Deploy to AWS" says
    assert iam
    custom_names = {"RoleName", "UserName", "GroupName", "ManagedPolicyName", "InstanceProfileName"}
    assert not {name for name, r in iam.items() if custom_names & set(r.get("Properties", {}))}
    nested = {"AWS::CloudFormation::Stack", "AWS::Serverless::Application"}
    assert not [name for name, r in {**template["Resources"], **resources}.items() if r["Type"] in nested]


def test_published_version_uses_snapstart_behind_the_live_alias() -> None:
    # GIVEN the translated template
    resources = translate()["Resources"]
    # WHEN we look at the predict function, its versions and aliases
    function = resources["PredictFunction"]["Properties"]
    versions = resources_of_type({"Resources": resources}, "AWS::Lambda::Version")
    aliases = resources_of_type({"Resources": resources}, "AWS::Lambda::Alias")
    # THEN SnapStart applies to published versions, one version is published and `live` points at it
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    ((version_id, version),) = versions.items()
    assert version["Properties"]["FunctionName"] == {"Ref": "PredictFunction"}
    ((_, alias),) = aliases.items()
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}


# --- least privilege -----------------------------------------------------------------------------------------------
def test_predict_role_can_verify_model_cards_but_never_sign(template: dict) -> None:
    # GIVEN the predict function's hand-written policies
    statements = function_statements(template)
    # THEN no statement grants kms:Sign, directly or through a wildcard
    assert grants_kms_sign(statements) == []
    # AND verification is allowed on exactly the signing key
    verify = [s for action, s in allowed_actions(statements) if action == "kms:verify"]
    assert [s["Resource"] for s in verify] == [{"Fn::GetAtt": ["SigningKey", "Arn"]}]


def test_sign_check_catches_a_wildcard_grant(template: dict) -> None:
    # GIVEN the predict policies with one extra statement allowing kms:S* on every key
    statements = [*function_statements(template), {"Effect": "Allow", "Action": ["kms:S*"], "Resource": "*"}]
    # WHEN the sign check runs
    # THEN it reports that statement (the check above can fail)
    assert grants_kms_sign(statements) == [statements[-1]]


def test_predict_role_reads_only_the_models_prefix_and_decrypts_only_through_s3(template: dict) -> None:
    # GIVEN the predict function's hand-written policies
    statements = {s["Sid"]: s for s in function_statements(template)}
    # THEN they grant exactly these permissions (reads only: captures leave through the log), each on one resource
    granted = sorted(action for action, _ in allowed_actions(list(statements.values())))
    assert granted == [
        "kms:decrypt",
        "kms:decrypt",
        "kms:verify",
        "s3:getobject",
        "s3:listbucket",
    ]
    assert all(s["Effect"] == "Allow" and not isinstance(s["Resource"], list) for s in statements.values())
    assert statements["ReadModels"]["Resource"] == {"Fn::Sub": "${ModelBucket.Arn}/models/*"}
    assert statements["ListModels"]["Resource"] == {"Fn::GetAtt": ["ModelBucket", "Arn"]}
    assert statements["ListModels"]["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
    decrypt = statements["DecryptModelsThroughS3"]
    assert decrypt["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}


def test_translated_role_adds_only_sams_logging_and_tracing_policies() -> None:
    # GIVEN the role SAM generates for the predict function
    role = translate()["Resources"]["PredictFunctionRole"]["Properties"]
    # THEN its managed policies are SAM's own logging/X-Ray ones and its inline policies cannot sign
    assert set(role["ManagedPolicyArns"]) <= SAM_MANAGED_POLICIES
    inline = [s for policy in role["Policies"] for s in as_list(policy["PolicyDocument"]["Statement"])]
    assert inline and grants_kms_sign(inline) == []


# --- keys and bucket -----------------------------------------------------------------------------------------------
def test_signing_key_is_an_asymmetric_sign_verify_key_and_data_key_rotates(template: dict) -> None:
    resources = template["Resources"]
    # GIVEN the two KMS keys
    signing, data = resources["SigningKey"]["Properties"], resources["DataKey"]["Properties"]
    # THEN the signing key is ECDSA P-256 for SIGN_VERIFY and the data key is a rotating symmetric key
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert (data.get("KeySpec", "SYMMETRIC_DEFAULT"), data["EnableKeyRotation"]) == ("SYMMETRIC_DEFAULT", True)
    # AND both have the aliases the CLI and operators use
    assert resources["SigningKeyAlias"]["Properties"] == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-signing"},
        "TargetKeyId": {"Ref": "SigningKey"},
    }
    assert resources["DataKeyAlias"]["Properties"] == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-data"},
        "TargetKeyId": {"Ref": "DataKey"},
    }


PSEUDONYM_CONTEXT = {"kms:EncryptionContext:sklambda:purpose": "pseudonymization"}


def test_data_key_is_used_only_through_s3_or_to_wrap_the_pseudonymization_key(template: dict) -> None:
    # GIVEN the data key's policy
    statements = template["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    # THEN outside S3 it only wraps/unwraps the pseudonymization data key, under its encryption context
    (wrap,) = [s for s in statements if s["Sid"] == "WrapPseudonymizationKeyOnly"]
    assert sorted(wrap["Action"]) == ["kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"]
    assert wrap["Condition"]["StringEquals"] == {**PSEUDONYM_CONTEXT, "kms:CallerAccount": {"Ref": "AWS::AccountId"}}
    assert config.PSEUDONYM_KEY_CONTEXT == {"sklambda:purpose": "pseudonymization"}
    # AND every other statement allowing a cryptographic operation is limited to S3 in this region
    crypto = {"kms:decrypt", "kms:encrypt", "kms:generatedatakey*", "kms:reencrypt*"}
    using = [s for action, s in allowed_actions(statements) if action in crypto and s is not wrap]
    assert using
    for statement in using:
        assert statement["Condition"]["StringEquals"]["kms:ViaService"] == {
            "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
        }


def test_model_bucket_is_encrypted_with_the_data_key_private_and_versioned(template: dict) -> None:
    # GIVEN the model bucket
    bucket = template["Resources"]["ModelBucket"]["Properties"]
    # THEN objects are SSE-KMS with the stack's customer key and an S3 Bucket Key
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }
    assert rule["BucketKeyEnabled"] is True
    # AND nothing can be made public, every overwrite keeps the previous version, ACLs are off
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # AND CloudFormation names the bucket (one stack per name, no collisions)
    assert "BucketName" not in bucket


def test_bucket_policy_denies_every_request_without_tls(template: dict) -> None:
    # GIVEN the model bucket's policy
    policy = template["Resources"]["ModelBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ModelBucket"}
    # THEN some statement denies all S3 actions on the bucket and its objects when the request is not TLS
    denies_plain_http = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and as_list(s["Action"]) == ["s3:*"]
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        and {json.dumps(r, sort_keys=True) for r in as_list(s["Resource"])}
        == {
            json.dumps({"Fn::GetAtt": ["ModelBucket", "Arn"]}, sort_keys=True),
            json.dumps({"Fn::Sub": "${ModelBucket.Arn}/*"}, sort_keys=True),
        }
    ]
    assert len(denies_plain_http) == 1


def test_bucket_policy_never_refuses_puts_that_rely_on_default_encryption(template: dict) -> None:
    # GIVEN the deny statements on PutObject
    statements = template["Resources"]["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    put_denies = [s for s in statements if s["Effect"] == "Deny" and "s3:PutObject" in as_list(s["Action"])]
    # THEN each one only applies when the request carries an encryption header (…IfExists), so the registry's
    #      plain put_object calls still get the bucket's default SSE-KMS
    assert put_denies
    for statement in put_denies:
        assert set(statement["Condition"]) == {"StringNotEqualsIfExists"}, statement["Sid"]


# --- routes --------------------------------------------------------------------------------------------------------
def handler_routes(app: Path = PREDICT_APP) -> set[tuple[str, str]]:
    """Routes declared in the handler's source, e.g. @app.get("/v2/models/<name>") -> (GET, /v2/models/{name})."""
    source = app.read_text(encoding="utf-8")
    found = re.findall(r"@app\.(get|post|put|patch|delete)\(\s*\"([^\"]+)\"", source)
    return {(method.upper(), re.sub(r"<(\w+)>", r"{\1}", path)) for method, path in found}


def test_handler_serves_the_routes_this_file_expects() -> None:
    # GIVEN the predict handler's route decorators
    # THEN they are exactly the routes listed here (a new route must be added to the template too)
    assert handler_routes() == SERVED_ROUTES
    assert handler_routes(FEEDBACK_APP) == FEEDBACK_ROUTES


def test_every_served_route_is_an_event_of_the_predict_api(template: dict) -> None:
    # GIVEN the predict function's events
    events = template["Resources"]["PredictFunction"]["Properties"]["Events"].values()
    # THEN each is an Api event on PredictApi, and together they are exactly the handler's routes
    assert {e["Type"] for e in events} == {"Api"}
    assert all(e["Properties"]["RestApiId"] == {"Ref": "PredictApi"} for e in events)
    declared = [(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events]
    assert len(declared) == len(set(declared))
    assert set(declared) == SERVED_ROUTES


def test_every_served_route_requires_an_api_key_by_default() -> None:
    # GIVEN the OpenAPI document of the REST API in the default mode, as CloudFormation resolves it
    translated = translate()
    body = deployed(translated).resolve(translated["Resources"]["PredictApi"]["Properties"]["Body"])
    # THEN every route exists, invokes the live alias and requires the x-api-key header
    assert body["components"]["securitySchemes"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    for method, path in SERVED_ROUTES:
        operation = body["paths"][path][method.lower()]
        assert {"api_key": []} in operation["security"], (method, path)
        assert "/functions/<PredictFunctionAliaslive>/" in operation["x-amazon-apigateway-integration"]["uri"]
    # AND the feedback route requires it too, and invokes the feedback function
    for method, path in FEEDBACK_ROUTES:
        operation = body["paths"][path][method.lower()]
        assert {"api_key": []} in operation["security"], (method, path)
        assert "<FeedbackFunction.Arn>" in operation["x-amazon-apigateway-integration"]["uri"]


def test_every_method_of_the_api_body_is_a_route_of_the_function() -> None:
    # GIVEN the REST API body: PredictApi's DefinitionBody (security per method) merged with the function's events
    body = translate()["Resources"]["PredictApi"]["Properties"]["Body"]
    # THEN each method has an integration: no path in DefinitionBody lacks its event (API Gateway refuses a method
    #      without integration), and no event lacks its security entry (checked above, in both modes)
    methods = {(method.upper(), path) for path, item in body["paths"].items() for method in item}
    assert methods == SERVED_ROUTES | FEEDBACK_ROUTES
    for method, path in methods:
        assert "x-amazon-apigateway-integration" in body["paths"][path][method.lower()], (method, path)


def test_api_access_logs_go_to_the_stacks_log_group_only_when_enabled() -> None:
    # GIVEN the default (Disabled) and Enabled access logging
    default, enabled = translate(), translate(ApiAccessLogging="Enabled")
    default_stage = deployed(default).resolve(default["Resources"]["PredictApiStage"]["Properties"])
    enabled_stage = deployed(enabled, ApiAccessLogging="Enabled").resolve(
        enabled["Resources"]["PredictApiStage"]["Properties"]
    )
    # THEN only the enabled stage logs, to the access log group of this stack
    assert "AccessLogSetting" not in default_stage
    assert enabled_stage["AccessLogSetting"]["DestinationArn"] == "<PredictApiAccessLogGroup.Arn>"
    assert json.loads(enabled_stage["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"


# --- operations ----------------------------------------------------------------------------------------------------
def test_globals_set_runtime_architecture_tracing_and_powertools(template: dict) -> None:
    function = template["Globals"]["Function"]
    # GIVEN the function globals
    # THEN every function runs Python 3.12 on x86_64 with the stack's X-Ray mode, a 30 s timeout and the powertools
    # settings; powertools' tracer is off unless the mode is Active (sklambda.tracing)
    assert (function["Runtime"], function["Architectures"], function["Tracing"], function["Timeout"]) == (
        "python3.12",
        ["x86_64"],
        {"Ref": "Tracing"},
        30,
    )
    assert function["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "sklambda",
        "POWERTOOLS_METRICS_NAMESPACE": "sklambda",
        "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
        config.TRACE_DISABLED: {"Fn::If": ["TracingActive", "false", "true"]},
    }
    assert template["Conditions"]["TracingActive"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}


def test_the_api_and_the_state_machines_trace_only_when_the_functions_do(template: dict) -> None:
    # GIVEN the resources that can record X-Ray traces besides the functions
    api = template["Resources"]["PredictApi"]["Properties"]
    machines = resources_of_type(template, "AWS::Serverless::StateMachine")
    assert machines
    # THEN each follows the same Tracing parameter
    traced = {"Fn::If": ["TracingActive", True, False]}
    assert api["TracingEnabled"] == traced
    for name, machine in machines.items():
        assert machine["Properties"]["Tracing"] == {"Enabled": traced}, name


def test_every_function_logs_to_its_own_log_group_with_retention(template: dict) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert functions
    for name, function in functions.items():
        # GIVEN a function and the log group its LoggingConfig points at
        props = function["Properties"]
        group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
        group = template["Resources"][group_id]
        # THEN the group is the function's default one (/aws/lambda/<name>) and keeps logs for LogRetentionDays
        assert group["Type"] == "AWS::Logs::LogGroup", name
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/" + props["FunctionName"]["Fn::Sub"]}
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # AND every other log group of the stack has a retention as well
    for name, group in resources_of_type(template, "AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in group["Properties"], name


def alarm_on(template: dict, namespace: str, metric: str, dimension_value: Any = None) -> dict:
    """The one alarm on `metric` (whose dimension value is `dimension_value`, when given)."""
    (alarm,) = [
        a["Properties"]
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == namespace
        and a["Properties"].get("MetricName") == metric
        and (dimension_value is None or [d["Value"] for d in a["Properties"]["Dimensions"]] == [dimension_value])
    ]
    return alarm


@pytest.mark.parametrize(("namespace", "metric"), [("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")])
def test_alarms_fire_on_any_function_error_or_throttle_in_five_minutes(template: dict, namespace, metric) -> None:
    # GIVEN the alarm on the predict function's metric
    alarm = alarm_on(template, namespace, metric, {"Ref": "PredictFunction"})
    # THEN one occurrence in a 5-minute period notifies the alarm topic
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PredictFunction"}}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]


def test_api_5xx_alarm_watches_this_apis_stage(template: dict) -> None:
    # GIVEN the 5XXError alarm and the API's name
    alarm = alarm_on(template, "AWS/ApiGateway", "5XXError")
    api_name = template["Resources"]["PredictApi"]["Properties"]["Name"]
    # THEN its dimensions name exactly this API and stage
    assert alarm["Dimensions"] == [
        {"Name": "ApiName", "Value": api_name},
        {"Name": "Stage", "Value": {"Ref": "StageName"}},
    ]
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]


def test_failed_batch_jobs_alarm_sums_the_metric_the_batch_functions_emit(template: dict) -> None:
    # GIVEN the alarm on failed batch jobs and the powertools namespace and service of the functions
    alarm = template["Resources"]["BatchFailedJobsAlarm"]["Properties"]
    powertools = template["Globals"]["Function"]["Environment"]["Variables"]
    # THEN it queries FailedJobs in that namespace for that service, whatever the model and version
    (query,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    namespace, service = powertools["POWERTOOLS_METRICS_NAMESPACE"], powertools["POWERTOOLS_SERVICE_NAME"]
    assert query["Expression"] == f"SELECT SUM(FailedJobs) FROM {namespace} WHERE service = '{service}'"
    assert (query["Period"], alarm["ComparisonOperator"], alarm["Threshold"]) == (300, "GreaterThanThreshold", 0)
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    # AND the batch functions really emit that metric name
    assert '"FailedJobs"' in (ROOT / "functions" / "batch_score" / "batch_shared.py").read_text(encoding="utf-8")


@pytest.mark.parametrize(("alarm_name", "metric"), [("ModelRefusedAlarm", "ModelRefused"),
                                                     ("CompiledFallbacksAlarm", "CompiledFallbacks")])  # fmt: skip
def test_predict_alarms_sum_the_metric_the_function_emits(template: dict, alarm_name: str, metric: str) -> None:
    # GIVEN the alarm and the powertools namespace and service of the function
    alarm = template["Resources"][alarm_name]["Properties"]
    powertools = template["Globals"]["Function"]["Environment"]["Variables"]
    # THEN it queries the metric in that namespace for that service, whatever the other dimensions
    (query,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    namespace, service = powertools["POWERTOOLS_METRICS_NAMESPACE"], powertools["POWERTOOLS_SERVICE_NAME"]
    assert query["Expression"] == f"SELECT SUM({metric}) FROM {namespace} WHERE service = '{service}'"
    assert (query["Period"], alarm["ComparisonOperator"], alarm["Threshold"]) == (300, "GreaterThanThreshold", 0)
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    # AND the function really emits that metric name
    assert f'"{metric}"' in PREDICT_APP.read_text(encoding="utf-8")


def test_every_output_has_a_description(template: dict) -> None:
    outputs = template["Outputs"]
    # GIVEN the outputs other tools and operators read
    expected = {
        "ApiUrl",
        "ApiKeyId",
        "ModelBucketName",
        "SigningKeyArn",
        "DataKeyArn",
        "PredictFunctionName",
        "PredictFunctionAliasArn",
        "RuntimeLayerArn",
        "DependenciesLayerArn",
    }
    # THEN they are all there and each one says what it is
    assert expected <= set(outputs)
    for name, output in outputs.items():
        assert isinstance(output.get("Description"), str) and output["Description"].strip(), name
    assert outputs["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${PredictApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}"
    }
    assert outputs["PredictFunctionAliasArn"]["Value"] == {"Ref": "PredictFunction.Alias"}


def test_every_parameter_is_described(template: dict) -> None:
    for name, parameter in template["Parameters"].items():
        assert parameter.get("Description", "").strip(), name


# --- configuration drift -------------------------------------------------------------------------------------------
PREDICT_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.DEFAULT_ALIAS,
    config.ALIAS_TTL_SECONDS,
    config.MAX_ROWS,
    config.MAX_BODY_BYTES,
    config.MAX_EXPLAIN_ROWS,
    config.PRELOAD_MODELS,
    config.SERVING_RUNTIME,
    config.CAPTURE_SAMPLE_RATE,
    config.PSEUDONYM_KEY_CIPHERTEXT,
}


def sklambda_variables(template: dict) -> dict[str, Any]:
    return template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]


def assert_settings_read_what_the_template_sets(settings: type[config.EnvSettings], variables: dict) -> None:
    """Every variable the template sets is one the function's settings class reads, and every variable that class
    requires is set (else the function would fail its cold start)."""
    assert set(variables) <= settings.variables(), set(variables) - settings.variables()
    required = settings.variables() - settings.defaults().keys()
    assert required <= set(variables), required - set(variables)


def deployed_value(template: dict, value: Any) -> str | None:
    """A variable's value in a stack deployed with default parameters; None when it names a resource or is set only
    under a condition (no runtime default to compare with)."""
    if isinstance(value, dict):
        if set(value) != {"Ref"} or value["Ref"] not in template["Parameters"]:
            return None
        value = template["Parameters"][value["Ref"]]["Default"]
    return str(value)


def takes_the_runtime_default(settings: type[config.EnvSettings], name: str, value: str) -> bool:
    """Whether `name=value` in the environment gives the function the same settings as leaving `name` unset."""
    required = {other: "set" for other in settings.variables() - settings.defaults().keys()}
    return settings.from_env({**required, name: value}) == settings.from_env(required)


def test_predict_environment_is_exactly_the_settings_the_runtime_reads(template: dict) -> None:
    # GIVEN the predict function's own variables and the names the runtime reads (sklambda.config)
    variables = sklambda_variables(template)
    # THEN they are the same names, so neither side can be renamed alone
    assert set(variables) == PREDICT_SETTINGS
    assert_settings_read_what_the_template_sets(config.PredictSettings, variables)
    assert variables[config.MODEL_BUCKET] == {"Ref": "ModelBucket"}
    assert variables[config.SIGNING_KEY_ID] == {"Fn::GetAtt": ["SigningKey", "Arn"]}


def test_compiled_serving_parameter_chooses_the_runtime_the_predict_function_reads(template: dict) -> None:
    # GIVEN the predict function's SKLAMBDA_SERVING_RUNTIME and the CompiledServing parameter
    value = sklambda_variables(template)[config.SERVING_RUNTIME]
    parameter = template["Parameters"]["CompiledServing"]
    # THEN Enabled (the default) is the compiled evaluator and Disabled scikit-learn: the two values the runtime accepts
    assert value == {"Fn::If": ["CompiledServingEnabled", config.SERVING_COMPILED, config.SERVING_SCIKIT_LEARN]}
    assert template["Conditions"]["CompiledServingEnabled"] == {"Fn::Equals": [{"Ref": "CompiledServing"}, "Enabled"]}
    assert parameter["Default"] == "Enabled" and parameter["AllowedValues"] == ["Enabled", "Disabled"]
    assert config.PredictSettings.defaults()[config.SERVING_RUNTIME] == config.SERVING_COMPILED  # Enabled's value


def test_drift_check_catches_a_misspelt_variable(template: dict) -> None:
    # GIVEN a template whose bucket variable was renamed on the template side only
    drifted = copy.deepcopy(template)
    variables = sklambda_variables(drifted)
    variables["SKLAMBDA_MODELS_BUCKET"] = variables.pop(config.MODEL_BUCKET)
    # THEN the comparison used above no longer holds
    assert set(sklambda_variables(drifted)) != PREDICT_SETTINGS


def test_template_defaults_match_the_runtime_defaults(template: dict) -> None:
    variables = sklambda_variables(template)
    # GIVEN every variable the template sets that has a runtime default (a field default in sklambda.config)
    compared = set()
    for name in config.PredictSettings.defaults().keys() & set(variables):
        value = deployed_value(template, variables[name])
        if value is None:
            continue  # set only when a condition holds (capture): no runtime default to compare
        # THEN the template sets the same value, literally or as the default of the parameter it comes from
        assert takes_the_runtime_default(config.PredictSettings, name, value), (name, value)
        compared.add(name)
    # SERVING_RUNTIME is chosen by a condition: test_compiled_serving_parameter_chooses_the_runtime... checks it
    unset = {config.MODEL_BUCKET, config.SIGNING_KEY_ID, config.PSEUDONYM_KEY_CIPHERTEXT, config.SERVING_RUNTIME}
    assert compared == PREDICT_SETTINGS - unset


def test_a_template_default_unlike_the_runtime_default_is_caught(template: dict) -> None:
    # GIVEN a template whose MaxRows parameter defaults to something else than the runtime
    parameter = template["Parameters"][sklambda_variables(template)[config.MAX_ROWS]["Ref"]]
    # THEN the comparison used above no longer holds
    assert not takes_the_runtime_default(config.PredictSettings, config.MAX_ROWS, str(parameter["Default"] + 1))


# --- batch scoring -------------------------------------------------------------------------------------------------
BATCH_DIR = ROOT / "functions" / "batch_score"


def references_in(node: Any) -> set[str]:
    """Logical ids named by Ref / Fn::GetAtt anywhere in `node`."""
    found: set[str] = set()
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            found.add(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= references_in(value)
    elif isinstance(node, list):
        for value in node:
            found |= references_in(value)
    return found


BATCH_FANOUT_SETTINGS = {
    config.BATCH_FANOUT_BYTES,
    config.BATCH_FANOUT_MAX_CONCURRENCY,
    config.BATCH_IDEMPOTENCY_TABLE,
    config.BATCH_STATE_MACHINE_ARN,
}


def test_batch_queue_outlasts_six_function_timeouts_and_redrives_after_five_receives(template: dict) -> None:
    resources = template["Resources"]
    # GIVEN the batch queue and the function its SQS event invokes
    queue = resources["BatchQueue"]["Properties"]
    function = resources["BatchScoreFunction"]["Properties"]
    (event,) = function["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["Queue"] == {"Fn::GetAtt": ["BatchQueue", "Arn"]}
    # THEN a message stays invisible for at least 6x the function timeout (Lambda's guidance for SQS sources)
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    # AND after 5 receives it moves to the dead-letter queue; both queues are encrypted
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["BatchDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    for name in ("BatchQueue", "BatchDeadLetterQueue"):
        assert resources[name]["Properties"]["SqsManagedSseEnabled"] is True, name
    # AND the handler reports partial failures, so one bad file does not send the others back
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_dead_letter_queue_depth_is_alarmed(template: dict) -> None:
    dlq = {"Fn::GetAtt": ["BatchDeadLetterQueue", "QueueName"]}
    alarm = alarm_on(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq)
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": dlq}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    # AND the batch function's errors are alarmed like the predict function's
    errors = alarm_on(template, "AWS/Lambda", "Errors", {"Ref": "BatchScoreFunction"})
    assert {"Ref": "AlarmTopic"} in errors["AlarmActions"]


def test_data_bucket_notifies_the_queue_of_new_files_under_incoming_only(template: dict) -> None:
    resources = template["Resources"]
    bucket = resources["DataBucket"]
    # GIVEN the data bucket's notification to the batch queue
    (config,) = [
        c
        for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        if c["Queue"] == {"Fn::GetAtt": ["BatchQueue", "Arn"]}
    ]
    # THEN every ObjectCreated under incoming/ (and nothing the function writes) goes to the batch queue
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Queue"] == {"Fn::GetAtt": ["BatchQueue", "Arn"]}
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    # AND the queue policy exists before the bucket (S3 checks it) and names the bucket without a Ref (no cycle)
    assert "BatchQueuePolicy" in as_list(bucket["DependsOn"])
    (statement,) = resources["BatchQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    bucket_name = bucket["Properties"]["BucketName"]["Fn::Sub"]
    assert source_arn[0] == "arn:${AWS::Partition}:s3:::" + bucket_name[0]
    assert source_arn[1] == bucket_name[1]
    assert "DataBucket" not in references_in(resources["BatchQueuePolicy"])


def test_data_bucket_is_encrypted_private_versioned_and_cleans_up_after_itself(template: dict) -> None:
    props = template["Resources"]["DataBucket"]["Properties"]
    model_bucket = template["Resources"]["ModelBucket"]["Properties"]
    # THEN it has the model bucket's encryption, public access block, versioning and ownership
    for key in ("BucketEncryption", "PublicAccessBlockConfiguration", "VersioningConfiguration", "OwnershipControls"):
        assert props[key] == model_bucket[key], key
    # AND temporary chunks expire after a day, old versions after DataNoncurrentVersionDays, stale uploads abort
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert (rules["ExpireTemporaryChunks"]["Prefix"], rules["ExpireTemporaryChunks"]["ExpirationInDays"]) == ("tmp/", 1)
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "DataNoncurrentVersionDays"}
    }
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # AND its policy refuses plain HTTP
    statements = template["Resources"]["DataBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)


def test_idempotency_table_expires_records_by_ttl(template: dict) -> None:
    table = template["Resources"]["IdempotencyTable"]["Properties"]
    # THEN it has powertools' key (id) and TTL attribute (expiration), on demand and encrypted
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert (table["BillingMode"], table["SSESpecification"]) == ("PAY_PER_REQUEST", {"SSEEnabled": True})


def _statements_by_sid(template: dict, function: str) -> dict[str, dict]:
    return {s["Sid"]: s for s in function_statements(template, function)}


def test_batch_roles_are_least_privilege(template: dict) -> None:
    score = _statements_by_sid(template, "BatchScoreFunction")
    chunk = _statements_by_sid(template, "BatchChunkFunction")
    for statements in (score, chunk):
        # THEN neither can sign, both verify only with the signing key and use the data key only through S3
        assert grants_kms_sign(list(statements.values())) == []
        assert statements["VerifyModelCards"]["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
        assert "kms:ViaService" in statements["UseDataKeyThroughS3"]["Condition"]["StringEquals"]
        # AND they read inputs under incoming/ only, write only scored/, errors/ and tmp/, read models/ only
        assert statements["ReadIncomingFiles"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/incoming/*"}
        assert statements["WriteResults"]["Resource"] == [
            {"Fn::Sub": "${DataBucket.Arn}/scored/*"},
            {"Fn::Sub": "${DataBucket.Arn}/errors/*"},
            {"Fn::Sub": "${DataBucket.Arn}/tmp/*"},
        ]
        assert "s3:PutObject" not in json.dumps(statements["ReadModels"])
        # AND they read their own results (the sequencer already published), and may list the data bucket so that
        #     a result not written yet is a 404, not a 403
        assert statements["ReadResults"]["Action"] == "s3:GetObject"
        assert statements["ReadResults"]["Resource"] == statements["WriteResults"]["Resource"][:2]
        assert statements["ListResults"]["Resource"] == {"Fn::GetAtt": ["DataBucket", "Arn"]}
        # AND no statement uses a wildcard resource or action
        for sid, statement in statements.items():
            assert "*" not in as_list(statement["Resource"]), sid
            assert not any(a.endswith(":*") for a in as_list(statement["Action"])), sid
    # AND only the SQS side touches the idempotency table and starts executions, on those resources only
    assert score["IdempotencyRecords"]["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    assert score["FanOutLargeFiles"] == {
        "Sid": "FanOutLargeFiles",
        "Effect": "Allow",
        "Action": "states:StartExecution",
        "Resource": {"Ref": "BatchFanOutStateMachine"},
    }
    assert not {"IdempotencyRecords", "FanOutLargeFiles"} & set(chunk)


def test_fan_out_state_machine_is_a_distributed_map_then_a_merge_with_a_failure_report(template: dict) -> None:
    machine = template["Resources"]["BatchFanOutStateMachine"]["Properties"]
    states = machine["Definition"]["States"]
    # GIVEN the fan-out state machine (STANDARD: a chunk can take longer than an express workflow's 5 minutes)
    assert machine["Type"] == "STANDARD"
    score = states[machine["Definition"]["StartAt"]]
    # THEN it starts with a Distributed Map over the chunk list in its input, concurrency from the input
    assert score["Type"] == "Map" and score["ItemsPath"] == "$.chunks"
    assert score["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert score["MaxConcurrencyPath"] == "$.max_concurrency"
    assert score["ItemSelector"]["action"] == "chunk"
    # AND then merges; any failure of the map ends in the failure report, then the Fail state
    merge = states[score["Next"]]
    assert merge["Parameters"]["Payload"]["action"] == "merge"
    assert score["Catch"][0]["Next"] == "ReportFailure"
    assert states["ReportFailure"]["Parameters"]["Payload"]["action"] == "fail"
    assert states[states["ReportFailure"]["Next"]]["Type"] == "Fail"
    # AND every task invokes the chunk function, which the state machine may invoke and nothing else
    assert machine["DefinitionSubstitutions"] == {"ChunkFunctionArn": {"Fn::GetAtt": ["BatchChunkFunction", "Arn"]}}
    assert {"LambdaInvokePolicy": {"FunctionName": {"Ref": "BatchChunkFunction"}}} in machine["Policies"]
    # AND the handler knows every action the definition sends
    fanout_source = (BATCH_DIR / "fanout.py").read_text(encoding="utf-8")
    for action in ("chunk", "merge", "fail"):
        assert f'"{action}": {action}' in fanout_source


BATCH_ENGINE_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.BATCH_DATA_BUCKET,
    config.BATCH_REJECT_THRESHOLD,
    config.BATCH_CHUNK_ROWS,
    config.BATCH_CHUNK_BYTES,
    config.BATCH_CAPTURE_SAMPLE_RATE,
    config.BATCH_CAPTURE_MAX_ROWS,
    config.PSEUDONYM_KEY_CIPHERTEXT,
}


def test_batch_environments_are_exactly_the_settings_the_code_reads(template: dict) -> None:
    resources = template["Resources"]
    score_env = resources["BatchScoreFunction"]["Properties"]["Environment"]["Variables"]
    chunk_env = resources["BatchChunkFunction"]["Properties"]["Environment"]["Variables"]
    # THEN the chunk function gets the engine's settings, the SQS one also the fan-out settings
    assert set(chunk_env) == BATCH_ENGINE_SETTINGS
    assert set(score_env) == BATCH_ENGINE_SETTINGS | BATCH_FANOUT_SETTINGS
    assert_settings_read_what_the_template_sets(config.BatchChunkSettings, chunk_env)
    assert_settings_read_what_the_template_sets(config.BatchScoreSettings, score_env)
    assert score_env[config.BATCH_DATA_BUCKET] == {"Ref": "DataBucket"}
    assert score_env[config.BATCH_STATE_MACHINE_ARN] == {"Ref": "BatchFanOutStateMachine"}
    # AND the reject threshold and chunk rows default to the runtime's defaults
    for name in (
        config.BATCH_REJECT_THRESHOLD,
        config.BATCH_CHUNK_ROWS,
        config.BATCH_CAPTURE_SAMPLE_RATE,
        config.BATCH_CAPTURE_MAX_ROWS,
    ):
        for settings, env in ((config.BatchScoreSettings, score_env), (config.BatchChunkSettings, chunk_env)):
            value = deployed_value(template, env[name])
            assert takes_the_runtime_default(settings, name, value), (settings.__name__, name, value)


# --- prediction capture --------------------------------------------------------------------------------------------
def test_capture_stream_partitions_by_model_and_day_into_the_data_bucket_encrypted(template: dict) -> None:
    # GIVEN the capture stream
    stream = template["Resources"]["CaptureStream"]["Properties"]
    s3 = stream["ExtendedS3DestinationConfiguration"]
    # THEN it takes records from the subscription filters (DirectPut) and writes them under
    # capture/model=<model>/dt=<day>/
    assert stream["DeliveryStreamType"] == "DirectPut"
    assert s3["BucketARN"] == {"Fn::GetAtt": ["DataBucket", "Arn"]}
    assert s3["Prefix"] == "capture/model=!{partitionKeyFromQuery:model}/dt=!{timestamp:yyyy-MM-dd}/"
    assert s3["Prefix"].startswith(config.CAPTURE_PREFIX)
    assert s3["ErrorOutputPrefix"].startswith("capture-errors/")
    assert s3["DynamicPartitioningConfiguration"]["Enabled"] is True
    processor = s3["ProcessingConfiguration"]["Processors"][-1]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "MetadataExtraction"
    assert parameters == {"MetadataExtractionQuery": "{model: .model}", "JsonParsingEngine": "JQ-1.6"}
    # AND objects are SSE-KMS with the stack's data key, buffered for CaptureBufferSeconds
    assert s3["EncryptionConfiguration"] == {
        "KMSEncryptionConfig": {"AWSKMSKeyARN": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    }
    assert s3["BufferingHints"] == {"SizeInMBs": 64, "IntervalInSeconds": {"Ref": "CaptureBufferSeconds"}}


def test_captures_expire_after_the_retention_parameter(template: dict) -> None:
    rules = template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    by_prefix = {r.get("Prefix"): r for r in rules}
    for prefix in ("capture/", "capture-errors/"):
        assert by_prefix[prefix]["ExpirationInDays"] == {"Ref": "CaptureRetentionDays"}
        assert by_prefix[prefix]["Status"] == "Enabled"


def test_capture_stream_role_writes_only_captures_and_never_uses_the_key_outside_s3(template: dict) -> None:
    # GIVEN the role Firehose assumes
    role = template["Resources"]["CaptureStreamRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    statements = [s for p in role["Policies"] for s in as_list(p["PolicyDocument"]["Statement"])]
    # THEN objects can be written only under capture/ and capture-errors/, and nothing can be read or deleted
    writes = [s for action, s in allowed_actions(statements) if action == "s3:putobject"]
    assert [s["Resource"] for s in writes] == [
        [{"Fn::Sub": "${DataBucket.Arn}/capture/*"}, {"Fn::Sub": "${DataBucket.Arn}/capture-errors/*"}]
    ]
    actions = {action for action, _ in allowed_actions(statements)}
    assert not actions & {"s3:getobject", "s3:deleteobject", "kms:encrypt", "s3:*", "kms:*"}
    # AND the data key is used only through S3
    for action, statement in allowed_actions(statements):
        if action.startswith("kms:"):
            assert statement["Condition"]["StringEquals"]["kms:ViaService"] == {
                "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
            }


@pytest.mark.parametrize("function", ["PredictFunction", "BatchScoreFunction", "BatchChunkFunction"])
def test_capturing_functions_only_unwrap_the_pseudonymization_key_and_call_no_firehose(
    template: dict, function: str
) -> None:
    # GIVEN the policies of a function that captures rows
    statements = {s["Sid"]: s for s in function_statements(template, function)}
    # THEN the pseudonymization key is unwrapped only under its encryption context
    unwrap = statements["UnwrapPseudonymizationKey"]
    assert unwrap["Action"] == "kms:Decrypt" and unwrap["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert unwrap["Condition"] == {"StringEquals": PSEUDONYM_CONTEXT}
    # AND the role can neither create nor encrypt with keys, and has no Firehose permission (captures go via logs)
    actions = {action for action, _ in allowed_actions(list(statements.values()))}
    assert not {
        a for a in actions if a.startswith("kms:") and a not in {"kms:decrypt", "kms:verify", "kms:generatedatakey"}
    }
    assert not {a for a in actions if a.startswith("firehose:")}


def test_capture_lines_of_every_capturing_function_reach_the_stream_through_a_subscription(template: dict) -> None:
    # GIVEN the subscription filters
    resources = template["Resources"]
    subs = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Logs::SubscriptionFilter"}
    # THEN the predict and both batch log groups send exactly the marked lines to the capture stream
    assert sorted(p["LogGroupName"]["Ref"] for p in subs.values()) == [
        "BatchChunkFunctionLogGroup",
        "BatchScoreFunctionLogGroup",
        "PredictFunctionLogGroup",
    ]
    for props in subs.values():
        assert props["FilterPattern"] == '{ $.capture = "sklambda/v1" }'
        assert props["DestinationArn"] == {"Fn::GetAtt": ["CaptureStream", "Arn"]}
    assert all(resources[k].get("Condition") == "CaptureEnabled" for k in subs)
    # AND CloudWatch Logs may only put records into that stream
    role = resources["CaptureLogsRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    statements = [s for p in role["Policies"] for s in as_list(p["PolicyDocument"]["Statement"])]
    assert {a for a, _ in allowed_actions(statements)} == {"firehose:putrecord", "firehose:putrecordbatch"}
    assert all(s["Resource"] == {"Fn::GetAtt": ["CaptureStream", "Arn"]} for s in statements)
    # AND the stream unzips CloudWatch Logs batches and keeps only the messages before partitioning by model
    processors = resources["CaptureStream"]["Properties"]["ExtendedS3DestinationConfiguration"][
        "ProcessingConfiguration"
    ]["Processors"]
    assert [p["Type"] for p in processors] == ["Decompression", "CloudWatchLogProcessing", "MetadataExtraction"]


@pytest.mark.parametrize(("ciphertext", "capturing"), [("", False), ("AQIDBAU=", True)])
def test_capture_is_configured_only_when_a_wrapped_key_is_given(template: dict, ciphertext, capturing) -> None:
    # GIVEN the template resolved with or without PseudonymKeyCiphertext
    params = parameter_values(template, {"PseudonymKeyCiphertext": ciphertext})
    variables = sklambda_variables(resolve_language_extensions(template, params))
    # THEN the function gets the key, or no key (capture off)
    assert (config.PSEUDONYM_KEY_CIPHERTEXT in variables) is capturing
    if capturing:
        assert variables[config.PSEUDONYM_KEY_CIPHERTEXT] == {"Ref": "PseudonymKeyCiphertext"}
    assert template["Parameters"]["PseudonymKeyCiphertext"]["NoEcho"] is True


# --- drift check ---------------------------------------------------------------------------------------------------
DRIFT_APP = ROOT / "functions" / "drift_check" / "app.py"
DRIFT_CHECK_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.MONITORING_BUCKET,
    config.DRIFT_WINDOW_HOURS,
    config.DRIFT_EVENT_BUS,
}


def test_drift_check_runs_on_the_schedule_parameter_without_retries(template: dict) -> None:
    # GIVEN the function translated by SAM
    resources = translate()["Resources"]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    (rule,) = [r for r in rules if any(t["Arn"] == {"Fn::GetAtt": ["DriftCheckFunction", "Arn"]} for t in r["Targets"])]
    # THEN an enabled EventBridge rule invokes it on that schedule, once per firing (a retry would count a window
    # twice in the consecutive-window state)
    assert rule["ScheduleExpression"] == {"Ref": "DriftCheckSchedule"} and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # AND the default schedule's period is the default window, so consecutive windows neither overlap nor gap
    parameters = template["Parameters"]
    assert parameters["DriftCheckSchedule"]["Default"] == "rate(1 day)"
    assert float(parameters["DriftWindowHours"]["Default"]) == 24


def test_drift_check_environment_is_exactly_the_settings_the_code_reads(template: dict) -> None:
    props = template["Resources"]["DriftCheckFunction"]["Properties"]
    variables = props["Environment"]["Variables"]
    # THEN the names are sklambda.config's, the captures and reports live in the data bucket
    assert set(variables) == DRIFT_CHECK_SETTINGS
    assert_settings_read_what_the_template_sets(config.DriftCheckSettings, variables)
    assert variables[config.MONITORING_BUCKET] == {"Ref": "DataBucket"}
    assert variables[config.MODEL_BUCKET] == {"Ref": "ModelBucket"}
    # AND the defaults agree with the runtime's
    for name in (config.DRIFT_EVENT_BUS, config.DRIFT_WINDOW_HOURS):
        value = deployed_value(template, variables[name])
        assert takes_the_runtime_default(config.DriftCheckSettings, name, value), (name, value)
    assert (props["CodeUri"], props["Handler"], props["Timeout"]) == ("functions/drift_check/", "app.handler", 300)


def test_drift_check_role_is_least_privilege(template: dict) -> None:
    statements = _statements_by_sid(template, "DriftCheckFunction")
    # THEN it cannot sign, verifies with the signing key only and uses the data key only through S3
    assert grants_kms_sign(list(statements.values())) == []
    assert statements["VerifyModelCards"]["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    assert "kms:ViaService" in statements["UseDataKeyThroughS3"]["Condition"]["StringEquals"]
    # AND it reads captures, lists only capture/, models/ and reports/drift/, and writes nothing outside reports/drift/
    assert statements["ReadCaptures"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/capture/*"}
    assert statements["ListCaptures"]["Condition"] == {"StringLike": {"s3:prefix": "capture/*"}}
    assert statements["ListModels"]["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
    assert statements["ListDriftReports"]["Condition"] == {"StringLike": {"s3:prefix": "reports/drift/*"}}
    writers = [s for action, s in allowed_actions(list(statements.values())) if action == "s3:putobject"]
    assert [s["Resource"] for s in writers] == [{"Fn::Sub": "${DataBucket.Arn}/reports/drift/*"}]
    # AND it puts events on the default bus only
    assert statements["PutDriftEvents"]["Action"] == "events:PutEvents"
    assert statements["PutDriftEvents"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
    }
    # AND no statement uses a wildcard resource or action
    for sid, statement in statements.items():
        assert "*" not in as_list(statement["Resource"]), sid
        assert not any(a.endswith(":*") for a in as_list(statement["Action"])), sid


def test_drift_is_alarmed_and_on_the_dashboard(template: dict) -> None:
    resources = template["Resources"]
    # GIVEN the alarm on drifted models
    alarm = resources["ModelDriftAlarm"]["Properties"]
    (query,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    # THEN it watches ModelDrifted of every model of the service and notifies the alarm topic
    assert query["Expression"] == "SELECT MAX(ModelDrifted) FROM sklambda WHERE service = 'sklambda'"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    # AND the function's errors are alarmed too
    errors = alarm_on(template, "AWS/Lambda", "Errors", {"Ref": "DriftCheckFunction"})
    assert {"Ref": "AlarmTopic"} in errors["AlarmActions"]
    # AND the dashboard shows drifted features and ModelDrifted per model
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    assert "SELECT MAX(DriftedFeatures) FROM sklambda WHERE service = 'sklambda' GROUP BY model" in body
    assert "SELECT MAX(ModelDrifted) FROM sklambda WHERE service = 'sklambda' GROUP BY model" in body
    # AND the function really emits those metric names
    source = DRIFT_APP.read_text(encoding="utf-8")
    for metric in ("ModelDrifted", "DriftedFeatures", "DriftCheckFailed"):
        assert f'"{metric}"' in source


# --- ground truth in -----------------------------------------------------------------------------------------------
FEEDBACK_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.MONITORING_BUCKET,
    config.DEFAULT_ALIAS,
    config.ALIAS_TTL_SECONDS,
    config.MAX_BODY_BYTES,
    config.FEEDBACK_MAX_LABELS,
}


def test_feedback_environment_is_exactly_the_settings_the_code_reads(template: dict) -> None:
    props = template["Resources"]["FeedbackFunction"]["Properties"]
    variables = props["Environment"]["Variables"]
    # THEN the names are sklambda.config's, labels go to the data bucket, cards come from the registry
    assert set(variables) == FEEDBACK_SETTINGS
    assert_settings_read_what_the_template_sets(config.FeedbackSettings, variables)
    assert variables[config.MONITORING_BUCKET] == {"Ref": "DataBucket"}
    assert variables[config.MODEL_BUCKET] == {"Ref": "ModelBucket"}
    # AND the defaults agree with the runtime's (the same body limit and alias TTL as the predict function)
    for name in (config.DEFAULT_ALIAS, config.ALIAS_TTL_SECONDS, config.MAX_BODY_BYTES, config.FEEDBACK_MAX_LABELS):
        value = deployed_value(template, variables[name])
        assert takes_the_runtime_default(config.FeedbackSettings, name, value), (name, value)
        if name in sklambda_variables(template):
            assert variables[name] == sklambda_variables(template)[name], name
    assert (props["CodeUri"], props["Handler"]) == ("functions/feedback/", "app.handler")


def test_feedback_role_reads_cards_and_label_files_and_writes_only_ground_truth(template: dict) -> None:
    statements = _statements_by_sid(template, "FeedbackFunction")
    # THEN it cannot sign, verifies with the signing key only and uses the data key only through S3
    assert grants_kms_sign(list(statements.values())) == []
    assert statements["VerifyModelCards"]["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    assert "kms:ViaService" in statements["UseDataKeyThroughS3"]["Condition"]["StringEquals"]
    # AND it writes nothing outside ground-truth/, deletes nothing, and reads only feedback/ files, cards and aliases
    writers = [s for action, s in allowed_actions(list(statements.values())) if action == "s3:putobject"]
    assert [s["Resource"] for s in writers] == [{"Fn::Sub": "${DataBucket.Arn}/ground-truth/*"}]
    assert not [a for a, _ in allowed_actions(list(statements.values())) if a.startswith("s3:delete")]
    readers = [s for action, s in allowed_actions(list(statements.values())) if action == "s3:getobject"]
    assert [s["Resource"] for s in readers] == [
        {"Fn::Sub": "${DataBucket.Arn}/feedback/*"},
        [
            {"Fn::Sub": "${ModelBucket.Arn}/models/*/versions/*/card.json"},
            {"Fn::Sub": "${ModelBucket.Arn}/models/*/aliases/*"},
        ],
    ]
    assert statements["ListModels"]["Condition"] == {"StringLike": {"s3:prefix": "models/*"}}
    # AND no statement uses a wildcard resource or action
    for sid, statement in statements.items():
        assert "*" not in as_list(statement["Resource"]), sid
        assert not any(a.endswith(":*") for a in as_list(statement["Action"])), sid


def test_label_files_reach_the_feedback_function_through_a_queue_with_a_dead_letter_queue(template: dict) -> None:
    resources = template["Resources"]
    bucket = resources["DataBucket"]
    # GIVEN the data bucket's notification to the feedback queue
    (notification,) = [
        c
        for c in bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        if c["Queue"] == {"Fn::GetAtt": ["FeedbackQueue", "Arn"]}
    ]
    # THEN every ObjectCreated under feedback/ (and nothing the function writes, under ground-truth/) goes there
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "feedback/"}]
    assert "FeedbackQueuePolicy" in as_list(bucket["DependsOn"])
    (statement,) = resources["FeedbackQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    batch_statement = resources["BatchQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Condition"] == batch_statement["Condition"]
    # AND the queue outlasts six function timeouts and moves a message to the alarmed DLQ after five receives
    queue = resources["FeedbackQueue"]["Properties"]
    function = resources["FeedbackFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FeedbackDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    alarm_on(
        template,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"Fn::GetAtt": ["FeedbackDeadLetterQueue", "QueueName"]},
    )
    alarm_on(template, "AWS/Lambda", "Errors", {"Ref": "FeedbackFunction"})
    # AND the function reports partial batch failures from that queue
    (event,) = [e for e in function["Events"].values() if e["Type"] == "SQS"]
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["FeedbackQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_ground_truth_expires_after_its_retention_parameter(template: dict) -> None:
    rules = {r["Id"]: r for r in template["Resources"]["DataBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireGroundTruth"]["Prefix"] == config.GROUND_TRUTH_PREFIX
    assert rules["ExpireGroundTruth"]["ExpirationInDays"] == {"Ref": "GroundTruthRetentionDays"}


# --- model-quality check -------------------------------------------------------------------------------------------
QUALITY_APP = ROOT / "functions" / "quality_check" / "app.py"
QUALITY_CHECK_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.MONITORING_BUCKET,
    config.QUALITY_WINDOW_HOURS,
    config.QUALITY_LOOKBACK_DAYS,
    config.QUALITY_EVENT_BUS,
}


def test_quality_check_runs_on_its_schedule_parameter_without_retries(template: dict) -> None:
    # GIVEN the function translated by SAM
    resources = translate()["Resources"]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    target_arn = {"Fn::GetAtt": ["QualityCheckFunction", "Arn"]}
    (rule,) = [r for r in rules if any(t["Arn"] == target_arn for t in r["Targets"])]
    # THEN an enabled rule invokes it on its own schedule, once per firing
    assert rule["ScheduleExpression"] == {"Ref": "QualityCheckSchedule"} and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # AND the default schedule's period is the default window: each label arrival is counted in one window
    parameters = template["Parameters"]
    assert parameters["QualityCheckSchedule"]["Default"] == "rate(1 day)"
    assert float(parameters["QualityWindowHours"]["Default"]) == 24


def test_quality_check_environment_is_exactly_the_settings_the_code_reads(template: dict) -> None:
    props = template["Resources"]["QualityCheckFunction"]["Properties"]
    variables = props["Environment"]["Variables"]
    # THEN the names are sklambda.config's, the labels, captures and reports live in the data bucket
    assert set(variables) == QUALITY_CHECK_SETTINGS
    assert_settings_read_what_the_template_sets(config.QualityCheckSettings, variables)
    assert variables[config.MONITORING_BUCKET] == {"Ref": "DataBucket"}
    # AND the defaults agree with the runtime's
    for name in (config.QUALITY_EVENT_BUS, config.QUALITY_WINDOW_HOURS, config.QUALITY_LOOKBACK_DAYS):
        value = deployed_value(template, variables[name])
        assert takes_the_runtime_default(config.QualityCheckSettings, name, value), (name, value)
    assert (props["CodeUri"], props["Handler"]) == ("functions/quality_check/", "app.handler")


def test_quality_check_role_is_least_privilege(template: dict) -> None:
    statements = _statements_by_sid(template, "QualityCheckFunction")
    # THEN it cannot sign, verifies with the signing key only and uses the data key only through S3
    assert grants_kms_sign(list(statements.values())) == []
    assert "kms:ViaService" in statements["UseDataKeyThroughS3"]["Condition"]["StringEquals"]
    # AND it reads captures and labels, lists only their prefixes, models/ and reports/quality/
    assert statements["ReadCaptures"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/capture/*"}
    assert statements["ReadLabels"]["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/ground-truth/*"}
    listed = {sid: s["Condition"]["StringLike"]["s3:prefix"] for sid, s in statements.items() if sid.startswith("List")}
    assert sorted(listed.values()) == ["capture/*", "ground-truth/*", "models/*", "reports/quality/*"]
    # AND writes nothing outside reports/quality/ (not the drift folder, not the labels)
    writers = [s for action, s in allowed_actions(list(statements.values())) if action == "s3:putobject"]
    assert [s["Resource"] for s in writers] == [{"Fn::Sub": "${DataBucket.Arn}/reports/quality/*"}]
    # AND it puts events on the default bus only, and needs no PutMetricData (its metrics are EMF log lines)
    assert statements["PutQualityEvents"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
    }
    assert not [a for a, _ in allowed_actions(list(statements.values())) if a.startswith("cloudwatch:")]
    for sid, statement in statements.items():
        assert "*" not in as_list(statement["Resource"]), sid
        assert not any(a.endswith(":*") for a in as_list(statement["Action"])), sid


def test_quality_is_alarmed_and_on_the_dashboard(template: dict) -> None:
    resources = template["Resources"]
    # GIVEN the alarms on degraded models, realized and estimated
    for logical_id, metric in (
        ("ModelDegradedAlarm", "ModelDegraded"),
        ("EstimatedDegradedAlarm", "EstimatedDegraded"),
    ):
        alarm = resources[logical_id]["Properties"]
        (query,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
        # THEN each watches its metric for every model of the service and notifies the alarm topic
        assert query["Expression"] == f"SELECT MAX({metric}) FROM sklambda WHERE service = 'sklambda'"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    # AND the function's errors are alarmed too
    assert {"Ref": "AlarmTopic"} in alarm_on(template, "AWS/Lambda", "Errors", {"Ref": "QualityCheckFunction"})[
        "AlarmActions"
    ]
    # AND the dashboard shows realized and estimated ROC AUC, ModelDegraded, labeled rows and the join rate per model
    body = resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    metrics = ("RealizedRocAuc", "EstimatedRocAuc", "ModelDegraded", "LabeledRows", "JoinRate")
    for metric in metrics:
        assert f"({metric}) FROM sklambda WHERE service = 'sklambda' GROUP BY model" in body, metric
    # AND the function really emits those names (Realized/Estimated + the metric in CamelCase)
    source = QUALITY_APP.read_text(encoding="utf-8")
    for metric in ("ModelDegraded", "EstimatedDegraded", "LabeledRows", "JoinRate", "QualityCheckFailed"):
        assert f'"{metric}"' in source
    assert '"Realized"' in source and '"Estimated"' in source
