//! The identity database's own tables, beside the event store every service has.
//!
//! The `Account` aggregate's events are the truth about accounts; these tables hold what must
//! never be published as an event (password hashes, private keys, refresh-token digests) and
//! what needs a unique index or a row lock that an event store cannot give (e-mail claims,
//! single-use refresh tokens, login throttling counters).

use brigade_nats::Migration;

/// Applied after the event store's migrations, in order, once per database.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "identity_0001_accounts_sessions_keys",
    sql: r"
-- One row per e-mail address in use, claimed *before* the account's first event is committed:
-- the primary key makes two concurrent sign-ups with the same address (in any case) collide
-- here, since the event store's own commit cannot check anything across aggregates. A claim
-- whose registration failed is released; one left by a crash (no events for its account after
-- a few minutes) is taken over by the next sign-up.
CREATE TABLE account_emails (
    email_lower text        PRIMARY KEY,
    account_id  uuid        NOT NULL UNIQUE,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

-- The current password hash (Argon2id, PHC string) of each account. `version` matches the
-- credential version of the account's last PasswordChanged event (1 at registration).
CREATE TABLE credentials (
    account_id    uuid        PRIMARY KEY,
    password_hash text        NOT NULL,
    version       integer     NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Ed25519 key pairs that sign access tokens. A new key is published at once but signs only
-- from `activates_at`, so every verifier can know it before the first token it signed; the key
-- it replaces stops signing then (`retired_at`) and stays published until every token it
-- signed has expired.
CREATE TABLE signing_keys (
    kid          text        PRIMARY KEY,
    secret_key   bytea       NOT NULL CHECK (length(secret_key) = 32),
    public_key   bytea       NOT NULL CHECK (length(public_key) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    activates_at timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);

-- A session is one sign-in on one device: a family of refresh tokens, each used once.
CREATE TABLE sessions (
    session_id uuid        PRIMARY KEY,
    account_id uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz,
    end_reason text
);
CREATE INDEX sessions_open_by_account ON sessions (account_id) WHERE ended_at IS NULL;

-- Refresh tokens are stored as SHA-256 digests: a database leak yields no usable token.
-- `rotated_at` marks a token already exchanged; presenting it again means it was stolen.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid        NOT NULL REFERENCES sessions ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Failed sign-ins per key (`account:<e-mail>` or `address:<ip>`) in a fixed window.
CREATE TABLE login_failures (
    key          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer     NOT NULL
);
",
}];
