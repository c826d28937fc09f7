-- The disclosure log in its own SQLite file: who accessed which patient's
-- data, when, why and through which tool. Tenants live in the main file,
-- so there is no foreign key (the call pipeline resolved the tenant before
-- any disclosure); every row still carries its tenant and every statement
-- filters on it.
CREATE TABLE health_disclosures (
    tenant_id   TEXT NOT NULL,
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    roles       TEXT NOT NULL,
    patient     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    action      TEXT NOT NULL,
    types       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    break_glass INTEGER NOT NULL CHECK (break_glass IN (0, 1)),
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'partial', 'denied')),
    client      TEXT NOT NULL
) STRICT;
CREATE INDEX health_disclosures_by_patient ON health_disclosures (tenant_id, patient, at);
