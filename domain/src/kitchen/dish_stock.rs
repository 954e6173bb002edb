//! The `DishStock` aggregate: whether the kitchen can still make one dish (aggregate id = the
//! menu's dish id, cqrs-es type `stock`, subjects `kitchen.stock.*`).
//!
//! The menu belongs to the orders service; what the kitchen owns is the fact that it ran out.
//! A chef says so from the kitchen screen ("Épuisé"), or by rejecting a ticket for a missing
//! dish; the orders service consumes `kitchen.stock.dish_sold_out` and takes the dish off the
//! menu within a second, so nobody orders what cannot be cooked.
//!
//! Every `MarkSoldOut` is recorded, even when the dish already is: a manager may have put the
//! dish back on the menu meanwhile (on the orders side), and a chef who says again that it is
//! out must be heard. The orders service's `ChangeAvailability` is idempotent, so a repeated
//! fact changes the menu once.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DishStockCommand, DishStockError, DishStockEvent};
use crate::shared::{char_len, non_blank};
use crate::{Actor, Role};

/// One dish as the kitchen stocks it. `DishStock::default()` was never reported out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DishStock {
    dish_id: Option<Uuid>,
    sold_out_since: Option<DateTime<Utc>>,
}

impl DishStock {
    pub const MAX_REASON_CHARS: usize = 200;

    pub fn dish_id(&self) -> Option<Uuid> {
        self.dish_id
    }

    /// Since when the kitchen has been out of it; `None` while it can make it.
    pub fn sold_out_since(&self) -> Option<DateTime<Utc>> {
        self.sold_out_since
    }

    fn decide(&self, command: DishStockCommand) -> Result<Vec<DishStockEvent>, DishStockError> {
        match command {
            DishStockCommand::MarkSoldOut {
                dish_id,
                dish_name,
                reason,
                by,
                at,
            } => {
                require_kitchen_staff(by)?;
                let reason = non_blank(reason);
                if reason
                    .as_deref()
                    .is_some_and(|r| char_len(r) > Self::MAX_REASON_CHARS)
                {
                    return Err(DishStockError::ReasonTooLong {
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                Ok(vec![DishStockEvent::DishSoldOut {
                    dish_id,
                    dish_name: non_blank(dish_name),
                    reason,
                    by,
                    at,
                }])
            }
            DishStockCommand::MarkBackInStock { dish_id, by, at } => {
                require_kitchen_staff(by)?;
                if self.sold_out_since.is_none() {
                    return Ok(Vec::new());
                }
                Ok(vec![DishStockEvent::DishBackInStock { dish_id, by, at }])
            }
        }
    }
}

fn require_kitchen_staff(by: Actor) -> Result<(), DishStockError> {
    match by.role() {
        Some(Role::Chef | Role::Manager) | None => Ok(()),
        Some(Role::Customer | Role::Courier) => Err(DishStockError::KitchenStaffOnly),
    }
}

impl Aggregate for DishStock {
    const TYPE: &'static str = "stock";
    type Command = DishStockCommand;
    type Event = DishStockEvent;
    type Error = DishStockError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DishStockEvent::DishSoldOut { dish_id, at, .. } => {
                self.dish_id = Some(dish_id);
                // The first report of a run-out says since when.
                self.sold_out_since.get_or_insert(at);
            }
            DishStockEvent::DishBackInStock { dish_id, .. } => {
                self.dish_id = Some(dish_id);
                self.sold_out_since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::test_support::{at, handle_then_reload};

    type StockTest = TestFramework<DishStock>;

    const DISH: Uuid = Uuid::from_u128(42);

    fn chef() -> Actor {
        Actor::user(Uuid::from_u128(7), Role::Chef)
    }

    fn sold_out(minute: u32) -> DishStockCommand {
        DishStockCommand::MarkSoldOut {
            dish_id: DISH,
            dish_name: Some("Tarte Tatin".into()),
            reason: Some(" plus de pommes ".into()),
            by: chef(),
            at: at(minute),
        }
    }

    fn sold_out_event(minute: u32) -> DishStockEvent {
        DishStockEvent::DishSoldOut {
            dish_id: DISH,
            dish_name: Some("Tarte Tatin".into()),
            reason: Some("plus de pommes".into()),
            by: chef(),
            at: at(minute),
        }
    }

    #[test]
    fn a_chef_says_a_dish_ran_out_every_time_they_say_it() {
        StockTest::with(())
            .given_no_previous_events()
            .when(sold_out(1))
            .then_expect_events(vec![sold_out_event(1)]);
        StockTest::with(())
            .given(vec![sold_out_event(1)])
            .when(sold_out(2))
            .then_expect_events(vec![sold_out_event(2)]);
    }

    #[test]
    fn a_customer_cannot_say_a_dish_ran_out() {
        StockTest::with(())
            .given_no_previous_events()
            .when(DishStockCommand::MarkSoldOut {
                dish_id: DISH,
                dish_name: None,
                reason: None,
                by: Actor::user(Uuid::from_u128(8), Role::Customer),
                at: at(1),
            })
            .then_expect_error(DishStockError::KitchenStaffOnly);
    }

    #[test]
    fn the_reason_is_at_most_two_hundred_characters() {
        StockTest::with(())
            .given_no_previous_events()
            .when(DishStockCommand::MarkSoldOut {
                dish_id: DISH,
                dish_name: None,
                reason: Some("x".repeat(201)),
                by: chef(),
                at: at(1),
            })
            .then_expect_error(DishStockError::ReasonTooLong { max: 200 });
    }

    #[test]
    fn a_dish_comes_back_only_once_it_ran_out() {
        let back = DishStockCommand::MarkBackInStock {
            dish_id: DISH,
            by: chef(),
            at: at(3),
        };
        StockTest::with(())
            .given_no_previous_events()
            .when(back.clone())
            .then_expect_events(vec![]);
        let (handled, reloaded, emitted) =
            handle_then_reload::<DishStock>(vec![sold_out_event(1), sold_out_event(2)], back);
        assert_eq!(emitted.len(), 1);
        assert_eq!(handled, reloaded);
        assert_eq!(reloaded.sold_out_since(), None);
        let (still_out, _, _) =
            handle_then_reload::<DishStock>(vec![sold_out_event(1)], sold_out(2));
        assert_eq!(still_out.sold_out_since(), Some(at(1)));
    }
}
