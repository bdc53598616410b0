"""Validates the SATP messages built independently in Python
(adapters/tests/vectors/satp_session.json, made by
adapters/tests/vectors/generate_satp_session.py) against the schemas the
gateway publishes in openapi/lockgate.json, and checks that the schemas
refuse what the parser refuses. Called by scripts/check-satp-schemas."""

import copy
import json
import sys

import jsonschema
import referencing
import referencing.jsonschema

document = json.load(open("openapi/lockgate.json"))
session = json.load(open("adapters/tests/vectors/satp_session.json"))
registry = referencing.Registry().with_resource(
    "urn:lockgate:openapi",
    referencing.Resource.from_contents(
        {"components": document["components"]},
        default_specification=referencing.jsonschema.DRAFT202012,
    ),
)


def errors(name, instance):
    schema = {"$ref": "urn:lockgate:openapi#/components/schemas/" + name}
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return list(validator.iter_errors(instance))


failures = []
for entry in session["messages"]:
    for name, instance in (("Envelope", entry["envelope"]), ("Message", entry["message"])):
        for error in errors(name, instance):
            failures.append(f"{name} {entry['message']['messageType']}: {error.message}")

first = session["messages"][0]["message"]
refused = {
    "an unknown field": dict(first, unexpected=1),
    "an unknown messageType": dict(first, messageType="urn:ietf:params:satp:core:msgtype:no-such-msg"),
    "a missing sessionId": {k: v for k, v in first.items() if k != "sessionId"},
}
too_big = copy.deepcopy(first)
too_big["gatewayAndNetworkCapabilities"]["networkLockExpirationTime"] = 2**53
refused["an integer beyond 2^53-1"] = too_big
for what, instance in refused.items():
    if not errors("Message", instance):
        failures.append(f"the Message schema accepts {what}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"SATP schemas: {len(session['messages'])} messages valid, {len(refused)} bad ones refused")
