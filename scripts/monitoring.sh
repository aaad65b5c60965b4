#!/usr/bin/env bash
# Checks the chart's alert rules with Prometheus's own tools: renders them with the chart's
# default values (scripts/render-monitoring.sh), `promtool check rules`, `promtool test rules`
# on tests/prometheus/alerts_test.yaml, and that every alert has a test where it fires and one
# where it does not, and a runbook link to a heading of docs/troubleshooting.md. The dashboard's
# queries are run on a real Prometheus by the end-to-end test monitoring::.
#
#   scripts/monitoring.sh
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
scripts/prometheus.sh >/dev/null
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
scripts/render-monitoring.sh "$TMP"
cp tests/prometheus/alerts_test.yaml "$TMP/"
promtool check rules "$TMP/rules.yaml"
promtool test rules "$TMP/alerts_test.yaml"
python3 - "$TMP/rules.yaml" "$TMP/alerts_test.yaml" docs/troubleshooting.md <<'PY'
import re, sys, yaml
rules, tests, doc = sys.argv[1:]
alerts = [r for g in yaml.safe_load(open(rules))["groups"] for r in g["rules"] if "alert" in r]
cases = [c for t in yaml.safe_load(open(tests))["tests"] for c in t.get("alert_rule_test", [])]
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", open(doc).read(), re.M)}
problems = []
for a in alerts:
    name = a["alert"]
    mine = [c for c in cases if c["alertname"] == name]
    if not any(c.get("exp_alerts") for c in mine):
        problems.append(f"{name}: no test where it fires")
    if not any(not c.get("exp_alerts") for c in mine):
        problems.append(f"{name}: no test where it does not fire")
    anchor = a.get("annotations", {}).get("runbook_url", "").partition("#")[2]
    if anchor not in anchors:
        problems.append(f"{name}: runbook anchor #{anchor} is not a heading of {doc}")
for p in problems:
    print("monitoring:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"monitoring: {len(alerts)} alerts, each tested firing and not firing, each with a runbook")
PY
