#!/usr/bin/env python3
"""Turns docs/openapi.yaml into the C++ source of api::OpenApiJson().

    openapi_to_cc.py DESCRIPTION.yaml OUTPUT.cc

The YAML is read as JSON sees it: plain scalars are strings, numbers, null,
true or false only (no YAML 1.1 dates or yes/no booleans), and a key given
twice in one mapping is an error. The document must be OpenAPI 3.1. Exits 1,
naming the file and what is wrong, on any error; the output is then left
untouched.
"""
import json
import os
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("openapi_to_cc.py: PyYAML is missing; install Debian's python3-yaml (scripts/deps does)")


class JsonLikeLoader(yaml.SafeLoader):
    """SafeLoader with JSON's scalars and without silently repeated keys."""


JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
JsonLikeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "the key %r is given twice" % (key,), key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


JsonLikeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)

DELIMITER = "stowage_openapi"


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: openapi_to_cc.py DESCRIPTION.yaml OUTPUT.cc")
    source, output = argv[1], argv[2]
    try:
        with open(source, encoding="utf-8") as f:
            document = yaml.load(f, Loader=JsonLikeLoader)
    except (OSError, yaml.YAMLError) as e:
        sys.exit("%s: %s" % (source, e))
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1."):
        sys.exit("%s: not an OpenAPI 3.1 document (its 'openapi' key must be 3.1.x)" % source)
    try:
        text = json.dumps(document, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        sys.exit("%s: has a value JSON cannot hold: %s" % (source, e))
    if ")" + DELIMITER + '"' in text:
        sys.exit("%s: holds the text )%s\" that ends the generated raw string" % (source, DELIMITER))
    code = (
        "// Generated from docs/openapi.yaml by server/api/openapi_to_cc.py at build time; do not edit.\n"
        '#include "api/openapi.h"\n\n'
        "namespace stowage::api {\n"
        "namespace {\n"
        'constexpr char kOpenApiJson[] = R"%s(%s)%s";\n'
        "}  // namespace\n\n"
        "std::string_view OpenApiJson() noexcept { return {kOpenApiJson, sizeof kOpenApiJson - 1}; }\n\n"
        "}  // namespace stowage::api\n" % (DELIMITER, text, DELIMITER))
    try:
        with open(output + ".tmp", "w", encoding="utf-8") as f:
            f.write(code)
        os.replace(output + ".tmp", output)
    except OSError as e:
        sys.exit("%s: cannot be written: %s" % (output, e))


if __name__ == "__main__":
    main(sys.argv)
