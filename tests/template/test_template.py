"""Checks of template.yaml beyond cfn-lint: least privilege, and the settings
the deploy guide promises."""

import pathlib

import pytest
import yaml

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "template.yaml"

# Actions for which IAM offers no resource-level permissions: "*" is the only
# valid Resource (AWS Service Authorization Reference).
NO_RESOURCE_SCOPING = {"cloudwatch:GetMetricData", "cloudwatch:ListMetrics", "lambda:GetAccountSettings"}


class Loader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !Sub, ...) as tagged data."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Fn::" + tag_suffix if tag_suffix != "Ref" else "Ref": value}


Loader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template():
    return yaml.load(TEMPLATE.read_text(), Loader=Loader)


def statements(template):
    """Every IAM statement in the template, with where it is."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if "Effect" in node and "Action" in node:
                found.append((where, node))
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(template["Resources"], "Resources")
    return found


def as_list(x):
    return x if isinstance(x, list) else [x]


def test_there_are_statements_to_check(template):
    assert len(statements(template)) >= 6


def test_no_statement_grants_a_wildcard_action(template):
    for where, st in statements(template):
        for action in as_list(st["Action"]):
            assert isinstance(action, str) and "*" not in action, f"{where}: wildcard action {action!r}"


def test_resource_star_only_where_the_action_cannot_be_scoped(template):
    for where, st in statements(template):
        if st.get("Effect") != "Allow" or "Principal" in st:
            continue
        resources = as_list(st.get("Resource"))
        if "*" in resources:
            unscopable = set(as_list(st["Action"])) - NO_RESOURCE_SCOPING
            assert not unscopable, f"{where}: Resource '*' for scopable actions {sorted(unscopable)}"


def test_pings_are_limited_to_opted_in_functions(template):
    controller = template["Resources"]["ControllerFunction"]["Properties"]
    choice = controller["Policies"][0]["Statement"][0]["Fn::If"]
    listed, tagged = choice[1], choice[2]
    assert "lambda:InvokeFunction" in listed["Action"] and "lambda:InvokeFunction" in tagged["Action"]
    assert tagged["Condition"]["StringEquals"]["aws:ResourceTag/forewarm"] == "on"


def test_schedule_table_and_function_settings(template):
    r = template["Resources"]
    assert r["TickSchedule"]["Properties"]["FlexibleTimeWindow"]["Mode"] == "OFF"
    assert r["TickSchedule"]["Properties"]["Target"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert "DeadLetterConfig" in r["TickSchedule"]["Properties"]["Target"]
    table = r["StateTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    fn = r["ControllerFunction"]
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Properties"]["Runtime"] == "provided.al2023" and fn["Properties"]["Architectures"] == ["arm64"]
    # The timeout must outlast the longest hold a shim accepts (10 s).
    assert fn["Properties"]["Timeout"] > 10
    assert "ControllerErrorsAlarm" in r and "Dashboard" in r


def test_the_controller_cannot_overwrite_items(template):
    # The tick scans, reads each due function's state (GetItem) and writes
    # only conditionally; PutItem, which overwrites, belongs to the operator
    # commands' own policy.
    controller = template["Resources"]["ControllerFunction"]["Properties"]
    granted = set()
    for st in controller["Policies"][0]["Statement"]:
        for node in st.get("Fn::If", [None, st, st])[1:]:
            granted.update(as_list(node.get("Action", [])))
    assert {"dynamodb:UpdateItem", "dynamodb:Scan", "dynamodb:GetItem"} <= granted
    assert "dynamodb:PutItem" not in granted
    operator = template["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= set(operator["Action"])
