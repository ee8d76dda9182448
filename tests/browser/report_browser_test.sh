#!/usr/bin/env bash
# Loads `mtls-guard report` of the demo mesh in headless Chromium and checks the DOM its script built: cells, colours, a click that opens an explanation.
#
#   tests/browser/report_browser_test.sh MTLS_GUARD_BINARY MESH_PATH OUTPUT_DIR
#
# Exit 0 pass, 1 fail, 77 (CTest SKIP_RETURN_CODE) when /usr/bin/chromium is absent. The report,
# the dumped DOMs and a screenshot (report.png, 1280x900) stay in OUTPUT_DIR for a look.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 MTLS_GUARD_BINARY MESH_PATH OUTPUT_DIR" >&2
    exit 2
fi
binary=$1
mesh=$2
out=$3
chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
    echo "SKIP: $chromium is not installed (apt-get install chromium)"
    exit 77
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
report="$out/report.html"
rm -f "$report" "$out/dom.html" "$out/dom-click.html" "$out/report.png"

"$binary" report -f "$mesh" -o "$report"

failures=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        failures=$((failures + 1))
    fi
}

# One headless page load; the inline script has run when --dump-dom prints. A fresh profile each
# time, and a bound on the time, so a hung browser fails the test instead of the CI job.
browse() { # URL [extra flags...]
    local url=$1
    shift
    timeout 60 "$chromium" --headless=new --disable-gpu --no-sandbox --no-first-run \
        --disable-extensions --disable-background-networking --user-data-dir="$profile" \
        "$@" "$url" 2>"$out/chromium-stderr.txt"
}

body_attr() { # FILE NAME: the value of a data- attribute on <body>
    grep -o "<body[^>]*>" "$1" | head -n 1 | grep -o " $2=\"[^\"]*\"" | sed 's/.*="\(.*\)"/\1/'
}
static_count() { # VERDICT: cells of that verdict in the report as written
    grep -o "<td class=\"cell v-$1\"" "$report" | wc -l | tr -d ' '
}

browse "file://$report" --dump-dom >"$out/dom.html"
echo "body: $(grep -o '<body[^>]*>' "$out/dom.html" | head -n 1)"
check "the script ran" test "$(body_attr "$out/dom.html" data-ready)" = true
cells=$(grep -o '<td class="cell ' "$report" | wc -l | tr -d ' ')
check "data-cells ($cells cells in the page)" test "$(body_attr "$out/dom.html" data-cells)" = "$cells"
check "the demo has cells" test "$cells" -gt 0
for verdict in MTLS PLAINTEXT DEPENDS FAIL; do
    lower=$(echo "$verdict" | tr 'A-Z' 'a-z')
    check "data-$lower = $(static_count "$verdict")" \
        test "$(body_attr "$out/dom.html" "data-$lower")" = "$(static_count "$verdict")"
done
for verdict in MTLS PLAINTEXT FAIL; do
    check "the demo has $verdict cells" test "$(static_count "$verdict")" -gt 0
done
check "every cell has its legend swatch's colour" \
    test "$(body_attr "$out/dom.html" data-colours)" = consistent
check "FAIL cells are red" test "$(body_attr "$out/dom.html" data-colour-fail)" = "rgb(229, 57, 53)"
check "MTLS cells are green" test "$(body_attr "$out/dom.html" data-colour-mtls)" = "rgb(67, 160, 71)"
check "PLAINTEXT cells are grey" \
    test "$(body_attr "$out/dom.html" data-colour-plaintext)" = "rgb(158, 158, 158)"
check "no cell is open before a click" test -z "$(body_attr "$out/dom.html" data-open)"

# A click on a FAIL cell, through the page's #cell=ID handler (which calls the cell's click()).
fail_cell=$(grep -o '<td class="cell v-FAIL" id="[^"]*"' "$report" | head -n 1 | sed 's/.*id="\(.*\)"/\1/')
browse "file://$report#cell=$fail_cell" --dump-dom >"$out/dom-click.html"
check "the clicked cell $fail_cell is open" test "$(body_attr "$out/dom-click.html" data-open)" = "$fail_cell"
check "the explanation panel is shown" \
    bash -c "! grep -q '<div id=\"explanation\" hidden' '$out/dom-click.html'"
panel=$(sed -n '/<pre id="explanation-text">/,/<\/pre>/p' "$out/dom-click.html")
check "the panel holds the cell's explain text with its FAIL verdict" \
    bash -c "grep -q 'Verdict: FAIL' <<<\"\$1\" && grep -q '^Explaining ' <<<\"\${1#*>}\"" _ "$panel"

browse "file://$report" --screenshot="$out/report.png" --window-size=1280,900 \
    --hide-scrollbars >/dev/null
check "a screenshot was written" test -s "$out/report.png"

echo "report: $report; screenshot: $out/report.png"
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed; chromium's stderr: $out/chromium-stderr.txt"
    exit 1
fi
echo "all browser checks passed"
