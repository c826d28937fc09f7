-- Indexes that also give the order the reads ask for: without them the
-- SQLite planner preferred the primary key (tenant_id, kind, id) to avoid a
-- sort, and read every resource of a type to find one patient's.
DROP INDEX health_resources_by_patient;
CREATE INDEX health_resources_by_patient ON health_resources (tenant_id, patient, kind, id);
DROP INDEX health_search_by_value;
CREATE INDEX health_search_by_value ON health_search (tenant_id, param, code, kind, id);
