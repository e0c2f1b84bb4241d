-- Claim skips the rows of users already at their cap of rows in work
-- (dispatch fairness). The claim index gains user_id so that skipping stays
-- within the index; outbox_busy counts each user's processing rows.
DROP INDEX outbox_claim;
CREATE INDEX outbox_claim ON outbox (created_at, id, status, available_at, lease_until, user_id)
	WHERE status IN ('pending', 'processing');
CREATE INDEX outbox_busy ON outbox (user_id, lease_until) WHERE status = 'processing';
