#!/usr/bin/env bash
# Writes the generated part of docs/configuration.md (every command's --help) from the mtls-guard binary; --check only compares.
#
#   tests/docs/gen_configuration_md.sh build/mtls-guard docs/configuration.md           # regenerate
#   tests/docs/gen_configuration_md.sh --check build/mtls-guard docs/configuration.md   # exit 1 with a diff if stale
#
# The generated part lies between the BEGIN and END marker lines below; everything outside them is
# hand-written and kept as it is. The commands are those `mtls-guard --help` lists under
# "Subcommands:", in its order, so a new command appears without editing this script.
set -euo pipefail

begin_marker='<!-- BEGIN GENERATED: tests/docs/gen_configuration_md.sh (every command'"'"'s --help); do not edit by hand -->'
end_marker='<!-- END GENERATED -->'

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
if [ $# -ne 2 ]; then
    echo "usage: $0 [--check] MTLS_GUARD_BINARY docs/configuration.md" >&2
    exit 2
fi
binary=$1
doc=$2
[ -x "$binary" ] || { echo "$0: no executable mtls-guard at '$binary'" >&2; exit 2; }
[ -f "$doc" ] || { echo "$0: no file '$doc'" >&2; exit 2; }

# argv[0] is set to plain `mtls-guard`, since CLI11 prints it in the usage line.
help_of() { (exec -a mtls-guard "$binary" "$@" --help); }

top_help=$(help_of)
commands=$(printf '%s\n' "$top_help" | awk '
    /^Subcommands:/ { in_list = 1; next }
    in_list && /^[^ ]/ { in_list = 0 }
    in_list && NF > 0 { print $1 }')
[ -n "$commands" ] || { echo "$0: found no subcommands in \`mtls-guard --help\`" >&2; exit 2; }

generated=$(mktemp)
spliced=$(mktemp)
trap 'rm -f "$generated" "$spliced"' EXIT
{
    echo "$begin_marker"
    echo
    echo '### `mtls-guard --help`'
    echo
    echo '```text'
    printf '%s\n' "$top_help"
    echo '```'
    for command in $commands; do
        echo
        echo "### \`mtls-guard $command\`"
        echo
        echo '```text'
        text=$(help_of "$command") # $(...) drops the trailing blank line
        printf '%s\n' "$text"
        echo '```'
    done
    echo
    echo "$end_marker"
} >"$generated"

# The document with the lines between (and including) the markers replaced by the new block.
awk -v begin="$begin_marker" -v end="$end_marker" -v block="$generated" '
    $0 == begin { found_begin++; skipping = 1; while ((getline line < block) > 0) print line; next }
    $0 == end   { found_end++; skipping = 0; next }
    !skipping   { print }
    END { if (found_begin != 1 || found_end != 1 || skipping) exit 3 }' "$doc" >"$spliced" || {
    echo "$0: $doc must hold exactly one BEGIN and one END marker line:" >&2
    echo "$begin_marker" >&2
    echo "$end_marker" >&2
    exit 2
}

if [ "$check" = 1 ]; then
    if ! diff -u --label "$doc (committed)" --label "$doc (from $binary --help)" "$doc" "$spliced"; then
        echo >&2
        echo "$doc is stale: the --help of $binary differs from it (diff above)." >&2
        echo "Regenerate it with:" >&2
        echo "    $0 $binary $doc" >&2
        echo "(from the repository root, for the default build: tests/docs/gen_configuration_md.sh build/mtls-guard docs/configuration.md)" >&2
        exit 1
    fi
    echo "$doc matches the --help of every command ($(echo $commands | tr ' ' ','))"
    exit 0
fi

if cmp -s "$doc" "$spliced"; then
    echo "$doc is up to date"
else
    cat "$spliced" >"$doc"
    echo "$doc regenerated"
fi
