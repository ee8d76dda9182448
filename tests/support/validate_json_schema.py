#!/usr/bin/env python3
# Validates JSON documents against a JSON schema with Debian's python3-jsonschema (the SARIF test).
"""usage: validate_json_schema.py SCHEMA DOCUMENT...

Exit 0 when every document is valid; 1 with one line per error on stderr (document, JSON path,
the validator's message); 2 when the schema or a document cannot be read.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is missing: apt-get install python3-jsonschema (or ./setup.sh)",
          file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schema = load(argv[1])
    # The draft the schema's $schema names (SARIF 2.1.0: draft-04); never a silent default, which
    # would read draft-04's keywords by another draft's rules.
    validator_class = jsonschema.validators.validator_for(schema, default=None)
    if validator_class is None:
        print(f"{argv[1]}: this jsonschema does not know $schema {schema.get('$schema')!r}",
              file=sys.stderr)
        return 2
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    failed = False
    for path in argv[2:]:
        errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(map(str, e.absolute_path)))
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            print(f"{path}: {where}: {error.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
