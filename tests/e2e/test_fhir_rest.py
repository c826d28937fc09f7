"""The read-only FHIR R4 REST endpoint (`/fhir/r4`) end to end: one Plexus
with the shared Synthea data imported answers FHIR reads and searches
(access-checked, de-identified for researchers, OperationOutcome errors),
and a second Plexus configured with the first as one of its
`[[health.servers]]` gets a patient's data from it through its FHIR client:
search by identifier, one search per type, `Bundle.link[next]` paging.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from conftest import _stop
from helpers import modern_call, start

CRIS = "d4519c92-d241-b2b2-7360-291d60be699e"
CRIS_SSN = ("http://hl7.org/fhir/sid/us-ssn", "999-52-6735")
DR_STANTON = "87416e57-79f3-3b42-a8d3-c3aaa33bce75"  # an Encounter participant of Cris's
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "fhir"
ROLES = {DR_STANTON: "clinician", "dr-nobody": "clinician", "res-1": "researcher", "peer": "admin", "aud-1": "auditor"}
KEYS = {name: "pk_" + hashlib.sha256(b"fhir-rest " + name.encode()).hexdigest()[:32] for name in ROLES}
FHIR_TOOLS = '["read_fhir_resource", "search_fhir_resources", "get_fhir_capabilities", "get_patient_data"]'


def config(path: Path, keys: dict[str, str], extra: str = "") -> Path:
    entries = "".join(
        f'[[auth.api_keys]]\nname = "{n}"\nsha256 = "{hashlib.sha256(k.encode()).hexdigest()}"\n'
        f'tenant = "default"\nroles = ["{ROLES[n]}"]\n'
        for n, k in keys.items()
    )
    roles = "".join(f"[roles.{r}]\ntools = {FHIR_TOOLS}\n" for r in ("clinician", "researcher", "admin", "auditor"))
    path.write_text(f'[modules]\nenabled = ["system", "health"]\n\n{entries}\n{roles}\n{extra}', encoding="utf-8")
    return path


def fhir_get(base: str, path: str, who: str | None) -> tuple[int, dict, dict]:
    """GET `base + path` as `who` (API key as a bearer token): (status, headers, JSON body)."""
    req = urllib.request.Request(base + path, headers={"Accept": "application/fhir+json"})
    if who:
        req.add_header("Authorization", f"Bearer {KEYS[who]}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        is_json = "json" in e.headers.get("content-type", "")
        return e.code, dict(e.headers), json.loads(body) if is_json else {"text": body.decode(errors="replace")}


def expected_counts() -> Counter[str]:
    """Cris's resources per type, counted from the shared files themselves."""
    counts: Counter[str] = Counter()
    for f in (DATA / "synthea-r4").glob("*.json"):
        for e in json.loads(f.read_text(encoding="utf-8"))["entry"]:
            r = e["resource"]
            ref = (r.get("subject") or r.get("patient") or {}).get("reference", "")
            if ref in (f"urn:uuid:{CRIS}", f"Patient/{CRIS}"):
                counts[r["resourceType"]] += 1
    return counts


def test_fhir_rest_endpoint_and_a_second_plexus_reading_it(plexus_bin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (the shared outside data sits beside the checkout)")
    monkeypatch.setenv("PLEXUS_MASTER_KEY", hashlib.sha256(b"e2e fhir rest master key").hexdigest())
    want = expected_counts()
    assert want["Observation"] == 16 and want["Immunization"] == 19, want  # the file as we know it

    a_cfg, a_data = config(tmp_path / "a.toml", KEYS), tmp_path / "a"
    common = ["--config", str(a_cfg), "--data-dir", str(a_data)]
    imported = subprocess.run(
        [plexus_bin, "health", "import", *common, str(DATA / "synthea-r4"), str(DATA / "bulk-ndjson-10-patients")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    a_proc, a_port = start([plexus_bin, "serve", *common], tmp_path / "a.log")
    base = f"http://127.0.0.1:{a_port}/fhir/r4"
    try:
        # The CapabilityStatement; credentials as for /mcp.
        status, headers, cap = fhir_get(base, "/metadata", DR_STANTON)
        assert status == 200 and cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1", cap
        assert headers["content-type"] == "application/fhir+json"
        assert {r["type"] for r in cap["rest"][0]["resource"]} >= {"Patient", "Observation", "Condition"}
        assert fhir_get(base, "/metadata", None)[0] == 401

        # Read: the patient's clinician sees Cris; a clinician without a care
        # relationship gets exactly what a missing resource gives.
        status, _, patient = fhir_get(base, f"/Patient/{CRIS}", DR_STANTON)
        assert status == 200 and patient["name"][0]["family"] == "Rath779", patient
        refused = fhir_get(base, f"/Patient/{CRIS}", "dr-nobody")
        missing = fhir_get(base, "/Patient/no-such-patient", DR_STANTON)
        assert refused[0] == missing[0] == 404
        assert refused[2] == missing[2] and refused[2]["resourceType"] == "OperationOutcome", refused
        assert fhir_get(base, f"/Claim/{CRIS}", DR_STANTON)[2]["issue"][0]["code"] == "not-supported"
        assert fhir_get(base, f"/Patient/{CRIS}", "aud-1")[0] == 404

        # Search with paging: five at a time, every one of Cris's observations once.
        seen, url, pages = [], f"/Observation?patient=Patient/{CRIS}&_count=5", 0
        while url:
            status, _, bundle = fhir_get(base, url, DR_STANTON)
            assert status == 200 and bundle["type"] == "searchset", bundle
            pages += 1
            seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
            assert all(e["fullUrl"].startswith(base + "/Observation/") for e in bundle.get("entry", []))
            nxt = [l["url"] for l in bundle["link"] if l["relation"] == "next"]
            url = nxt[0][len(base):] if nxt else ""
        assert len(seen) == len(set(seen)) == want["Observation"] and pages == 4, (len(seen), pages)

        # By code: the body temperature, 38.699 Cel in the file.
        status, _, temp = fhir_get(base, f"/Observation?subject={CRIS}&code=http://loinc.org|8310-5", DR_STANTON)
        assert status == 200 and len(temp["entry"]) == 1, temp
        assert temp["entry"][0]["resource"]["valueQuantity"]["value"] == pytest.approx(38.699)
        # A clinician without a care relationship finds nothing of Cris's.
        assert fhir_get(base, f"/Observation?patient={CRIS}", "dr-nobody")[2].get("entry", []) == []

        # Strict search: an unsupported parameter is refused, never ignored.
        status, _, oo = fhir_get(base, f"/Observation?patient={CRIS}&value-quantity=gt5", DR_STANTON)
        assert status == 400 and oo["issue"][0]["code"] == "not-supported", oo
        assert "value-quantity" in oo["issue"][0]["diagnostics"]
        assert fhir_get(base, "/Observation?_count=3", DR_STANTON)[0] == 400
        assert fhir_get(base, "/Patient?identifier=nosystem", DR_STANTON)[0] == 400

        # Researchers: de-identified, and no lookups by identifier.
        status, _, rb = fhir_get(base, f"/Patient?_id={CRIS}", "res-1")
        text = json.dumps(rb)
        assert status == 200 and len(rb["entry"]) == 1, rb
        for identifier in (CRIS, "Rath779", "Cris921", "999-52-6735"):
            assert identifier not in text, identifier
        ssn = f"{CRIS_SSN[0]}|{CRIS_SSN[1]}"
        assert fhir_get(base, f"/Patient?identifier={ssn}", "res-1")[0] == 403

        # A second Plexus with the first as a FHIR server for SSNs: its
        # client finds Cris by SSN and reads each type through /fhir/r4.
        monkeypatch.setenv("PEER_FHIR_TOKEN", KEYS["peer"])
        b_keys = {"peer": KEYS["peer"]}
        extra = (
            f'[[health.servers]]\nname = "hospital-a"\nbase_url = "{base}"\nsystems = ["{CRIS_SSN[0]}"]\n'
            f'bearer_env = "PEER_FHIR_TOKEN"\ntimeout_ms = 10000\ncount = 7\n'
        )
        b_cfg, b_data = config(tmp_path / "b.toml", b_keys, extra), tmp_path / "b"
        b_proc, b_port = start([plexus_bin, "serve", "--config", str(b_cfg), "--data-dir", str(b_data)], tmp_path / "b.log")
        try:
            args = {"patientId": ssn, "dataTypes": ["demographics", "observations", "immunizations", "conditions", "encounters"]}
            status, reply = modern_call(f"http://127.0.0.1:{b_port}/mcp", "get_patient_data", args, key=KEYS["peer"], timeout=60)
            assert status == 200 and "result" in reply, reply
            sc = reply["result"]["structuredContent"]
            assert sc["errors"] == [], sc["errors"]
            assert [(s["name"], s["status"]) for s in sc["sources"]] == [("hospital-a", "answered")], sc["sources"]
            data = sc["data"]
            assert data["demographics"][0]["name"][0]["family"] == "Rath779"
            for kind, key in [("Observation", "observations"), ("Immunization", "immunizations"),
                              ("Condition", "conditions"), ("Encounter", "encounters")]:
                assert len(data[key]) == want[kind], (key, len(data[key]), want[kind])
        finally:
            _stop(b_proc)
    finally:
        _stop(a_proc)

    # Hospital A disclosed what it served the peer, through which tool.
    listed = subprocess.run(
        [plexus_bin, "health", "disclosures", *common, "--patient", CRIS, "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    tools = {(d["subject"], d["tool"]) for d in json.loads(listed.stdout)}
    assert ("peer", "search_fhir_resources") in tools and (DR_STANTON, "read_fhir_resource") in tools, tools
