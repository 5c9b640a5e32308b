"""template.yaml as plain data: CloudFormation's intrinsic tags (!Ref X, !Sub …) become
{"Ref": X}-style objects. `python scripts/template.py` prints it as JSON, for the Rust
tests that check the template against the code."""

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


def load():
    with open(TEMPLATE, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CloudFormationLoader)


if __name__ == "__main__":
    json.dump(load(), sys.stdout, indent=1, default=str)
