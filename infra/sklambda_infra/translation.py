"""The CloudFormation that a SAM template becomes, computed offline by aws-sam-translator.

CloudFormation deploys a SAM template through its transforms: AWS::LanguageExtensions first when declared (it replaces
each `Fn::If` whose condition it can decide with the chosen branch; template.yaml needs none, the local stack's test
fixture uses it), then AWS::Serverless-2016-10-31 (aws-sam-translator), which
merges Globals and turns each AWS::Serverless::* resource and its Events into plain resources: AWS::Lambda::Function,
EventSourceMapping, Permission, AWS::Events::Rule, AWS::ApiGateway::RestApi with its OpenAPI body, Stage, usage plan
and API key, and so on. The local stack and the template tests read that result instead of re-implementing SAM.

`translate` does both steps without AWS:
- language extensions: `Fn::If` is resolved where every parameter its condition needs is known; a condition that
  depends on a parameter the caller has no value for yet (`unknown`: the local stack generates the pseudonymization
  key while it provisions) keeps its `Fn::If`, which the local resolver evaluates later, as CloudFormation would;
- packaging (what `sam package` does): a local CodeUri / ContentUri becomes an S3 location in a stand-in bucket
  (LOCAL_ARTIFACTS_BUCKET), and `Translation.local_folder` maps the translated Code / Content back to the folder;
- the SAM transform itself, with an empty managed-policy map (the translator asks IAM for AWS managed policy ARNs
  only when a template names one by its short name; sklambda's templates name none).

Results are cached per process (keyed by the template's text and the inputs), so the stack and the tests pay for the
translation once per set of parameter values: about 0.15 s for template.yaml, plus about 0.4 s to import
aws-sam-translator (boto3 already imported); a cached call costs about 10 ms (a fresh copy of the result).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklambda_infra.template import NO_VALUE, Pseudo, Resolver, TemplateError, parameter_values

LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SERVERLESS_TRANSFORM = "AWS::Serverless-2016-10-31"
# The bucket packaged artifacts are said to be in; nothing is uploaded, the keys name local folders.
LOCAL_ARTIFACTS_BUCKET = "sklambda-local-artifacts"
# SAM CLI's default when a Zip function has no CodeUri (samcli SamFunctionProvider.DEFAULT_CODEURI).
DEFAULT_CODE_URI = "."
# Where each packageable local path sits: resource type -> property.
_PACKAGEABLE = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
_GLOBALS_KEY = "Globals/Function"
_NO_VALUE_REF = {"Ref": "AWS::NoValue"}

# samtranslator warns once per translation about feature toggles it has no configuration for: noise locally.
logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Translation:
    """A translated template and the local folders behind its packaged code.

    `template` is CloudFormation (no AWS::Serverless::* resource, no Globals) with its Parameters, Conditions and the
    intrinsics SAM leaves in place; `artifacts` maps the S3 key of each packaged local folder to that folder (the key
    is the logical id of the resource in the source template, or "Globals/Function" for a CodeUri in Globals).
    """

    template: dict[str, Any]
    artifacts: Mapping[str, Path]

    def local_folder(self, location: Any) -> Path | None:
        """The local folder behind a translated `Code` / `Content` ({"S3Bucket", "S3Key"}), or None when the location
        is not one this translation packaged (a real S3 object, inline code, an image)."""
        if not isinstance(location, Mapping) or location.get("S3Bucket") != LOCAL_ARTIFACTS_BUCKET:
            return None
        return self.artifacts.get(str(location.get("S3Key")))


def transforms(template: Mapping[str, Any]) -> list[str]:
    """The template's Transform section as a list of names."""
    declared = template.get("Transform") or []
    return [declared] if isinstance(declared, str) else [str(t) for t in declared]


def resolve_language_extensions(
    template: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    *,
    unknown: Iterable[str] = (),
    pseudo: Pseudo | None = None,
) -> dict[str, Any]:
    """A copy of `template` with each decidable `Fn::If` replaced by its chosen branch, as AWS::LanguageExtensions does.

    `parameters` override the Defaults; a condition is decidable when it needs no parameter named in `unknown` and no
    resource (Ref / GetAtt): otherwise its `Fn::If` is kept. A chosen `Ref: AWS::NoValue` removes the key or list item.
    Raises TemplateError for an unknown parameter or a value outside AllowedValues / AllowedPattern.
    """
    unknown = set(unknown)
    known = {k: v for k, v in (parameters or {}).items() if k not in unknown}
    declared = {k: v for k, v in (template.get("Parameters") or {}).items() if k not in unknown}
    # A resolver that cannot see the unknown parameters: a condition that needs one raises, and stays unresolved.
    resolver = Resolver({**template, "Parameters": declared}, parameters=known, pseudo=pseudo)

    def decided(name: Any) -> bool | None:
        try:
            return resolver.condition(str(name))
        except TemplateError:
            return None

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Fn::If"} and isinstance(node["Fn::If"], list) and len(node["Fn::If"]) == 3:
                name, if_true, if_false = node["Fn::If"]
                choice = decided(name)
                if choice is not None:
                    return walk(if_true if choice else if_false)
                # Undecided: CloudFormation chooses later; a branch that is AWS::NoValue must stay one.
                return {"Fn::If": [name, *(b if b == _NO_VALUE_REF else walk(b) for b in (if_true, if_false))]}
            if node == _NO_VALUE_REF:
                return NO_VALUE
            walked = {key: walk(item) for key, item in node.items()}
            return {key: item for key, item in walked.items() if item is not NO_VALUE}
        if isinstance(node, list):
            return [item for item in map(walk, node) if item is not NO_VALUE]
        return node

    sections = {key: value for key, value in template.items() if key not in ("Parameters", "Conditions")}
    return {**copy.deepcopy(dict(template)), **walk(sections)}


def package_local_artifacts(template: Mapping[str, Any], project_root: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """What `sam package` does, without uploading: each local CodeUri / ContentUri (a folder relative to
    `project_root`) becomes `s3://LOCAL_ARTIFACTS_BUCKET/<key>`. Returns the new template and key -> folder.

    A Zip function with no code at all gets CodeUri "." (SAM CLI's default); S3 locations are left alone."""
    packaged = copy.deepcopy(dict(template))
    artifacts: dict[str, Path] = {}

    def package(properties: dict[str, Any], prop: str, key: str) -> None:
        value = properties.get(prop)
        if isinstance(value, str) and not value.startswith("s3://"):
            artifacts[key] = (project_root / value).resolve()
            properties[prop] = f"s3://{LOCAL_ARTIFACTS_BUCKET}/{key}"

    function_globals = (packaged.get("Globals") or {}).get("Function")
    if isinstance(function_globals, dict):
        package(function_globals, "CodeUri", _GLOBALS_KEY)
    for logical_id, resource in (packaged.get("Resources") or {}).items():
        kind = (resource or {}).get("Type")
        if kind not in _PACKAGEABLE:
            continue
        properties = resource.setdefault("Properties", {})
        prop = _PACKAGEABLE[kind]
        if (
            kind == "AWS::Serverless::Function"
            and properties.get("PackageType", "Zip") == "Zip"
            and not {"CodeUri", "InlineCode", "ImageUri"} & set(properties)
            and not (isinstance(function_globals, dict) and "CodeUri" in function_globals)
        ):
            properties["CodeUri"] = DEFAULT_CODE_URI
        package(properties, prop, logical_id)
    return packaged, artifacts


def translate(
    template: Mapping[str, Any],
    *,
    project_root: str | Path = ".",
    parameters: Mapping[str, Any] | None = None,
    unknown: Iterable[str] = (),
    pseudo: Pseudo | None = None,
) -> Translation:
    """The CloudFormation `template` deploys as, after AWS::LanguageExtensions (when declared) and the SAM transform
    (when declared); a template without either comes back unchanged. `parameters` override Defaults; `unknown` names
    parameters whose value is not known yet (see resolve_language_extensions); local code paths are relative to
    `project_root`. Each call returns a fresh copy (callers may change it); the work is cached per process.

    Raises TemplateError with SAM's own messages when SAM rejects the template, or for bad parameter values.
    """
    pseudo = pseudo or Pseudo()
    text, artifacts = _translated(
        json.dumps(template),  # in the template's order: the local stack breaks dependency ties by it
        str(Path(project_root).resolve()),
        json.dumps(dict(parameters or {}), sort_keys=True),
        tuple(sorted(set(unknown))),
        pseudo,
    )
    return Translation(json.loads(text), {key: Path(folder) for key, folder in artifacts})


@functools.lru_cache(maxsize=32)
def _translated(
    template_json: str, project_root: str, parameters_json: str, unknown: tuple[str, ...], pseudo: Pseudo
) -> tuple[str, tuple[tuple[str, str], ...]]:
    template = json.loads(template_json)
    overrides = json.loads(parameters_json)
    names = transforms(template)
    values = parameter_values(template, overrides)  # validates the overrides
    if LANGUAGE_EXTENSIONS in names:
        template = resolve_language_extensions(template, overrides, unknown=unknown, pseudo=pseudo)
        names.remove(LANGUAGE_EXTENSIONS)
        template["Transform"] = names[0] if len(names) == 1 else names
        if not names:
            del template["Transform"]
    if SERVERLESS_TRANSFORM not in names:
        return json.dumps(template), ()
    if names != [SERVERLESS_TRANSFORM]:
        raise TemplateError(f"cannot apply transforms other than SAM's and language extensions locally: {names}")
    template, artifacts = package_local_artifacts(template, Path(project_root))
    known = {name: value for name, value in values.items() if name not in unknown}
    source_order = list(template["Resources"])  # before SAM (it reorders keys the way Python 2.7 hashed them)
    translated = _sam_transform(template, known, pseudo)
    # The template's own order first, then what SAM generated: the local stack breaks dependency ties by order.
    resources = translated["Resources"]
    order = [name for name in source_order if name in resources]
    order += [name for name in resources if name not in source_order]
    translated["Resources"] = {name: resources[name] for name in order}
    return json.dumps(translated), tuple((key, str(folder)) for key, folder in artifacts.items())


def _sam_transform(template: dict[str, Any], parameters: dict[str, Any], pseudo: Pseudo) -> dict[str, Any]:
    """samtranslator.translator.transform.transform, with the region given instead of read from the environment."""
    import boto3
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException, InvalidTemplateException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    session = boto3.session.Session(region_name=pseudo.region)
    to_py27_compatible_template(template, parameters)
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator({}, Parser(), boto_session=session, metrics=metrics)
    try:
        translated = translator.translate(template, parameter_values=parameters, get_managed_policy_map=dict)
    except InvalidDocumentException as e:
        raise TemplateError("SAM rejects the template: " + "; ".join(c.message for c in e.causes)) from None
    except InvalidTemplateException as e:
        raise TemplateError(f"SAM rejects the template: {e.message}") from None
    finally:
        metrics.publish()  # to the dummy publisher: nothing leaves the process
    return undo_mark_unicode_str_in_template(translated)
