-- 0003: facts about the registry that every later start must agree with. Never edit this file
-- once landed; add 0004_... instead.
--
-- One row per fact, written once, the first time the registry's stores are created:
--   embedding_dimension: the length of every stored embedding (the vector store is created with
--   it; a later start with another dimension stops with an error instead of failing per image).
-- The code is registry/embedding_dimension.py.

CREATE TABLE registry_settings (
    key         text PRIMARY KEY CHECK (key <> ''),
    value       text NOT NULL,
    set_time    timestamptz NOT NULL DEFAULT now()
);
