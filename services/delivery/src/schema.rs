//! The delivery service's own tables, beside the event store and the read models: what
//! dispatch needs to never book a courier twice, what it remembers from identity, the
//! notifications with their webhook and e-mail deliveries, the sampled routes, and the
//! kitchen's ready-time quotes.

use brigade_nats::Migration;

/// Applied after the read models' migrations.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0400_delivery_dispatch",
        sql: r"
-- Who carries what. One row per busy courier, and one per order: both keys are unique, so
-- two dispatchers (or a dispatcher and a manager) racing for one courier or one order can never
-- both win; the loser's INSERT finds the row and backs off. A row is booked before the
-- `Assign` command and confirmed by the `CourierAssigned` event; the events also release it.
CREATE TABLE courier_workload (
    courier_id uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL UNIQUE,
    booked_at  timestamptz NOT NULL DEFAULT now(),
    confirmed  boolean     NOT NULL DEFAULT false
);

-- When each courier was last given a delivery: among couriers about as near, the one who
-- waited longest goes first, so nobody starves.
CREATE TABLE courier_dispatch_turns (
    courier_id      uuid        PRIMARY KEY,
    last_booked_at  timestamptz NOT NULL
);

-- Couriers who declined an order are not offered it again.
CREATE TABLE dispatch_declines (
    order_id    uuid        NOT NULL,
    courier_id  uuid        NOT NULL,
    declined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, courier_id)
);

-- Names and phones of identity accounts, from identity's events: a `RoleGranted` carries no
-- name, yet hiring the new courier needs one.
CREATE TABLE identity_accounts (
    account_id uuid PRIMARY KEY,
    name       text NOT NULL,
    phone      text
);
",
    },
    Migration {
        name: "0410_notifications",
        sql: r"
-- One row per notification to one recipient: an account, or every holder of a role (the
-- managers). `dedup_key` names the fact and the recipient (`delivery:{id}:{sequence}/customer`),
-- so that a fact redelivered, replayed or noticed twice never notifies anyone twice.
CREATE TABLE notifications (
    id             bigserial   PRIMARY KEY,
    recipient_id   uuid,
    recipient_role text,
    kind           text        NOT NULL,
    order_id       uuid,
    title          text        NOT NULL,
    message        text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    dedup_key      text        NOT NULL UNIQUE,
    CHECK ((recipient_id IS NULL) <> (recipient_role IS NULL))
);
CREATE INDEX notifications_by_account ON notifications (recipient_id, id DESC) WHERE recipient_id IS NOT NULL;
CREATE INDEX notifications_by_role ON notifications (recipient_role, id DESC) WHERE recipient_role IS NOT NULL;

-- Order -> customer, from `OrderPlaced`: the later order events do not name the customer.
CREATE TABLE notification_orders (
    order_id    uuid PRIMARY KEY,
    customer_id uuid NOT NULL
);

-- Webhook endpoints registered by managers; every notification is posted to each active one.
CREATE TABLE webhooks (
    id         uuid        PRIMARY KEY,
    url        text        NOT NULL,
    secret     text        NOT NULL,
    active     boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The delivery log, and the outbox of the webhook sender: a row is written in the very
-- transaction that creates the notification, then sent, retried with a growing delay, and
-- parked after too many failures (still visible, and the others keep flowing).
CREATE TABLE webhook_deliveries (
    id              bigserial   PRIMARY KEY,
    webhook_id      uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    notification_id bigint      NOT NULL REFERENCES notifications (id),
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    UNIQUE (webhook_id, notification_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
",
    },
    Migration {
        name: "0420_route_estimates_email",
        sql: r"
-- The courier's route with the food, sampled from their positions (crate::route): the fast
-- side of `DeliveryRouteRecorded`. A sample waits here (`recorded = false`) until a batch is
-- recorded on the delivery; the primary key makes a sample taken twice one row.
CREATE TABLE delivery_route_samples (
    order_id   uuid             NOT NULL,
    courier_id uuid             NOT NULL,
    lat        double precision NOT NULL,
    lon        double precision NOT NULL,
    taken_at   timestamptz      NOT NULL,
    recorded   boolean          NOT NULL DEFAULT false,
    PRIMARY KEY (order_id, taken_at)
);
CREATE INDEX delivery_route_samples_pending ON delivery_route_samples (order_id) WHERE NOT recorded;

-- The kitchen's latest ready-time quote of each order (`kitchen.estimate.ticket_estimated`):
-- dispatch sends a courier ahead when the food is expected within its lead.
CREATE TABLE delivery_ready_estimates (
    order_id uuid        PRIMARY KEY,
    ready_at timestamptz NOT NULL,
    quoted_at timestamptz NOT NULL
);

-- E-mail (crate::email): the addresses identity told us, whether the channel is on, and the
-- delivery log that is also the sender's outbox (one row per notification, never two).
ALTER TABLE identity_accounts ADD COLUMN email text;
CREATE TABLE email_channel (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    enabled boolean NOT NULL
);
CREATE TABLE email_deliveries (
    notification_id bigint      PRIMARY KEY REFERENCES notifications (id),
    address         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX email_deliveries_due ON email_deliveries (next_attempt_at) WHERE status = 'pending';
",
    },
];
