-- The hold of DESIGN §1 (`u`) becomes a count that outlives confirmations. Until now it was the
-- gap between `last_confirmed` and a lower `observed` quantity, and a push the channel confirmed
-- closed that gap although the sales behind it were still unbooked: the next push could undo
-- them. From here on, a read (or a quantity the channel announces) becomes the new confirmed
-- baseline, `observed`/`observed_at` keep only what the channel showed when last read, and
-- `held_units` counts the channel's sales made before `confirmed_at` that no ingested order
-- explained then; the channel's orders booked after `confirmed_at` explain them first.
-- `held_since` is when the oldest of them was first seen (the hold time counts from there).
-- Never edit once applied.
ALTER TABLE listings ADD COLUMN held_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE listings ADD COLUMN held_since BIGINT;
-- Holds in progress carry over into the new form.
UPDATE listings SET held_units = last_confirmed - observed, held_since = observed_at,
    last_confirmed = observed, confirmed_at = observed_at
 WHERE observed IS NOT NULL AND last_confirmed IS NOT NULL AND observed < last_confirmed;
