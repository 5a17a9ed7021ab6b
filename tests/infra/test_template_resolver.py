"""The template loader and intrinsic resolver the local stack is built on (no AWS, no servers)."""

import pytest

from sklambda_infra.template import (
    NO_VALUE,
    Pseudo,
    Resolver,
    TemplateError,
    UnresolvedReference,
    dependency_order,
    parameter_values,
    parse_template,
    references,
)

TEMPLATE = """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Retention: {Type: Number, Default: 7}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
  Email: {Type: String, Default: ""}
Mappings:
  Sizes:
    dev: {Memory: 512}
    prod: {Memory: 2048}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  HasEmail: !Not [!Equals [!Ref Email, ""]]
  ProdWithEmail: !And [!Condition IsProd, !Condition HasEmail]
  ProdOrEmail: !Or [!Condition IsProd, !Condition HasEmail]
Resources:
  Key:
    Type: AWS::KMS::Key
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      KMS: !GetAtt Key.Arn
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/shared/}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Layers: [!Ref Shared, !Ref Own]
      Environment:
        Variables:
          OVERRIDDEN: from-function
          BUCKET: !Ref Bucket
          KEY_ARN: !GetAtt Key.Arn
          STAGE: !Ref Stage
          DEBUG: true
          RETENTION: !Ref Retention
  Own:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layers/own/}
  Late:
    Type: AWS::SNS::Topic
    DependsOn: Fn
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Condition: IsProd
    Properties:
      Name: !Sub "${Fn}-errors-${Bucket.Arn}"
"""


@pytest.fixture
def template():
    return parse_template(TEMPLATE)


def test_short_tags_load_as_long_form_intrinsics():
    # GIVEN a template written with CloudFormation's short tags
    doc = parse_template(
        "Resources:\n  A:\n    Type: T\n    Properties:\n"
        "      R: !Ref X\n      G: !GetAtt B.Arn\n      D: !GetAtt C.Endpoint.Address\n"
        "      S: !Sub '${X}'\n      I: !If [C, 1, 2]\n      J: !Join [',', [a, b]]\n"
    )
    # WHEN it is loaded THEN each tag is the long form CloudFormation documents
    props = doc["Resources"]["A"]["Properties"]
    assert props["R"] == {"Ref": "X"}
    assert props["G"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["D"] == {"Fn::GetAtt": ["C", "Endpoint.Address"]}
    assert props["S"] == {"Fn::Sub": "${X}"}
    assert props["I"] == {"Fn::If": ["C", 1, 2]}
    assert props["J"] == {"Fn::Join": [",", ["a", "b"]]}


def test_template_without_resources_is_refused():
    with pytest.raises(TemplateError, match="no Resources"):
        parse_template("Parameters: {}\n")


def test_parameters_take_overrides_then_defaults(template):
    # GIVEN defaults in the template and one override
    values = parameter_values(template, {"Stage": "prod"})
    # THEN the override wins, the rest keep their defaults as CloudFormation strings, lists are split
    assert values == {"Stage": "prod", "Retention": "7", "Zones": ["a", "b", "c"], "Email": ""}


def test_parameter_outside_allowed_values_is_refused(template):
    with pytest.raises(TemplateError, match="not one of"):
        parameter_values(template, {"Stage": "qa"})


def test_unknown_parameter_override_is_refused(template):
    with pytest.raises(TemplateError, match="unknown parameter"):
        parameter_values(template, {"Stag": "prod"})


def test_parameter_without_default_needs_an_override():
    template = parse_template("Parameters:\n  Name: {Type: String}\nResources: {}\n")
    with pytest.raises(TemplateError, match="no Default"):
        parameter_values(template)
    assert parameter_values(template, {"Name": "x"}) == {"Name": "x"}


def test_conditions_evaluate_equals_not_and_or_and_nested_conditions(template):
    # GIVEN the default parameters (dev, no e-mail)
    assert Resolver(template).conditions == {
        "IsProd": False,
        "HasEmail": False,
        "ProdWithEmail": False,
        "ProdOrEmail": False,
    }
    # WHEN prod with an e-mail THEN every condition flips
    resolver = Resolver(template, parameters={"Stage": "prod", "Email": "ops@example.com"})
    assert all(resolver.conditions.values())


def test_resource_condition_decides_whether_it_exists(template):
    assert not Resolver(template).enabled("Alarm")
    assert Resolver(template, parameters={"Stage": "prod"}).enabled("Alarm")
    assert Resolver(template).enabled("Bucket")


def test_fn_if_picks_a_branch_and_no_value_removes_the_property(template):
    resolver = Resolver(template)
    value = {
        "Kept": {"Fn::If": ["IsProd", "big", "small"]},
        "Removed": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Fn::If": ["IsProd", "b", {"Ref": "AWS::NoValue"}]}, "c"],
    }
    assert resolver.resolve(value) == {"Kept": "small", "List": ["a", "c"]}
    assert resolver.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_pseudo_parameters_have_local_values(template):
    # GIVEN a local stack named "demo" in eu-west-1
    resolver = Resolver(template, pseudo=Pseudo(region="eu-west-1", stack_name="demo"))
    # THEN pseudo parameters resolve the way CloudFormation would there, with moto's account id
    sub = "${AWS::StackName}|${AWS::Region}|${AWS::AccountId}|${AWS::Partition}|${AWS::URLSuffix}"
    assert resolver.resolve({"Fn::Sub": sub}) == "demo|eu-west-1|123456789012|aws|amazonaws.com"
    assert resolver.resolve({"Ref": "AWS::StackId"}).startswith(
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/demo/"
    )


def test_ref_and_getatt_resolve_to_the_physical_ids_given(template):
    # GIVEN the physical ids the local stack created
    resolver = Resolver(
        template,
        refs={"Bucket": "demo-bucket-1a2b", "Key": "key-id"},
        attributes={("Key", "Arn"): "arn:aws:kms:us-east-1:123456789012:key/key-id", ("Bucket", "Arn"): "arn:b"},
    )
    # THEN Ref, GetAtt (both forms) and Sub use them
    assert resolver.resolve({"Ref": "Bucket"}) == "demo-bucket-1a2b"
    assert resolver.resolve({"Fn::GetAtt": ["Key", "Arn"]}).endswith(":key/key-id")
    assert resolver.resolve({"Fn::GetAtt": "Key.Arn"}).endswith(":key/key-id")
    assert (
        resolver.resolve({"Fn::Sub": "s3://${Bucket}/models (${Bucket.Arn})"}) == "s3://demo-bucket-1a2b/models (arn:b)"
    )


def test_sub_with_variables_and_escaped_literals(template):
    resolver = Resolver(template)
    value = {"Fn::Sub": ["${Greeting}, ${Stage}! ${!NotAVariable}", {"Greeting": {"Fn::Join": ["", ["he", "llo"]]}}]}
    assert resolver.resolve(value) == "hello, dev! ${NotAVariable}"


def test_join_select_split_and_find_in_map(template):
    resolver = Resolver(template, parameters={"Stage": "prod"})
    assert resolver.resolve({"Fn::Join": ["-", [{"Ref": "Stage"}, "x", 3]]}) == "prod-x-3"
    assert resolver.resolve({"Fn::Select": [1, {"Ref": "Zones"}]}) == "b"
    assert resolver.resolve({"Fn::Split": [",", "a,b"]}) == ["a", "b"]
    assert resolver.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}) == 2048


def test_unknown_reference_raises_unless_a_fallback_is_given(template):
    # GIVEN nothing has been created yet
    with pytest.raises(UnresolvedReference) as caught:
        Resolver(template).resolve({"Fn::GetAtt": ["Role", "Arn"]})
    assert (caught.value.logical_id, caught.value.attribute) == ("Role", "Arn")
    # WHEN a fallback is given THEN it supplies the value
    resolver = Resolver(template, fallback=lambda logical_id, attribute: f"placeholder:{logical_id}.{attribute}")
    assert resolver.resolve({"Fn::GetAtt": ["Role", "Arn"]}) == "placeholder:Role.Arn"


def test_unsupported_intrinsic_is_reported(template):
    with pytest.raises(TemplateError, match="Fn::ImportValue is not supported"):
        Resolver(template).resolve({"Fn::ImportValue": "shared-vpc"})


def test_references_follow_ref_getatt_and_sub_but_not_sub_variables():
    value = {
        "A": {"Ref": "Bucket"},
        "B": {"Fn::GetAtt": ["Key", "Arn"]},
        "C": {"Fn::Sub": ["${Fn}/${Local}/${Topic.Arn}/${AWS::Region}/${!Escaped}", {"Local": {"Ref": "Queue"}}]},
        "D": {"Fn::If": ["Cond", {"Ref": "Left"}, {"Ref": "Right"}]},
    }
    assert references(value) == {"Bucket", "Key", "Fn", "Topic", "AWS::Region", "Queue", "Left", "Right"}


def test_dependency_order_puts_each_resource_after_what_it_references(template):
    # WHEN the resources are ordered
    order = dependency_order(template["Resources"])
    # THEN Ref, GetAtt, Sub and DependsOn are all respected
    assert order.index("Key") < order.index("Bucket")
    assert order.index("Bucket") < order.index("Fn")
    assert order.index("Shared") < order.index("Fn") and order.index("Own") < order.index("Fn")
    assert order.index("Fn") < order.index("Late")
    assert order.index("Fn") < order.index("Alarm")
    assert sorted(order) == sorted(template["Resources"])


def test_dependency_cycle_is_reported():
    resources = {"A": {"Properties": {"X": {"Ref": "B"}}}, "B": {"Properties": {"Y": {"Fn::GetAtt": ["A", "Arn"]}}}}
    with pytest.raises(TemplateError, match="circular dependency between resources: A, B"):
        dependency_order(resources)
