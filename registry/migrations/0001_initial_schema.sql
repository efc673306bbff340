-- 0001: the registry's first schema. Never edit this file once landed; add 0002_... instead.
--
-- Postgres is the source of truth: Qdrant vectors and mask files are repaired from these rows.
-- Names are case-insensitively unique across category names AND synonyms: every spelling is a
-- row of category_names keyed by its case-folded form (folded in Python, the same function for
-- writes and filters, independent of the database's collation).

CREATE EXTENSION IF NOT EXISTS vector;

-- Sources (images and videos) and their frames -----------------------------------------------

CREATE TABLE sources (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('IMAGE', 'VIDEO')),
    uri             text NOT NULL DEFAULT '',
    display_name    text NOT NULL DEFAULT '',
    width           integer NOT NULL CHECK (width > 0),
    height          integer NOT NULL CHECK (height > 0),
    -- '' when unknown; known hashes are unique (partial index below).
    content_sha256  text NOT NULL DEFAULT '' CHECK (content_sha256 ~ '^([0-9a-f]{64})?$'),
    attributes      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sources_content_sha256_key ON sources (content_sha256)
    WHERE content_sha256 <> '';
CREATE INDEX sources_display_name_idx ON sources (display_name, id);
CREATE INDEX sources_create_time_idx ON sources (create_time, id);
CREATE INDEX sources_kind_idx ON sources (kind);

CREATE TABLE frames (
    source_id       uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    frame_index     bigint NOT NULL CHECK (frame_index >= 0),
    -- Presentation time from the start of the video (zero for images).
    time_offset     interval NOT NULL DEFAULT '0',
    uri             text NOT NULL DEFAULT '',
    content_sha256  text NOT NULL DEFAULT '' CHECK (content_sha256 ~ '^([0-9a-f]{64})?$'),
    PRIMARY KEY (source_id, frame_index)
);

-- Categories: one display name and any number of synonyms, all unique case-insensitively -------

CREATE TABLE categories (
    id              uuid PRIMARY KEY,
    display_name    text NOT NULL,
    create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX categories_display_name_idx ON categories (display_name, id);
CREATE INDEX categories_create_time_idx ON categories (create_time, id);

CREATE TABLE category_names (
    name_key        text PRIMARY KEY,       -- the case-folded spelling
    category_id     uuid NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    name            text NOT NULL,          -- as written
    is_display_name boolean NOT NULL,
    position        integer NOT NULL        -- 0 for the display name, synonyms from 1 in order
);
CREATE UNIQUE INDEX category_names_one_display_name ON category_names (category_id)
    WHERE is_display_name;
CREATE INDEX category_names_category_idx ON category_names (category_id, position);

-- Tracks: objects of one source followed across frames ------------------------------------------

CREATE TABLE tracks (
    id              uuid PRIMARY KEY,
    source_id       uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    create_time     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, source_id)                  -- target of objects' (track_id, source_id) key
);
CREATE INDEX tracks_source_idx ON tracks (source_id);
CREATE INDEX tracks_create_time_idx ON tracks (create_time, id);

-- Objects ----------------------------------------------------------------------------------------

CREATE TABLE objects (
    id              uuid PRIMARY KEY,
    source_id       uuid NOT NULL,
    frame_index     bigint NOT NULL,
    category_id     uuid NOT NULL REFERENCES categories (id),   -- RESTRICT: see DeleteCategory
    -- Box in pixels. NaN sorts above 'Infinity' in Postgres, so "< 'Infinity'" also refuses NaN.
    x               double precision NOT NULL CHECK (x >= 0 AND x < 'Infinity'),
    y               double precision NOT NULL CHECK (y >= 0 AND y < 'Infinity'),
    width           double precision NOT NULL CHECK (width > 0 AND width < 'Infinity'),
    height          double precision NOT NULL CHECK (height > 0 AND height < 'Infinity'),
    confidence      double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    quality_score   double precision NOT NULL DEFAULT 0
                    CHECK (quality_score >= 0 AND quality_score <= 1),
    -- Of the mask when there is one, else of the box.
    area            double precision NOT NULL CHECK (area >= 0 AND area < 'Infinity'),
    has_mask        boolean NOT NULL DEFAULT false,
    -- The embedding is kept here too: Postgres is the source of truth and reconcile restores
    -- Qdrant from it. pgvector without a fixed dimension: the registry checks the configured
    -- dimension on write, so a change of embedding model needs no schema change.
    embedding       vector,
    has_embedding   boolean NOT NULL GENERATED ALWAYS AS (embedding IS NOT NULL) STORED,
    detection_model text NOT NULL DEFAULT '',
    is_validated    boolean NOT NULL DEFAULT false,
    validated_by    text,
    validate_time   timestamptz,
    track_id        uuid,
    attributes      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now(),
    CHECK (is_validated = (validated_by IS NOT NULL)),
    CHECK (is_validated = (validate_time IS NOT NULL)),
    -- The frame exists (and through it the source); deleting a source removes its objects.
    FOREIGN KEY (source_id, frame_index) REFERENCES frames (source_id, frame_index)
        ON DELETE CASCADE,
    -- A track belongs to the object's own source.
    FOREIGN KEY (track_id, source_id) REFERENCES tracks (id, source_id)
        ON DELETE SET NULL (track_id)
);
-- A vector is written once and read whole: skip the pointless compression attempt.
ALTER TABLE objects ALTER COLUMN embedding SET STORAGE EXTERNAL;

-- One index per filter field of ListObjects (registry/queryable_fields.py OBJECT_FILTER); those
-- that can be ordered by end in id, for keyset paging in either direction.
CREATE INDEX objects_source_frame_idx ON objects (source_id, frame_index);
CREATE INDEX objects_category_idx ON objects (category_id);
CREATE INDEX objects_frame_index_idx ON objects (frame_index, id);
CREATE INDEX objects_confidence_idx ON objects (confidence, id);
CREATE INDEX objects_quality_score_idx ON objects (quality_score, id);
CREATE INDEX objects_area_idx ON objects (area, id);
CREATE INDEX objects_is_validated_idx ON objects (is_validated);
CREATE INDEX objects_validated_by_idx ON objects (validated_by);
CREATE INDEX objects_detection_model_idx ON objects (detection_model);
CREATE INDEX objects_track_idx ON objects (track_id, frame_index);
CREATE INDEX objects_create_time_idx ON objects (create_time, id);
CREATE INDEX objects_update_time_idx ON objects (update_time, id);

-- A track with the facts derived from its objects (ListTracks filters and orders on them).
CREATE VIEW track_summaries AS
SELECT t.id,
       t.source_id,
       t.create_time,
       count(o.id) AS object_count,
       min(o.frame_index) AS first_frame_index,
       max(o.frame_index) AS last_frame_index,
       mode() WITHIN GROUP (ORDER BY o.category_id) AS category_id
FROM tracks t
LEFT JOIN objects o ON o.track_id = t.id
GROUP BY t.id, t.source_id, t.create_time;

-- Exactly-once BatchCreateObjects ---------------------------------------------------------------

CREATE TABLE batch_requests (
    request_id      uuid PRIMARY KEY,
    -- SHA-256 of the request's content: a request_id reused for other content is refused.
    request_sha256  text NOT NULL,
    -- The stored result, replayed to retries. Written in the same transaction as the objects.
    response        jsonb,
    create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_requests_create_time_idx ON batch_requests (create_time);

-- Vector outbox: written with the objects, applied to Qdrant after commit, then deleted ---------

CREATE TABLE vector_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_id       uuid NOT NULL,          -- no foreign key: a delete outlives its object
    op              text NOT NULL CHECK (op IN ('upsert', 'delete')),
    enqueued_at     timestamptz NOT NULL DEFAULT now()
);
