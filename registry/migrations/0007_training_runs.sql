-- 0007: training runs and evaluations (issue 18). Never edit this file once landed; add
-- 0008_... instead.
--
-- A training run is a YOLO training of a built dataset: its request (model spec and
-- hyper-parameters), its life cycle (QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED), the
-- epochs done so far and, once it ends, its metrics, weights and MLflow run. An evaluation is
-- one scoring of predictions (a run's weights, or the objects of a detection model) against the
-- validated objects of a dataset split. `request_id` makes a retried start or evaluate return
-- the first one instead of starting twice.
-- The code is registry/metadata/training_runs.py and registry/metadata/evaluations.py.

CREATE TABLE training_runs (
    id                  uuid PRIMARY KEY,
    -- No foreign key: a run outlives the dataset it was trained on (its weights still exist).
    dataset_id          uuid NOT NULL,
    model               text NOT NULL CHECK (model <> ''),
    task                text NOT NULL CHECK (task IN ('detect', 'segment')),
    epochs              integer NOT NULL CHECK (epochs > 0),
    image_size          integer NOT NULL CHECK (image_size > 0),
    batch               integer NOT NULL,
    device              text NOT NULL,
    state               text NOT NULL DEFAULT 'QUEUED'
                        CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    -- Final (or latest) metrics by name, e.g. {"metrics/mAP50(B)": 0.41}.
    metrics             jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The best weights on the registry's host; '' until the run succeeds.
    weights_path        text NOT NULL DEFAULT '',
    mlflow_run_id       text NOT NULL DEFAULT '',
    -- The dataset's classes at training time, in class-id order.
    class_names         text[] NOT NULL,
    epochs_completed    integer NOT NULL DEFAULT 0 CHECK (epochs_completed >= 0),
    -- operations/{uuid} that trains it.
    operation           text NOT NULL DEFAULT '',
    -- The registry instance that trains it (as operations.owner): its next start fails the
    -- runs it left unfinished, and leaves those of other instances alone.
    owner               text NOT NULL,
    error_message       text NOT NULL DEFAULT '',
    -- The dataset's split seed, kept for MLflow's parameters.
    split_seed          bigint NOT NULL DEFAULT 0,
    request_id          uuid UNIQUE,
    create_time         timestamptz NOT NULL DEFAULT clock_timestamp(),
    end_time            timestamptz,
    CHECK ((end_time IS NULL) = (state IN ('QUEUED', 'RUNNING')))
);
-- ListRuns pages newest first on (create_time, id).
CREATE INDEX training_runs_create_time_idx ON training_runs (create_time, id);
-- Start-up finds the runs a stopped registry left unfinished.
CREATE INDEX training_runs_unfinished_idx ON training_runs (owner)
    WHERE state IN ('QUEUED', 'RUNNING');

CREATE TABLE evaluations (
    id                  uuid PRIMARY KEY,
    -- The run whose weights predicted; NULL when the objects of detection_model were scored.
    run_id              uuid REFERENCES training_runs (id) ON DELETE CASCADE,
    dataset_id          uuid NOT NULL,
    split               text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    detection_model     text NOT NULL DEFAULT '',
    -- mAP, per-class metrics, the confusion matrix and the image count (see evaluations.py).
    figures             jsonb NOT NULL,
    mlflow_run_id       text NOT NULL DEFAULT '',
    request_id          uuid UNIQUE,
    create_time         timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((run_id IS NULL) <> (detection_model = ''))
);
-- ListEvaluations pages newest first on (create_time, id), all or of one run.
CREATE INDEX evaluations_create_time_idx ON evaluations (create_time, id);
CREATE INDEX evaluations_run_idx ON evaluations (run_id, create_time, id);
