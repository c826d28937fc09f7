-- The content a learner has completed, read by every content
-- recommendation (`get_personalized_content`, `get_learning_recommendations`)
-- with the learner's mastery: through `learning_events_by_user` that read
-- went over every event of the learner, answers included, and looked up
-- each one's row for its kind, so it grew with the learner's history (a
-- few hundred answers per learner after a minute of the learning
-- benchmark). This index holds completions only, with the content they
-- completed: the read is a range of it and touches no row, and an answer,
-- not being a completion, writes nothing to it. The same text on both
-- databases.
CREATE INDEX learning_events_completed ON learning_events (tenant_id, user_id, content_id)
    WHERE kind = 'completed';
