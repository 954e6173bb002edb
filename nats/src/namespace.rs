//! Stream and subject names.
//!
//! Each service publishes to one stream named after it (`ORDERS`) holding the subjects
//! `{service}.{aggregate}.{event}` in snake case (`orders.order.placed`). A namespace prefixes
//! both (`T42_ORDERS`, `t42.orders.order.placed`) so that tests, or two installations sharing one
//! NATS server, never see each other's messages.

/// An optional prefix for every stream and subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(Option<String>);

impl Namespace {
    /// A namespace from a prefix made of ASCII letters, digits and `_`; an empty prefix means none.
    ///
    /// # Errors
    /// When the prefix holds any other character (it would break subject or stream names).
    pub fn new(prefix: Option<&str>) -> Result<Self, String> {
        match prefix.map(str::trim) {
            None | Some("") => Ok(Self(None)),
            Some(p) if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Ok(Self(Some(p.to_ascii_lowercase())))
            }
            Some(p) => Err(format!(
                "namespace {p:?} may only hold ASCII letters, digits and '_'"
            )),
        }
    }

    /// The JetStream stream that holds one service's events: `ORDERS`, or `T42_ORDERS`.
    #[must_use]
    pub fn stream(&self, service: &str) -> String {
        match &self.0 {
            None => service.to_ascii_uppercase(),
            Some(p) => format!(
                "{}_{}",
                p.to_ascii_uppercase(),
                service.to_ascii_uppercase()
            ),
        }
    }

    /// A subject inside this namespace: `orders.order.placed`, or `t42.orders.order.placed`.
    #[must_use]
    pub fn subject(&self, subject: &str) -> String {
        match &self.0 {
            None => subject.to_owned(),
            Some(p) => format!("{p}.{subject}"),
        }
    }

    /// The prefix, if any.
    #[must_use]
    pub fn prefix(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The subject of one event, without namespace: `{service}.{aggregate_type}.{event}`.
///
/// The event part is the event type in snake case, less the aggregate's own name where it
/// starts with it: `OrderInPreparation` of `order` → `in_preparation`, `ItemStarted` of
/// `ticket` → `item_started`.
#[must_use]
pub fn event_subject(service: &str, aggregate_type: &str, event_type: &str) -> String {
    let snake = snake_case(event_type);
    let prefix = format!("{aggregate_type}_");
    let event = snake.strip_prefix(&prefix).unwrap_or(&snake);
    format!("{service}.{aggregate_type}.{event}")
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_drop_the_aggregate_name_from_the_event() {
        assert_eq!(
            event_subject("orders", "order", "OrderPlaced"),
            "orders.order.placed"
        );
        assert_eq!(
            event_subject("orders", "order", "OrderInPreparation"),
            "orders.order.in_preparation"
        );
        assert_eq!(
            event_subject("kitchen", "ticket", "ItemStarted"),
            "kitchen.ticket.item_started"
        );
        assert_eq!(
            event_subject("delivery", "delivery", "CourierAssigned"),
            "delivery.delivery.courier_assigned"
        );
    }

    #[test]
    fn a_namespace_prefixes_streams_and_subjects() {
        let ns = Namespace::new(Some("T42")).expect("valid");
        assert_eq!(ns.stream("orders"), "T42_ORDERS");
        assert_eq!(ns.subject("orders.>"), "t42.orders.>");
        assert_eq!(
            Namespace::new(Some("")).expect("valid"),
            Namespace::default()
        );
        assert!(Namespace::new(Some("a.b")).is_err());
    }
}
