-- Outgoing payments keyed by the caller's idempotency key: one row, one signed envelope, at most one payment.
CREATE TABLE bridge.payment_requests (
    idempotency_key text        PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256  text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('payment', 'path_payment')),
    account_name    text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('building', 'submitted', 'succeeded', 'failed')),
    tx_hash         text,
    envelope_xdr    text,
    http_status     integer,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Where the follower is in each held account's payment stream (Horizon paging token).
CREATE TABLE bridge.cursors (
    account_id  text        PRIMARY KEY,
    cursor      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Incoming payments, once each (Horizon operation id), stored with the cursor in one transaction.
CREATE TABLE bridge.incoming (
    id          text        PRIMARY KEY,
    account_id  text        NOT NULL,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bridge.webhooks (
    id          bigserial   PRIMARY KEY,
    url         text        NOT NULL CHECK (url ~ '^https?://'),
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bridge.deliveries (
    payment_id      text        NOT NULL REFERENCES bridge.incoming (id),
    webhook_id      bigint      NOT NULL REFERENCES bridge.webhooks (id),
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (payment_id, webhook_id)
);
CREATE INDEX deliveries_due ON bridge.deliveries (next_attempt_at) WHERE status = 'pending';
