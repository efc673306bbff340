-- 0005: track statistics for ListTracks and GetTrack (issue 16): the average confidence of a
-- track's objects and the presentation times of its first and last frames. The columns are
-- appended (CREATE OR REPLACE VIEW keeps the existing ones in place), still derived from the
-- objects, never stored twice. Never edit this file once landed; add 0006_... instead.
CREATE OR REPLACE VIEW track_summaries AS
SELECT t.id,
       t.source_id,
       t.create_time,
       count(o.id) AS object_count,
       min(o.frame_index) AS first_frame_index,
       max(o.frame_index) AS last_frame_index,
       mode() WITHIN GROUP (ORDER BY o.category_id) AS category_id,
       avg(o.confidence) AS average_confidence,
       -- The times of the first and last frames themselves (NULL for a track without objects).
       (array_agg(f.time_offset ORDER BY o.frame_index) FILTER (WHERE o.id IS NOT NULL))[1]
           AS first_frame_time,
       (array_agg(f.time_offset ORDER BY o.frame_index DESC) FILTER (WHERE o.id IS NOT NULL))[1]
           AS last_frame_time
FROM tracks t
LEFT JOIN objects o ON o.track_id = t.id
LEFT JOIN frames f ON f.source_id = o.source_id AND f.frame_index = o.frame_index
GROUP BY t.id, t.source_id, t.create_time;
