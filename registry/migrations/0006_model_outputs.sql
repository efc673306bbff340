-- 0006: what the detection model itself said about each object it produced (issue 18).
--
-- Reviewers correct an object's box and class in place (UpdateObject, ValidateObjects), so the
-- object's own columns hold the reviewed label. Scoring the auto-labeller against the
-- validated labels needs the model's output as it was: these columns keep it. They are
-- written once, at creation, for an object created unvalidated (a model's output), and never
-- changed afterwards; they stay NULL for an object created validated (an import or a person's
-- own box), which is ground truth only. The category is SET NULL when that category is
-- deleted: a record of what a model once said must not block DeleteCategory, and a class that
-- no longer exists can be no dataset's class. Never edit this file once landed; add 0007_...
ALTER TABLE objects
    ADD COLUMN model_category_id uuid REFERENCES categories (id) ON DELETE SET NULL,
    ADD COLUMN model_x           double precision,
    ADD COLUMN model_y           double precision,
    ADD COLUMN model_width       double precision,
    ADD COLUMN model_height      double precision,
    ADD COLUMN model_confidence  double precision,
    ADD CONSTRAINT objects_model_output_whole CHECK (
        num_nulls(model_x, model_y, model_width, model_height, model_confidence) IN (0, 5)
    );

-- Objects not reviewed yet still hold what their model wrote (as far as anyone can tell);
-- for objects reviewed before this migration the model's own output is unknown, so they stay
-- ground truth only.
UPDATE objects
SET model_category_id = category_id,
    model_x = x,
    model_y = y,
    model_width = width,
    model_height = height,
    model_confidence = confidence
WHERE NOT is_validated;

CREATE INDEX objects_model_category_idx ON objects (model_category_id)
    WHERE model_category_id IS NOT NULL;

-- A reviewer who deletes a wrong auto-label removes the evidence that the model produced it:
-- without a trace, scoring that model would never count the false positive. DeleteObject
-- moves the model output of the object it deletes here; deleting the frame (or its source)
-- removes it with the image.
CREATE TABLE deleted_model_outputs (
    object_id         uuid PRIMARY KEY,
    source_id         uuid NOT NULL,
    frame_index       bigint NOT NULL,
    detection_model   text NOT NULL,
    model_category_id uuid REFERENCES categories (id) ON DELETE SET NULL,
    model_x           double precision NOT NULL,
    model_y           double precision NOT NULL,
    model_width       double precision NOT NULL,
    model_height      double precision NOT NULL,
    model_confidence  double precision NOT NULL,
    delete_time       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (source_id, frame_index) REFERENCES frames (source_id, frame_index)
        ON DELETE CASCADE
);
CREATE INDEX deleted_model_outputs_frame_idx ON deleted_model_outputs (source_id, frame_index);
CREATE INDEX deleted_model_outputs_category_idx ON deleted_model_outputs (model_category_id)
    WHERE model_category_id IS NOT NULL;
