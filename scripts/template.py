"""template.yaml as plain data: CloudFormation's intrinsic tags (!Ref X, !Sub …) become
{"Ref": X}-style objects, and each function carries the template's `Globals` as SAM
merges them (so a reader sees what is deployed). `python scripts/template.py` prints it as
JSON, for the Rust tests that check the template against the code."""

import json
import sys
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader, suffix, node):
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
        return {name: value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def _with_globals(shared, own):
    """SAM's rule: maps merge (the resource's keys win), lists add up, a resource's own
    scalar replaces the shared one."""
    if isinstance(shared, dict) and isinstance(own, dict):
        merged = dict(shared)
        for key, value in own.items():
            merged[key] = _with_globals(shared[key], value) if key in shared else value
        return merged
    if isinstance(shared, list) and isinstance(own, list):
        return shared + own
    return own


def load():
    with open(TEMPLATE, encoding="utf-8") as f:
        template = yaml.load(f, Loader=_CloudFormationLoader)
    shared = template.get("Globals", {}).get("Function", {})
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"] = _with_globals(shared, resource.get("Properties", {}))
    return template


if __name__ == "__main__":
    json.dump(load(), sys.stdout, indent=1, default=str)
