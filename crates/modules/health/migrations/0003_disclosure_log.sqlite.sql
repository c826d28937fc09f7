-- On SQLite the disclosure log moves to a file of its own beside this one
-- (`<stem>-health-log.db`, see LOG_MIGRATIONS): written on nearly every
-- call, in this file it emptied every reader's page cache. FhirStore::open
-- moves the rows of `health_disclosures` here over, then leaves the table
-- empty. This step marks the database so that an older build, which would
-- go on writing here, refuses to open it.
SELECT 1;
