"""Create the translated template's resources in moto, in dependency order, honouring Conditions.

The template is CloudFormation as the SAM transform produced it (sklambda_infra.translation). Each supported type has
one function that creates it through boto3 and returns what `Ref` and `Fn::GetAtt` give for it. Lambda functions,
layers, versions and aliases are not created in moto: the local stack runs the functions, so they only get names and
ARNs here. What the local stack emulates otherwise (API Gateway, event source mappings, schedules) is listed as a
local equivalent; everything else is reported as cloud-only (with a placeholder physical id so that references to
it still resolve), never silently dropped.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklambda_infra.local import firehose
from sklambda_infra.template import (
    API_STAGE,
    EVENT_INVOKE_CONFIG,
    EVENT_SOURCE_MAPPING,
    EVENTS_RULE,
    LAMBDA_ALIAS,
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    LAMBDA_VERSION,
    NO_VALUE,
    REST_API,
    Resolver,
    TemplateError,
    dependency_order,
)

# What the local stack does with each type of the translated template that it does not create in moto.
LOCAL_EQUIVALENT = {
    LAMBDA_FUNCTION: "run by the local stack in a worker process",
    LAMBDA_LAYER: "put on the functions' sys.path",
    LAMBDA_VERSION: "runs the function's code (every local invocation runs $LATEST)",
    LAMBDA_ALIAS: "runs the function's code (every local invocation runs $LATEST)",
    "AWS::Lambda::Permission": "not needed: the local stack invokes its functions directly",
    EVENT_SOURCE_MAPPING: "polled by the local stack (SQS queues)",
    EVENT_INVOKE_CONFIG: "read by the local scheduler; failed asynchronous runs are not retried locally",
    EVENTS_RULE: "fired by the local scheduler",
    REST_API: "emulated by the local gateway",
    "AWS::ApiGateway::Deployment": "emulated by the local gateway",
    API_STAGE: "emulated by the local gateway",
    "AWS::ApiGateway::UsagePlan": "API keys are checked by the local gateway; throttling and quotas are not applied",
    "AWS::ApiGateway::UsagePlanKey": "API keys are checked by the local gateway; throttling and quotas are not applied",
    "AWS::Logs::SubscriptionFilter": "matching function log lines are forwarded by the local stack",
}


class ProvisionError(Exception):
    """A resource could not be created locally."""


@dataclass
class Created:
    physical_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ProvisionResult:
    created: dict[str, Created] = field(default_factory=dict)  # logical id -> what moto holds
    types: dict[str, str] = field(default_factory=dict)  # logical id -> resource type (every resource)
    local: dict[str, str] = field(default_factory=dict)  # functions, layers, APIs: how they exist locally
    cloud_only: dict[str, str] = field(default_factory=dict)  # logical id -> type
    skipped: dict[str, str] = field(default_factory=dict)  # logical id -> the false Condition
    placeholders: dict[str, str] = field(default_factory=dict)  # "Id" / "Id.Attr" -> placeholder value used
    notes: dict[str, list[str]] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)  # parameter -> the resource it was generated with


Clients = Callable[[str], Any]
_Handler = Callable[["Provisioner", str, dict[str, Any]], Created]


def generated_name(stack_name: str, logical_id: str, *, max_length: int = 64, lowercase: bool = False) -> str:
    """`<stack>-<logicalid>-<random>` as CloudFormation names resources that have no explicit name."""
    suffix = secrets.token_hex(4)
    base = f"{stack_name}-{logical_id}"
    if lowercase:
        base = re.sub(r"[^a-z0-9-]", "-", base.lower())
    base = base[: max_length - len(suffix) - 1].strip("-")
    return f"{base}-{suffix}"


def _tags(tags: Any) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def _ignored(props: Mapping[str, Any], handled: set[str]) -> list[str]:
    extra = sorted(set(props) - handled)
    return [f"ignored locally: {', '.join(extra)}"] if extra else []


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


class Provisioner:
    """Walks `template["Resources"]` in dependency order and creates what moto can hold."""

    def __init__(self, resolver: Resolver, clients: Clients) -> None:
        self.resolver = resolver
        self.clients = clients
        self.template = resolver.template
        self.pseudo = resolver.pseudo
        self.refs: dict[str, Any] = {}
        self.attributes: dict[tuple[str, str], Any] = {}
        self.result = ProvisionResult()
        resolver.refs = self.refs
        resolver.attributes = self.attributes
        resolver.fallback = self._placeholder

    # -- the walk --------------------------------------------------------------------------------------------

    def provision(self) -> ProvisionResult:
        resources = self.template["Resources"]
        for logical_id in dependency_order(resources):
            kind = str((resources[logical_id] or {}).get("Type", ""))
            self.result.types[logical_id] = kind
            condition = (resources[logical_id] or {}).get("Condition")
            if not self.resolver.enabled(logical_id):
                self.result.skipped[logical_id] = str(condition)
                continue
            self._provision_one(logical_id, kind)
        return self.result

    def _provision_one(self, logical_id: str, kind: str) -> None:
        body = self.template["Resources"][logical_id] or {}
        named = _NAMED_ONLY.get(kind)
        if named is not None:
            self._record(logical_id, named(self, logical_id))
            self.result.local[logical_id] = LOCAL_EQUIVALENT[kind]
            return
        handler = HANDLERS.get(kind)
        if handler is None:
            self.refs[logical_id] = self._placeholder(logical_id, None)
            scheduled = kind != EVENTS_RULE or "ScheduleExpression" in (body.get("Properties") or {})
            if kind in LOCAL_EQUIVALENT and scheduled:
                self.result.local[logical_id] = LOCAL_EQUIVALENT[kind]
            else:
                self.result.cloud_only[logical_id] = kind
            return
        try:
            properties = self.resolver.resolve(body.get("Properties") or {})
        except TemplateError as e:
            raise ProvisionError(f"{logical_id} ({kind}): {e}") from None
        try:
            created = handler(self, logical_id, properties)
        except Exception as e:
            raise ProvisionError(f"{logical_id} ({kind}) could not be created locally: {e}") from e
        self._record(logical_id, created)
        self.result.created[logical_id] = created
        self._generate_parameters(logical_id)

    def _generate_parameters(self, logical_id: str) -> None:
        """Parameters an operator creates with a resource of the stack (GENERATED_PARAMETERS), made locally as
        soon as that resource exists when no value was given."""
        for name, (source, generate) in GENERATED_PARAMETERS.items():
            if source != logical_id or name not in self.resolver.parameters or self.resolver.parameters[name]:
                continue
            self.resolver.set_parameter(name, generate(self, self.refs[logical_id]))
            self.result.generated[name] = source

    def _record(self, logical_id: str, created: Created) -> None:
        self.refs[logical_id] = created.physical_id
        for name, value in created.attributes.items():
            self.attributes[(logical_id, name)] = value
        if created.notes:
            self.result.notes[logical_id] = created.notes

    def _placeholder(self, logical_id: str, attribute: str | None) -> str:
        """A stable stand-in for a value that only exists in the cloud (a role ARN, an API id, ...)."""
        kind = str((self.template["Resources"].get(logical_id) or {}).get("Type", ""))
        p = self.pseudo
        name = f"{p.stack_name}-{logical_id}"
        if attribute is None:
            value = name
        elif attribute.endswith("Arn") or attribute == "Arn":
            if kind.startswith("AWS::IAM::") or logical_id.endswith("Role"):
                value = f"arn:{p.partition}:iam::{p.account_id}:role/{name}"
            elif kind.startswith("AWS::Lambda::"):
                value = f"arn:{p.partition}:lambda:{p.region}:{p.account_id}:function:{name}"
            else:
                service = kind.split("::")[1].lower() if kind.count("::") == 2 else "cloudformation"
                value = f"arn:{p.partition}:{service}:{p.region}:{p.account_id}:{name}"
        else:
            value = f"{name}-{attribute}"
        self.result.placeholders[logical_id if attribute is None else f"{logical_id}.{attribute}"] = value
        return value

    # -- Lambda functions, layers, versions and aliases (named only) -------------------------------------------

    def _properties(self, logical_id: str) -> dict[str, Any]:
        return self.template["Resources"][logical_id].get("Properties") or {}

    def function_arn(self, function: Any) -> str:
        """A function's ARN from what Lambda accepts as a FunctionName: a name, an ARN, a partial ARN."""
        text = str(self.resolver.resolve(function))
        if text.startswith("arn:"):
            return text
        p = self.pseudo
        return f"arn:{p.partition}:lambda:{p.region}:{p.account_id}:function:{text.rsplit(':', 1)[-1]}"

    def _function(self, logical_id: str) -> Created:
        explicit = self._properties(logical_id).get("FunctionName")
        name = (
            str(self.resolver.resolve(explicit))
            if explicit is not None
            else generated_name(self.pseudo.stack_name, logical_id)
        )
        return Created(name, {"Arn": self.function_arn(name)})

    def _layer(self, logical_id: str) -> Created:
        given = self._properties(logical_id).get("LayerName")
        name = (
            str(self.resolver.resolve(given))
            if given is not None
            else generated_name(self.pseudo.stack_name, logical_id)
        )
        p = self.pseudo
        arn = f"arn:{p.partition}:lambda:{p.region}:{p.account_id}:layer:{name}:1"
        return Created(arn, {"Arn": arn})

    def _version(self, logical_id: str) -> Created:
        """Ref gives the version's ARN, as Lambda's PublishVersion does; every local function is at version 1."""
        arn = f"{self.function_arn(self._properties(logical_id)['FunctionName'])}:1"
        return Created(arn, {"Version": "1", "FunctionArn": arn})

    def _alias(self, logical_id: str) -> Created:
        props = self._properties(logical_id)
        arn = f"{self.function_arn(props['FunctionName'])}:{self.resolver.resolve(props['Name'])}"
        return Created(arn, {"AliasArn": arn})

    # -- typed handlers --------------------------------------------------------------------------------------

    def name_for(self, logical_id: str, props: Mapping[str, Any], key: str, **kwargs: Any) -> str:
        given = props.get(key)
        return (
            str(given)
            if given not in (None, NO_VALUE)
            else generated_name(self.pseudo.stack_name, logical_id, **kwargs)
        )


def _kms_key(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    kms = p.clients("kms")
    args: dict[str, Any] = {
        "KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        "KeySpec": props.get("KeySpec", "SYMMETRIC_DEFAULT"),
        "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(props.get("Tags"))],
    }
    if "Description" in props:
        args["Description"] = str(props["Description"])
    if "KeyPolicy" in props:
        args["Policy"] = _json(props["KeyPolicy"])
    if "MultiRegion" in props:
        args["MultiRegion"] = _bool(props["MultiRegion"])
    meta = kms.create_key(**args)["KeyMetadata"]
    notes = _ignored(
        props,
        {"KeyUsage", "KeySpec", "Tags", "Description", "KeyPolicy", "MultiRegion", "EnableKeyRotation", "Enabled"},
    )
    if _bool(props.get("EnableKeyRotation", False)):
        kms.enable_key_rotation(KeyId=meta["KeyId"])
    if not _bool(props.get("Enabled", True)):
        kms.disable_key(KeyId=meta["KeyId"])
    return Created(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}, notes)


def _kms_alias(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    name = str(props["AliasName"])
    p.clients("kms").create_alias(AliasName=name, TargetKeyId=str(props["TargetKeyId"]))
    return Created(name)


_LIFECYCLE_AS_IS = ("Status", "AbortIncompleteMultipartUpload", "NoncurrentVersionExpiration")


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle Rule -> the S3 API's, for the common fields."""
    out: dict[str, Any] = {k: rule[k] for k in _LIFECYCLE_AS_IS if k in rule}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": str(rule.get("Prefix", ""))}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = _bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    # Parameters resolve to strings; the S3 API wants integers.
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {k: int(v) for k, v in rule["NoncurrentVersionExpiration"].items()}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "Transitions" in rule:
        out["Transitions"] = [
            {"StorageClass": t["StorageClass"], "Days": int(t["TransitionInDays"])} for t in rule["Transitions"]
        ]
    return out


def _encryption_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's ServerSideEncryptionRule -> the S3 API's (ServerSideEncryptionByDefault is renamed)."""
    out: dict[str, Any] = {}
    if "ServerSideEncryptionByDefault" in rule:
        out["ApplyServerSideEncryptionByDefault"] = rule["ServerSideEncryptionByDefault"]
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"])
    return out


def _key_filter(cfn_filter: Mapping[str, Any] | None) -> dict[str, Any]:
    rules = ((cfn_filter or {}).get("S3Key") or {}).get("Rules") or []
    if not rules:
        return {}
    return {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}}


def _notification_configuration(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """CloudFormation's NotificationConfiguration -> the S3 API's (one event per configuration there)."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    for cfn_key, api_key, target, api_target in (
        ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
    ):
        configs = [
            {api_target: str(c[target]), "Events": [str(c["Event"])], **_key_filter(c.get("Filter"))}
            for c in config.get(cfn_key) or []
        ]
        if configs:
            out[api_key] = configs
    if config.get("LambdaConfigurations"):
        notes.append("LambdaConfigurations are not delivered locally (functions are not in moto); use a queue")
    if config.get("EventBridgeConfiguration"):
        out["EventBridgeConfiguration"] = {}
    return out, notes


def _s3_bucket(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    s3 = p.clients("s3")
    name = p.name_for(logical_id, props, "BucketName", max_length=63, lowercase=True)
    region = p.pseudo.region
    create: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if "ObjectLockEnabled" in props:
        create["ObjectLockEnabledForBucket"] = _bool(props["ObjectLockEnabled"])
    s3.create_bucket(**create)
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if "PublicAccessBlockConfiguration" in props:
        block = {k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    if "BucketEncryption" in props:
        rules = [_encryption_rule(r) for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    if "LifecycleConfiguration" in props:
        rules = [_lifecycle_rule(r) for r in props["LifecycleConfiguration"].get("Rules", [])]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props["Tags"])})
    extra_notes: list[str] = []
    if "NotificationConfiguration" in props:
        notification, extra_notes = _notification_configuration(props["NotificationConfiguration"])
        # moto sends s3:TestEvent to each queue, as S3 does, and delivers ObjectCreated events to moto's queues.
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=notification)
    notes = extra_notes + _ignored(
        props,
        {
            "NotificationConfiguration",
            "BucketName",
            "ObjectLockEnabled",
            "OwnershipControls",
            "PublicAccessBlockConfiguration",
            "BucketEncryption",
            "VersioningConfiguration",
            "LifecycleConfiguration",
            "Tags",
        },
    )
    partition, suffix = p.pseudo.partition, p.pseudo.url_suffix
    attributes = {
        "Arn": f"arn:{partition}:s3:::{name}",
        "DomainName": f"{name}.s3.{suffix}",
        "RegionalDomainName": f"{name}.s3.{region}.{suffix}",
        "DualStackDomainName": f"{name}.s3.dualstack.{region}.{suffix}",
        "WebsiteURL": f"http://{name}.s3-website-{region}.{suffix}",
    }
    return Created(name, attributes, notes)


def local_bucket_policy(document: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """The policy without its statements that have a Condition, and the Sids left out.

    moto enforces bucket policies but evaluates Conditions without any request context, so a conditional
    statement (Deny unless TLS, Deny puts without SSE-KMS headers, ...) denies every matching request.
    """
    policy = json.loads(document) if isinstance(document, str) else dict(document)
    statements = policy.get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    kept = [s for s in statements if "Condition" not in s]
    dropped = [str(s.get("Sid", f"#{i}")) for i, s in enumerate(statements) if "Condition" in s]
    return ({**policy, "Statement": kept} if kept else None), dropped


def _s3_bucket_policy(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    bucket = str(props["Bucket"])
    policy, dropped = local_bucket_policy(props["PolicyDocument"])
    if policy is not None:
        p.clients("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    notes = []
    if dropped:
        notes.append(
            "statements with a Condition left out (moto would apply them to every request, it cannot evaluate "
            f"conditions): {', '.join(dropped)}"
        )
    return Created(bucket, {}, notes)


def _log_group(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    logs = p.clients("logs")
    name = p.name_for(logical_id, props, "LogGroupName", max_length=512)
    args: dict[str, Any] = {"logGroupName": name}
    if "KmsKeyId" in props:
        args["kmsKeyId"] = str(props["KmsKeyId"])
    if props.get("Tags"):
        args["tags"] = {t["Key"]: t["Value"] for t in _tags(props["Tags"])}
    logs.create_log_group(**args)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    notes = _ignored(props, {"LogGroupName", "KmsKeyId", "Tags", "RetentionInDays"})
    pp = p.pseudo
    return Created(name, {"Arn": f"arn:{pp.partition}:logs:{pp.region}:{pp.account_id}:log-group:{name}:*"}, notes)


def _sns_topic(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    sns = p.clients("sns")
    fifo = _bool(props.get("FifoTopic", False))
    name = p.name_for(logical_id, props, "TopicName", max_length=256 - (5 if fifo else 0))
    if fifo and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {"FifoTopic": "true"} if fifo else {}
    for key in ("DisplayName", "KmsMasterKeyId", "ContentBasedDeduplication"):
        if key in props:
            value = props[key]
            attributes[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    args: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if props.get("Tags"):
        args["Tags"] = _tags(props["Tags"])
    arn = sns.create_topic(**args)["TopicArn"]
    for sub in props.get("Subscription") or []:
        sns.subscribe(TopicArn=arn, Protocol=str(sub["Protocol"]), Endpoint=str(sub["Endpoint"]))
    notes = _ignored(
        props,
        {
            "TopicName",
            "FifoTopic",
            "DisplayName",
            "KmsMasterKeyId",
            "ContentBasedDeduplication",
            "Tags",
            "Subscription",
        },
    )
    return Created(arn, {"TopicArn": arn, "TopicName": name}, notes)


def _sns_subscription(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    args = {"TopicArn": str(props["TopicArn"]), "Protocol": str(props["Protocol"])}
    if "Endpoint" in props:
        args["Endpoint"] = str(props["Endpoint"])
    arn = p.clients("sns").subscribe(**args, ReturnSubscriptionArn=True)["SubscriptionArn"]
    return Created(arn, {"Arn": arn}, _ignored(props, {"TopicArn", "Protocol", "Endpoint"}))


def _sns_topic_policy(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    policy = _json(props["PolicyDocument"])
    for topic in props["Topics"]:
        p.clients("sns").set_topic_attributes(TopicArn=str(topic), AttributeName="Policy", AttributeValue=policy)
    return Created(generated_name(p.pseudo.stack_name, logical_id))


def _cloudwatch_alarm(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    name = p.name_for(logical_id, props, "AlarmName", max_length=255)
    args = {k: v for k, v in props.items() if k != "AlarmName"}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in args:
            args[key] = int(args[key])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    if "ActionsEnabled" in args:
        args["ActionsEnabled"] = _bool(args["ActionsEnabled"])
    for query in args.get("Metrics") or []:
        if "Period" in query:
            query["Period"] = int(query["Period"])
        if "MetricStat" in query:
            query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        if "ReturnData" in query:
            query["ReturnData"] = _bool(query["ReturnData"])
    if "Tags" in args:
        args["Tags"] = _tags(args["Tags"])
    p.clients("cloudwatch").put_metric_alarm(AlarmName=name, **args)
    pp = p.pseudo
    return Created(name, {"Arn": f"arn:{pp.partition}:cloudwatch:{pp.region}:{pp.account_id}:alarm:{name}"})


_SQS_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedrivePolicy",
    "RedriveAllowPolicy",
)


def _sqs_queue(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    sqs = p.clients("sqs")
    fifo = _bool(props.get("FifoQueue", False))
    name = p.name_for(logical_id, props, "QueueName", max_length=80 - (5 if fifo else 0))
    if fifo and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {}
    for key in _SQS_ATTRIBUTES:
        if key in props:
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[key] = str(value)
    args: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        args["tags"] = {t["Key"]: t["Value"] for t in _tags(props["Tags"])}
    url = sqs.create_queue(**args)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    notes = _ignored(props, {"QueueName", "Tags", *_SQS_ATTRIBUTES})
    return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url}, notes)


def _sqs_queue_policy(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    policy = _json(props["PolicyDocument"])
    for url in props["Queues"]:
        p.clients("sqs").set_queue_attributes(QueueUrl=str(url), Attributes={"Policy": policy})
    return Created(generated_name(p.pseudo.stack_name, logical_id))


def _throughput(value: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in value.items()}


def _dynamodb_table(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    ddb = p.clients("dynamodb")
    name = p.name_for(logical_id, props, "TableName", max_length=255)
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        args["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            indexes = [dict(i) for i in props[key]]
            for index in indexes:
                if "ProvisionedThroughput" in index:
                    index["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
            args[key] = indexes
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        args["SSESpecification"] = {
            "Enabled": _bool(sse.get("SSEEnabled", False)),
            **{k: v for k, v in sse.items() if k in {"SSEType", "KMSMasterKeyId"}},
        }
    if "TableClass" in props:
        args["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = _bool(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        args["Tags"] = _tags(props["Tags"])
    table = ddb.create_table(**args)["TableDescription"]
    if "TimeToLiveSpecification" in props:
        ttl = props["TimeToLiveSpecification"]
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl["Enabled"])},
        )
    notes = _ignored(
        props,
        {
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "SSESpecification",
            "TableClass",
            "DeletionProtectionEnabled",
            "Tags",
            "TimeToLiveSpecification",
        },
    )
    attributes = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return Created(name, attributes, notes)


def _apigateway_api_key(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    args: dict[str, Any] = {
        "name": p.name_for(logical_id, props, "Name", max_length=128),
        "enabled": _bool(props.get("Enabled", False)),
    }
    if "Value" in props:
        args["value"] = str(props["Value"])
    if "Description" in props:
        args["description"] = str(props["Description"])
    key = p.clients("apigateway").create_api_key(**args)
    return Created(key["id"], {"APIKeyId": key["id"]}, _ignored(props, {"Name", "Enabled", "Value", "Description"}))


def _substitute(definition: str, substitutions: Mapping[str, Any]) -> str:
    for key, value in substitutions.items():
        definition = definition.replace("${" + key + "}", str(value))
    return definition


def _state_machine(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    """AWS::StepFunctions::StateMachine, stored in moto (the local stack runs its executions, see
    events.ExecutionWatcher)."""
    if "Definition" in props:
        definition = json.dumps(props["Definition"])
    elif "DefinitionString" in props:
        definition = str(props["DefinitionString"])
    else:
        raise ProvisionError(f"{logical_id}: only an inline Definition or DefinitionString runs locally")
    definition = _substitute(definition, props.get("DefinitionSubstitutions") or {})
    name_key = "Name" if "Name" in props else "StateMachineName"
    name = p.name_for(logical_id, props, name_key, max_length=80)
    kind = str(props.get("Type", props.get("StateMachineType", "STANDARD")))
    pp = p.pseudo
    role = str(props.get("RoleArn") or props.get("Role") or f"arn:{pp.partition}:iam::{pp.account_id}:role/{name}-role")
    arn = p.clients("stepfunctions").create_state_machine(name=name, definition=definition, roleArn=role, type=kind)[
        "stateMachineArn"
    ]
    notes = _ignored(
        props,
        {
            "Definition",
            "DefinitionString",
            "DefinitionSubstitutions",
            "Name",
            "StateMachineName",
            "Type",
            "StateMachineType",
            "RoleArn",
            "Role",
        },
    )
    notes.append("executions are run by the local stack's interpreter (Task on Lambda, Map, Pass, Choice, Fail...)")
    return Created(arn, {"Arn": arn, "Name": name}, notes)


def _firehose_delivery_stream(p: Provisioner, logical_id: str, props: dict[str, Any]) -> Created:
    """A DirectPut stream to S3. Records are written at once, one object per call (no buffering, compression or
    processors). A dynamically partitioned prefix (`!{partitionKeyFromQuery:..}`, `!{timestamp:..}` with a
    `{key: .field}` MetadataExtraction query) is evaluated per record by sklambda_infra.local.firehose; any other
    `!{...}` prefix is cut before its first expression and moto's `YYYY/MM/DD/HH/` layout applies."""
    kind = str(props.get("DeliveryStreamType", "DirectPut"))
    if kind != "DirectPut":
        raise ProvisionError(f"{logical_id}: only DirectPut delivery streams run locally, not {kind}")
    destination = props.get("ExtendedS3DestinationConfiguration") or props.get("S3DestinationConfiguration")
    if not destination:
        raise ProvisionError(f"{logical_id}: only S3 destinations run locally")
    name = p.name_for(logical_id, props, "DeliveryStreamName", max_length=64)
    prefix = str(destination.get("Prefix", ""))
    emulated = firehose.partitioning(prefix, _metadata_query(destination))
    cut = prefix[: prefix.rfind("/", 0, prefix.find("!{")) + 1] if "!{" in prefix else prefix
    local_prefix = "" if emulated else cut
    pp = p.pseudo
    config = {
        "BucketARN": str(destination["BucketARN"]),
        "RoleARN": str(destination.get("RoleARN") or f"arn:{pp.partition}:iam::{pp.account_id}:role/{name}"),
        "Prefix": local_prefix,
    }
    arn = p.clients("firehose").create_delivery_stream(
        DeliveryStreamName=name, DeliveryStreamType=kind, ExtendedS3DestinationConfiguration=config
    )["DeliveryStreamARN"]
    notes = _ignored(props, {"DeliveryStreamType", "DeliveryStreamName", "ExtendedS3DestinationConfiguration"})
    if emulated:
        firehose.register(name, emulated)
        notes.append(f"records are written at once, one object per call, partitioned as in the cloud: {prefix}")
    else:
        notes.append(f"records are written at once, one object per call, under {cut or '/'}YYYY/MM/DD/HH/")
        if cut != prefix:
            notes.append(f"dynamic partitioning is not emulated (template prefix {prefix})")
    bucket = config["BucketARN"].split(":")[-1]
    return Created(name, {"Arn": arn, "LocalPrefix": local_prefix, "BucketName": bucket}, notes)


def _metadata_query(destination: dict[str, Any]) -> str | None:
    processing = destination.get("ProcessingConfiguration") or {}
    for processor in processing.get("Processors") or []:
        if processor.get("Type") == "MetadataExtraction":
            for parameter in processor.get("Parameters") or []:
                if parameter.get("ParameterName") == "MetadataExtractionQuery":
                    return str(parameter.get("ParameterValue"))
    return None


def _pseudonym_key(p: Provisioner, kms_key_id: str) -> str:
    from sklambda import config

    blob = p.clients("kms").generate_data_key_without_plaintext(
        KeyId=kms_key_id, KeySpec="AES_256", EncryptionContext=config.PSEUDONYM_KEY_CONTEXT
    )["CiphertextBlob"]
    return base64.b64encode(blob).decode("ascii")


# Parameter -> (the resource it is made with, how): what an operator does between the first deploy and the next
# (`sklambda privacy create-key`), done locally when the resource is created.
GENERATED_PARAMETERS: dict[str, tuple[str, Callable[[Provisioner, str], str]]] = {
    "PseudonymKeyCiphertext": ("DataKey", _pseudonym_key),
}


_NAMED_ONLY: dict[str, Callable[[Provisioner, str], Created]] = {
    LAMBDA_FUNCTION: Provisioner._function,
    LAMBDA_LAYER: Provisioner._layer,
    LAMBDA_VERSION: Provisioner._version,
    LAMBDA_ALIAS: Provisioner._alias,
}

HANDLERS: dict[str, _Handler] = {
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::S3::BucketPolicy": _s3_bucket_policy,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::SNS::Subscription": _sns_subscription,
    "AWS::SNS::TopicPolicy": _sns_topic_policy,
    "AWS::CloudWatch::Alarm": _cloudwatch_alarm,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::SQS::QueuePolicy": _sqs_queue_policy,
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::ApiGateway::ApiKey": _apigateway_api_key,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::KinesisFirehose::DeliveryStream": _firehose_delivery_stream,
}
SUPPORTED_TYPES = tuple(HANDLERS)
