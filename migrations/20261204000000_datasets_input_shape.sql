-- The [channels, height, width] of one example for image datasets (JSON array);
-- NULL for plain feature rows and for every dataset uploaded before images.
ALTER TABLE datasets ADD COLUMN input_shape TEXT;
