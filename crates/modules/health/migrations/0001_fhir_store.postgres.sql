-- The FHIR store: resources sealed at rest, search values beside them.
CREATE TABLE health_resources (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    patient    TEXT,
    version    BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
);
CREATE INDEX health_resources_by_patient ON health_resources (tenant_id, patient, kind);

CREATE TABLE health_search (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    kind      TEXT NOT NULL,
    id        TEXT NOT NULL,
    patient   TEXT,
    param     TEXT NOT NULL,
    system    TEXT NOT NULL,
    code      TEXT NOT NULL,
    lo        TEXT,
    hi        TEXT,
    num       DOUBLE PRECISION
);
CREATE INDEX health_search_by_value ON health_search (tenant_id, param, code);
CREATE INDEX health_search_by_resource ON health_search (tenant_id, kind, id);
CREATE INDEX health_search_by_patient ON health_search (tenant_id, patient, param);

CREATE TABLE health_care (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    patient      TEXT NOT NULL,
    practitioner TEXT NOT NULL,
    via          TEXT NOT NULL,
    PRIMARY KEY (tenant_id, patient, practitioner, via)
);
CREATE INDEX health_care_by_practitioner ON health_care (tenant_id, practitioner);

CREATE TABLE health_grants (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    id         TEXT NOT NULL,
    subject    TEXT NOT NULL,
    patient    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    until      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX health_grants_by_subject ON health_grants (tenant_id, subject, patient);

CREATE TABLE health_disclosures (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    seq         BIGSERIAL PRIMARY KEY,
    at          TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    roles       TEXT NOT NULL,
    patient     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    action      TEXT NOT NULL,
    types       TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    break_glass BOOLEAN NOT NULL,
    outcome     TEXT NOT NULL,
    client      TEXT NOT NULL
);
CREATE INDEX health_disclosures_by_patient ON health_disclosures (tenant_id, patient, at);

CREATE TABLE health_keys (
    tenant_id TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id),
    blind     TEXT NOT NULL
);

-- Row-level security: a statement sees and writes its scope's tenant only.

ALTER TABLE health_resources ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_resources FORCE ROW LEVEL SECURITY;
CREATE POLICY health_resources_tenant ON health_resources
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE health_search ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_search FORCE ROW LEVEL SECURITY;
CREATE POLICY health_search_tenant ON health_search
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE health_care ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_care FORCE ROW LEVEL SECURITY;
CREATE POLICY health_care_tenant ON health_care
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE health_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY health_grants_tenant ON health_grants
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE health_disclosures ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_disclosures FORCE ROW LEVEL SECURITY;
CREATE POLICY health_disclosures_tenant ON health_disclosures
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));

ALTER TABLE health_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE health_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY health_keys_tenant ON health_keys
    USING (tenant_id = current_setting('plexus.tenant', true))
    WITH CHECK (tenant_id = current_setting('plexus.tenant', true));
