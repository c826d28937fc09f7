-- Fewer index writes per stored statement (an assessment answer is one):
-- no query reads `actor_key` (the agent filter goes through
-- `learning_xapi_related`), and the activity filter without
-- `related_activities` reads `learning_xapi_related` too, where the
-- statement's own object is the activity row with `direct` set. (SQLite
-- also rebuilds `learning_xapi_related` as one B-tree keyed by item; here
-- the table keeps its heap, key and index by item.)
DROP INDEX learning_xapi_statements_by_actor;
DROP INDEX learning_xapi_statements_by_activity;
