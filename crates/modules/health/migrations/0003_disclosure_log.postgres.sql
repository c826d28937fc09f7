-- PostgreSQL keeps the disclosure log in this database (no page-cache
-- effect to avoid there); the step exists so that versions agree.
SELECT 1;
