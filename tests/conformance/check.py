#!/usr/bin/env python3
"""Judge a conformance run by its checks.json files, not by the exit code.

usage: check.py REQUIREMENTS_YAML RESULTS_DIR

Fails (exit 1) when a required scenario (the `server:` list of the frozen
requirements file) has any FAILURE check, or never wrote a checks.json.
Not-scored scenarios are reported but do not fail the run.
"""
import glob
import json
import os
import re
import sys


def required_server_scenarios(path):
    names, section = [], None
    for line in open(path, encoding="utf-8"):
        if re.match(r"^[A-Za-z_]+:", line):
            section = line.split(":")[0]
            continue
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)\s*$", line)
        if section == "server" and m:
            names.append(m.group(1))
    return names


def main():
    req_file, results = sys.argv[1], sys.argv[2]
    required = required_server_scenarios(req_file)
    if not required:
        print(f"no required server scenarios found in {req_file}")
        return 1
    by_scenario = {}
    for f in glob.glob(os.path.join(results, "server-*", "checks.json")):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", os.path.basename(os.path.dirname(f)))
        by_scenario.setdefault(scenario, []).extend(json.load(open(f, encoding="utf-8")))
    failed, passed = [], 0
    for name in required:
        checks = by_scenario.get(name)
        if checks is None:
            failed.append(f"{name}: no checks.json (scenario did not run)")
            continue
        bad = [c for c in checks if c.get("status") == "FAILURE"]
        if bad:
            for c in bad:
                failed.append(f"{name}: {c.get('id')}: {c.get('errorMessage', '')}")
        else:
            passed += 1
        warnings = [c["id"] for c in checks if c.get("status") == "WARNING"]
        if warnings:
            print(f"  warning in {name}: {', '.join(warnings)}")
    extra = sorted(set(by_scenario) - set(required))
    for name in extra:
        n_fail = sum(1 for c in by_scenario[name] if c.get("status") == "FAILURE")
        print(f"  not scored: {name}: {'ok' if n_fail == 0 else f'{n_fail} failing check(s)'}")
    total_checks = sum(len(by_scenario.get(n, [])) for n in required)
    n_failed = len(set(x.split(":")[0] for x in failed))
    print(f"required scenarios ({os.path.basename(req_file)}, {total_checks} checks): {passed} passed, {n_failed} failed")
    # For run.sh's grand total.
    with open(os.path.join(results, "summary.txt"), "w", encoding="utf-8") as f:
        f.write(f"{passed} {n_failed}\n")
    for line in failed:
        print(f"  FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
