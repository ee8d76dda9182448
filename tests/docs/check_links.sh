#!/usr/bin/env bash
# Checks that every relative link in the repository's Markdown files names a file that exists and, for #anchors into Markdown, a heading it has.
#
#   tests/docs/check_links.sh [REPOSITORY_ROOT]
#
# Anchors are GitHub's: the heading in lower case, without punctuation other than `-` and `_`,
# spaces as `-`, and `-1`, `-2`, ... for repeated headings. Links inside code blocks and spans
# are ignored, and so are links with a scheme (https:, mailto:).
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.md')
else
    mapfile -t files < <(find . -name '*.md' -not -path './build*' -not -path './.cache/*' | sed 's|^\./||')
fi

# The anchors of a Markdown file, one a line.
anchors() {
    awk '
        /^```/ { fence = !fence; next }
        fence { next }
        /^#+ / {
            s = $0
            sub(/^#+ /, "", s)
            sub(/[ \t#]+$/, "", s)
            s = tolower(s)
            gsub(/[^a-z0-9 _-]/, "", s)
            gsub(/ /, "-", s)
            n = seen[s]++
            print (n == 0 ? s : s "-" n)
        }' "$1"
}

# The relative links of a Markdown file, one a line, outside code blocks and code spans.
links() {
    awk '
        /^```/ { fence = !fence; next }
        fence { next }
        {
            line = $0
            gsub(/`[^`]*`/, "", line)
            while (match(line, /\]\([^) \t]+\)/)) {
                link = substr(line, RSTART + 2, RLENGTH - 3)
                line = substr(line, RSTART + RLENGTH)
                if (link !~ /^[a-zA-Z][a-zA-Z0-9+.-]*:/) print link
            }
        }' "$1"
}

checked=0
broken=0
for file in "${files[@]}"; do
    dir=$(dirname "$file")
    while IFS= read -r link; do
        checked=$((checked + 1))
        path=${link%%#*}
        fragment=
        [[ $link == *"#"* ]] && fragment=${link#*#}
        if [ -z "$path" ]; then
            target=$file
        else
            target=$dir/$path
        fi
        if [ ! -e "$target" ]; then
            echo "$file: ($link): no file $target"
            broken=$((broken + 1))
            continue
        fi
        if [ -n "$fragment" ] && [[ $target == *.md ]] && ! anchors "$target" | grep -qxF -- "$fragment"; then
            echo "$file: ($link): $target has no heading with the anchor #$fragment"
            broken=$((broken + 1))
        fi
    done < <(links "$file")
done

echo "${#files[@]} Markdown files, $checked relative links, $broken broken"
[ "$broken" -eq 0 ]
