-- 0002: datasets and their built membership. Never edit this file once landed; add 0003_... instead.
--
-- A dataset is a definition (a filter over objects, class names in class-id order, split ratios,
-- a seed, what stays together when splitting) plus the membership its last build wrote: one row
-- per image (frame) with its split and a running image number, and one row per object with its
-- class id. Membership follows the registry: deleting an object, a frame or a source removes it
-- from every dataset (ON DELETE CASCADE); nothing else changes it until the next build.
-- The code is registry/datasets.py (store) and registry/dataset_splits.py (split algorithm).

CREATE TABLE datasets (
    id                  uuid PRIMARY KEY,
    display_name        text NOT NULL CHECK (display_name <> ''),
    -- AIP-160 filter over objects, as written (checked on create, applied at build time).
    filter              text NOT NULL DEFAULT '',
    -- Class id = index (0-based) in this array; names or synonyms, resolved at build time.
    class_names         text[] NOT NULL CHECK (cardinality(class_names) > 0),
    -- Fractions of the groups in each split (normalised by the registry to sum to 1).
    train_ratio         double precision NOT NULL CHECK (train_ratio >= 0 AND train_ratio <= 1),
    val_ratio           double precision NOT NULL CHECK (val_ratio >= 0 AND val_ratio <= 1),
    test_ratio          double precision NOT NULL CHECK (test_ratio >= 0 AND test_ratio <= 1),
    seed                bigint NOT NULL,
    -- SOURCE: all frames of a source in one split; FRAME: each frame on its own.
    split_grouping      text NOT NULL CHECK (split_grouping IN ('SOURCE', 'FRAME')),
    state               text NOT NULL DEFAULT 'DRAFT'
                        CHECK (state IN ('DRAFT', 'BUILDING', 'READY', 'FAILED')),
    create_time         timestamptz NOT NULL DEFAULT now(),
    -- When the membership was last written (NULL: never built).
    build_time          timestamptz,
    -- When the current or last build began (stale BUILDING states are failed from it).
    build_start_time    timestamptz,
    -- Counts the builds that wrote membership: a reader paging through the membership checks
    -- it did not change between pages.
    build_generation    bigint NOT NULL DEFAULT 0,
    CHECK (abs(train_ratio + val_ratio + test_ratio - 1) <= 1e-9),
    CHECK (state <> 'READY' OR build_time IS NOT NULL),
    CHECK ((build_time IS NULL) = (build_generation = 0))
);
-- ListDatasets pages newest first on (create_time, id).
CREATE INDEX datasets_create_time_idx ON datasets (create_time, id);

-- One row per image (frame) of a built dataset. image_number is a running number from 1 in
-- (split: train, val, test; source_id; frame_index) order, fixed by the build: a COCO image id,
-- and with the split index below the order images are read in, split by split.
CREATE TABLE dataset_images (
    dataset_id          uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    image_number        integer NOT NULL CHECK (image_number > 0),
    split               text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    source_id           uuid NOT NULL,
    frame_index         bigint NOT NULL,
    PRIMARY KEY (dataset_id, image_number),
    -- Read one split image by image; target of dataset_objects' (dataset_id, split, image).
    UNIQUE (dataset_id, split, image_number),
    -- A frame is in a dataset at most once.
    UNIQUE (dataset_id, source_id, frame_index),
    FOREIGN KEY (source_id, frame_index) REFERENCES frames (source_id, frame_index)
        ON DELETE CASCADE
);
-- For the cascade from frames (the unique key above starts with dataset_id).
CREATE INDEX dataset_images_frame_idx ON dataset_images (source_id, frame_index);

-- One row per object of a built dataset. The split is the image's (the foreign key says so);
-- kept here too so per-split, per-class counts need no join.
CREATE TABLE dataset_objects (
    dataset_id          uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    object_id           uuid NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    image_number        integer NOT NULL,
    split               text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    class_id            integer NOT NULL CHECK (class_id >= 0),
    PRIMARY KEY (dataset_id, object_id),
    FOREIGN KEY (dataset_id, split, image_number)
        REFERENCES dataset_images (dataset_id, split, image_number) ON DELETE CASCADE
);
-- The objects of a batch of images, and the cascade from dataset_images.
CREATE INDEX dataset_objects_image_idx ON dataset_objects (dataset_id, image_number);
-- For the cascade from objects (the primary key starts with dataset_id).
CREATE INDEX dataset_objects_object_idx ON dataset_objects (object_id);
