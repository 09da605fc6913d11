-- SEP-2 records: one stellar address (name*domain) per row; names are stored lower-case.
CREATE TABLE federation.records (
    name        text        NOT NULL CHECK (name ~ '^[a-z0-9._@+-]{1,64}$'),
    domain      text        NOT NULL,
    account_id  text        NOT NULL CHECK (account_id ~ '^G[A-Z2-7]{55}$'),
    memo_type   text        CHECK (memo_type IN ('text', 'id', 'hash')),
    memo        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, name),
    CHECK ((memo_type IS NULL) = (memo IS NULL))
);
-- Reverse lookup (type=id) returns the oldest name of an account.
CREATE INDEX records_account ON federation.records (account_id, created_at);
