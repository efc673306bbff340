-- 0004: long-running operations (build, export, import), kept so that a restarted registry
-- still answers GetOperation / ListOperations with the truth. Never edit this file once landed;
-- add 0005_... instead.
--
-- The registry layer stores the protobuf messages as opaque bytes: `metadata` is the last
-- stored OperationProgress, `outcome` the finished google.longrunning.Operation. A row is
-- written when the operation starts and again when it ends; progress in between lives in the
-- memory of the process that runs it (`owner`). An operation still running when its owner
-- died is ended with an error by that owner's next start.
-- The code is registry/operations.py (store) and servers/operation_store.py (the messages).

CREATE TABLE operations (
    name            text PRIMARY KEY CHECK (name LIKE 'operations/%'),
    -- What the operation works on ("datasets/{id}", an import's path).
    target          text NOT NULL,
    -- The registry instance that runs it: host and data directory (see operations.py).
    owner           text NOT NULL,
    done            boolean NOT NULL DEFAULT false,
    metadata        bytea NOT NULL,
    outcome         bytea,
    create_time     timestamptz NOT NULL DEFAULT clock_timestamp(),
    update_time     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (done = (outcome IS NOT NULL))
);
-- ListOperations pages newest first on (create_time, name).
CREATE INDEX operations_create_time_idx ON operations (create_time, name);
-- Start-up finds the running operations of an owner.
CREATE INDEX operations_running_idx ON operations (owner) WHERE NOT done;
