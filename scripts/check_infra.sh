#!/usr/bin/env bash
# Offline validation of the Bicep under infra/ (no Azure, no Bicep CLI, no network).
#
# Prerequisites (installed by the caller, this script installs nothing):
#   pip install "tree-sitter==0.26.1" "tree-sitter-bicep==1.1.0" "checkov==3.3.30"
# checkov 3.3.30 pins pycep-parser==0.5.1 (its Bicep parser) and packaging<24,
# which conflicts with pytest>=9 (needs packaging>=24): pip then warns, or
# downgrades one of them. checkov 3.3.30 was also verified to run this script
# with packaging 26.4 despite the warning. Cleanest: give checkov its own venv
# and point CHECKOV / CHECKOV_PYTHON at it:
#   python3.11 -m venv /tmp/checkov-venv && /tmp/checkov-venv/bin/pip install "checkov==3.3.30"
#   CHECKOV=/tmp/checkov-venv/bin/checkov CHECKOV_PYTHON=/tmp/checkov-venv/bin/python bash scripts/check_infra.sh
# Verified with Python 3.11.7, tree-sitter 0.26.1, tree-sitter-bicep 1.1.0,
# checkov 3.3.30 (pycep-parser 0.5.1).
#
# Steps, each one fatal:
#   1. tree-sitter-bicep parses every infra/**/*.bicep without an error node.
#   2. checkov's own Bicep parser (pycep) parses every file. checkov silently
#      drops files it cannot parse (the summary still says parsing_errors 0 in
#      some versions), so this proves every file is really scanned. Known pycep
#      0.5.1 limits: no filtered for-loops `[for x in xs: if (c) {...}]`, no
#      lambdas / user-defined functions / `.?` / `??`, and at most 4
#      consecutive comment lines inside an object.
#   3. every `checkov:skip=` comment carries a written reason.
#   4. `checkov --framework bicep --skip-download` reports 0 failed checks and
#      0 parsing errors; every file it parsed is listed.
#   5. every resource type@apiVersion, property path (exact casing), literal
#      enum value, read-only and required property, and every property path
#      read from a resource, is checked against
#      Microsoft's ARM type definitions (Azure/bicep-types-az `generated/`),
#      read in place from CHANNEL_BICEP_TYPES / CHANNEL_REFERENCE_DATA (default
#      ../shared/reference-data beside the checkout): `python -m
#      devtools.bicep_typecheck`, see docs/reference-data.md. Module
#      calls are checked against the module files (params, outputs).
#
# Env: PYTHON (tree-sitter interpreter, default python3), CHECKOV (default
# checkov), CHECKOV_PYTHON (interpreter that can import checkov, default
# $PYTHON), INFRA_DIR (default infra).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
CHECKOV="${CHECKOV:-checkov}"
CHECKOV_PYTHON="${CHECKOV_PYTHON:-$PYTHON}"
INFRA_DIR="${INFRA_DIR:-infra}"

fail=0
mapfile -t FILES < <(find "$INFRA_DIR" -name '*.bicep' -type f | LC_ALL=C sort)
if [ "${#FILES[@]}" -eq 0 ]; then
  echo "FAIL: no .bicep files under $INFRA_DIR" >&2
  exit 1
fi
echo "== ${#FILES[@]} Bicep files under $INFRA_DIR"

echo "== [1/5] tree-sitter-bicep syntax check"
if ! "$PYTHON" - "${FILES[@]}" <<'PY'
import sys
import tree_sitter_bicep
from tree_sitter import Language, Parser

parser = Parser(Language(tree_sitter_bicep.language()))
bad = 0

def first_error(node):
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = first_error(child)
            if found is not None:
                return found
    return None

for path in sys.argv[1:]:
    tree = parser.parse(open(path, "rb").read())
    if tree.root_node.has_error:
        bad += 1
        node = first_error(tree.root_node) or tree.root_node
        row, col = node.start_point
        print(f"  FAIL {path}:{row + 1}:{col + 1} syntax error near {node.type}")
    else:
        print(f"  ok   {path}")
print(f"  tree-sitter: {len(sys.argv) - 1 - bad} parsed, {bad} with errors")
sys.exit(1 if bad else 0)
PY
then fail=1; fi

echo "== [2/5] checkov's Bicep parser (pycep) reads every file"
if ! "$CHECKOV_PYTHON" - "${FILES[@]}" <<'PY'
import sys
from pathlib import Path

import pycep
from checkov.bicep.parser import Parser

bad = 0
for path in sys.argv[1:]:
    template, _ = Parser().parse(Path(path))
    if not template:
        bad += 1
        # Re-parse without checkov's exception swallowing to show why.
        try:
            pycep.BicepParser().parse(text=Path(path).read_text())
            reason = "empty template"
        except Exception as exc:  # noqa: BLE001 - report any parser error
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        print(f"  FAIL {path}: {reason}")
        continue
    counts = {k: len(template.get(k) or {}) for k in ("parameters", "resources", "modules", "outputs")}
    print(f"  ok   {path} ({', '.join(f'{v} {k}' for k, v in counts.items())})")
print(f"  pycep: {len(sys.argv) - 1 - bad} parsed, {bad} unreadable (checkov would skip them silently)")
sys.exit(1 if bad else 0)
PY
then fail=1; fi

echo "== [3/5] every checkov skip is justified"
skip_total=$(grep -rhoE 'checkov:skip=[^[:space:]]*' "$INFRA_DIR" --include='*.bicep' | wc -l)
unjustified=$(grep -rnE 'checkov:skip=' "$INFRA_DIR" --include='*.bicep' \
  | grep -vE '//[[:space:]]*checkov:skip=CKV2?_[A-Z]+_[0-9]+:[^[:space:]].{14,}' || true)
if [ -n "$unjustified" ]; then
  echo "  FAIL skip comments without a reason (use //checkov:skip=CKV_X_N:reason):"
  echo "$unjustified" | sed 's/^/    /'
  fail=1
else
  echo "  ok   $skip_total inline skip comments, all with a reason"
fi

echo "== [4/5] checkov (bicep framework, offline)"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
set +e
"$CHECKOV" -d "$INFRA_DIR" --framework bicep --skip-download -o json >"$report" 2>/dev/null
ck_rc=$?
set -e
if ! "$PYTHON" - "$report" "$ck_rc" "$INFRA_DIR" "${FILES[@]}" <<'PY'
import json
import os
import sys

report, rc, infra, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
try:
    data = json.load(open(report))
except ValueError:
    print(f"  FAIL checkov produced no JSON (exit {rc}):")
    print(open(report).read()[-2000:])
    sys.exit(1)
if isinstance(data, list):
    data = next((d for d in data if d.get("check_type") == "bicep"), data[0] if data else {})
summary = data.get("summary") or {}
results = data.get("results") or {}
passed = summary.get("passed", 0)
failed = summary.get("failed", 0)
skipped = summary.get("skipped", 0)
parsing = summary.get("parsing_errors", 0)

for check in results.get("failed_checks", []):
    print(f"  FAILED {check['check_id']} {check['resource']} {check['file_path']}:{check['file_line_range']}")
for check in results.get("skipped_checks", []):
    reason = (check.get("check_result") or {}).get("suppress_comment", "")
    print(f"  skipped {check['check_id']} {check['resource']} ({check['file_path']}): {reason}")
for path in results.get("parsing_errors", []) or []:
    print(f"  PARSE-ERROR {path}")

with_checks = set()
for key in ("passed_checks", "failed_checks", "skipped_checks"):
    for check in results.get(key, []):
        with_checks.add(os.path.normpath(check["file_path"].lstrip("/")))
rel = [os.path.normpath(os.path.relpath(f, infra)) for f in files]
print(f"  files with at least one checkov result: {len(with_checks & set(rel))}/{len(rel)}"
      f" (the rest hold no resource type that checkov has a Bicep check for; step 2 proved they parse)")
for f in rel:
    print(f"    {'checked' if f in with_checks else 'parsed '} {f}")
unknown = with_checks - set(rel)
print(f"  checkov summary: passed={passed} failed={failed} skipped={skipped} "
      f"parsing_errors={parsing} resources={summary.get('resource_count', '?')} version={summary.get('checkov_version', '?')}")
ok = failed == 0 and parsing == 0 and not unknown and (passed + skipped) > 0
if unknown:
    print(f"  FAIL checkov reported files outside the expected set: {sorted(unknown)}")
sys.exit(0 if ok else 1)
PY
then fail=1; fi

echo "== [5/5] ARM type definitions (offline type check)"
if ! "$PYTHON" -m devtools.bicep_typecheck "$INFRA_DIR"; then fail=1; fi

echo
if [ "$fail" -ne 0 ]; then
  echo "check_infra: FAILED"
  exit 1
fi
echo "check_infra: OK (${#FILES[@]} files parsed by tree-sitter and pycep; checkov 0 failed; ARM type check 0 findings)"
