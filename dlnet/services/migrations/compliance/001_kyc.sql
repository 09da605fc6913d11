-- KYC registry and DLC gatekeeping. No KYC plaintext is ever stored here: records live encrypted on
-- IPFS; this schema holds references (CID, SHA-256 of the envelope) and the wrapped data key.
CREATE TABLE compliance.kyc_records (
    id              bigserial   PRIMARY KEY,
    account_id      text        NOT NULL CHECK (account_id ~ '^G[A-Z2-7]{55}$'),
    cid             text        NOT NULL,
    envelope_sha256 text        NOT NULL CHECK (envelope_sha256 ~ '^[0-9a-f]{64}$'),
    wrapped_key     bytea       NOT NULL,
    kek_id          text        NOT NULL,
    submitted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kyc_records_account ON compliance.kyc_records (account_id, id);

CREATE TABLE compliance.accounts (
    account_id  text        PRIMARY KEY CHECK (account_id ~ '^G[A-Z2-7]{55}$'),
    status      text        NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'revoked')),
    record_id   bigint      REFERENCES compliance.kyc_records (id),
    -- Times the partner was caught cheating (paper Sec. 4.3): raises the stake it must put up.
    strikes     integer     NOT NULL DEFAULT 0 CHECK (strikes >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every decision, append-only: UPDATE, DELETE and TRUNCATE are refused by triggers.
CREATE TABLE compliance.audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    account_id  text,
    action      text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE FUNCTION compliance.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'compliance.audit_log is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON compliance.audit_log
    FOR EACH ROW EXECUTE FUNCTION compliance.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON compliance.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION compliance.audit_log_append_only();
