"""The health module end to end through the binary: `plexus health import`
of the shared Synthea data and `plexus health generate`, then the tools over
MCP HTTP as a clinician with a care relationship, one without, a researcher
and an auditor, and `plexus health disclosures` from the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import _stop
from helpers import api_keys_toml, modern_call, start

CRIS = "d4519c92-d241-b2b2-7360-291d60be699e"
DR_STANTON = "87416e57-79f3-3b42-a8d3-c3aaa33bce75"  # an Encounter participant of Cris's
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "fhir"
ROLES = {DR_STANTON: "clinician", "dr-nobody": "clinician", "res-1": "researcher", "aud-1": "auditor", "root": "admin"}
KEYS = {name: "pk_" + hashlib.sha256(name.encode()).hexdigest()[:32] for name in ROLES}
TOOLS = '["get_patient_data", "search_medical_records", "get_lab_results", "create_care_summary", "break_the_glass"]'


def config(tmp_path: Path) -> Path:
    keys = api_keys_toml([(n, k, "default", ROLES[n]) for n, k in KEYS.items()])
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        f"""
[modules]
enabled = ["system", "health"]

{keys}
[roles.clinician]
tools = {TOOLS}
resources = ["fhir://*"]
[roles.researcher]
tools = {TOOLS}
[roles.auditor]
tools = ["get_patient_disclosures", "get_patient_data"]
""",
        encoding="utf-8",
    )
    return cfg


def run(plexus_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([plexus_bin, *args], capture_output=True, text=True, timeout=300, check=False)


def call(url: str, who: str, tool: str, args: dict) -> dict:
    status, reply = modern_call(url, tool, args, key=KEYS[who], timeout=30)
    assert status == 200 and isinstance(reply, dict) and "result" in reply, reply
    return reply["result"]


def test_import_tools_and_disclosures_through_the_binary(plexus_bin: str, tmp_path: Path) -> None:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (the shared outside data sits beside the checkout)")
    os.environ.setdefault("PLEXUS_MASTER_KEY", hashlib.sha256(b"e2e health master key").hexdigest())
    cfg, data = config(tmp_path), tmp_path / "data"
    common = ["--config", str(cfg), "--data-dir", str(data)]
    imported = run(plexus_bin, "health", "import", *common, str(DATA / "synthea-r4"), str(DATA / "bulk-ndjson-10-patients"))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "4786 resources" in imported.stdout and "34 resources were given more than once" in imported.stdout and "0 rejected" in imported.stdout, imported.stdout
    again = run(plexus_bin, "health", "import", *common, str(DATA / "synthea-r4"))
    assert again.returncode == 0 and "0 created, 0 updated, 1000 unchanged" in again.stdout, again.stdout
    generated = run(plexus_bin, "health", "generate", *common, "--patients", "5", "--seed", "7")
    assert generated.returncode == 0 and "0 rejected" in generated.stdout, generated.stdout + generated.stderr
    bad = run(plexus_bin, "health", "import", *common, str(tmp_path / "nope.json"))
    assert bad.returncode != 0 and "does not exist" in bad.stderr, bad.stderr

    proc, port = start([plexus_bin, "serve", *common], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        mine = call(url, DR_STANTON, "get_patient_data", {"patientId": CRIS, "dataTypes": ["demographics", "allergies"]})
        sc = mine["structuredContent"]
        assert sc["data"]["demographics"][0]["name"][0]["family"] == "Rath779", sc
        assert sc["access"].startswith("treatment (care relationship: Encounter/"), sc["access"]
        denied = call(url, "dr-nobody", "get_patient_data", {"patientId": CRIS, "dataTypes": ["allergies"]})
        assert denied["isError"] and "no care relationship" in denied["content"][0]["text"]
        no_reason = call(url, "dr-nobody", "break_the_glass", {"patientId": CRIS, "reason": "x"})
        assert no_reason["isError"] and "reason" in no_reason["content"][0]["text"]
        glass = call(url, "dr-nobody", "break_the_glass", {"patientId": CRIS, "reason": "cardiac arrest, chart needed"})
        assert not glass.get("isError"), glass
        labs = call(url, "dr-nobody", "get_lab_results", {"patientId": CRIS, "code": "8310-5"})["structuredContent"]
        assert labs["access"].startswith("emergency access"), labs
        assert "38.699" in json.dumps(labs)
        research = call(url, "res-1", "get_patient_data", {"patientId": CRIS, "dataTypes": ["demographics", "encounters"]})
        text = json.dumps(research)
        assert research["structuredContent"]["deidentified"] is True
        for identifier in (CRIS, "Rath779", "Cris921"):
            assert identifier not in text, identifier
        audit = call(url, "aud-1", "get_patient_disclosures", {"patientId": CRIS})["structuredContent"]["disclosures"]
        assert any(d["break_glass"] and d["subject"] == "dr-nobody" for d in audit), audit
        assert call(url, "aud-1", "get_patient_data", {"patientId": CRIS, "dataTypes": ["allergies"]})["isError"]
    finally:
        _stop(proc)
    listed = run(plexus_bin, "health", "disclosures", *common, "--patient", CRIS)
    assert listed.returncode == 0, listed.stderr
    assert "BREAK-THE-GLASS" in listed.stdout and "dr-nobody" in listed.stdout and "denied" in listed.stdout, listed.stdout
    # The same log as FHIR AuditEvents after IHE BALP.
    balp = run(plexus_bin, "health", "disclosures", *common, "--patient", CRIS, "--format", "auditevent")
    assert balp.returncode == 0, balp.stderr
    bundle = json.loads(balp.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == len(audit) + 1, (len(events), len(audit))  # + the auditor's refused read
    assert all(e["resourceType"] == "AuditEvent" for e in events)
    reads = [e for e in events if e["action"] == "R" and e["outcome"] == "0"]
    assert reads and all(
        e["meta"]["profile"] == ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"]
        for e in reads
    )
    glass = [e for e in events if any(c["code"] == "ETREAT" for p in e.get("purposeOfEvent", []) for c in p["coding"])]
    assert glass and all(e["entity"][0]["what"]["reference"] == f"Patient/{CRIS}" for e in glass)
    assert any(e["outcome"] == "4" for e in events), "the refusals are minor failures"
