//! How the ordering context's refusals read over HTTP: one mapping per error type, each naming
//! the request field at fault (`items/0/quantity`, `deliveryAddress/city`, `price/amount`).

use brigade_domain::ordering::{DishError, OrderError};
use brigade_domain::AddressError;
use brigade_platform::Problem;
use poem::http::StatusCode;

use crate::checkout::CheckoutError;
use crate::kitchen_capacity::SlotRefusal;

/// The problem for an order command the aggregate refused.
#[must_use]
pub fn order_problem(error: OrderError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        // Someone else's order is reported exactly like a missing one: its existence is private.
        OrderError::OrderNotFound | OrderError::NotYourOrder => order_not_found(),
        OrderError::OrderAlreadyPlaced
        | OrderError::TooLateToCancel
        | OrderError::AlreadyFinished => Problem::conflict(code, detail),
        OrderError::NotAllowed => Problem::new(StatusCode::FORBIDDEN, code, detail),
        OrderError::EmptyOrder | OrderError::TooManyLines { .. } | OrderError::TotalOverflow => {
            Problem::unprocessable(code, detail).with_field("items")
        }
        OrderError::InvalidQuantity { line, .. } => {
            Problem::unprocessable(code, detail).with_field(format!("items/{line}/quantity"))
        }
        OrderError::NoteTooLong { line } => {
            Problem::unprocessable(code, detail).with_field(format!("items/{line}/note"))
        }
        OrderError::InvalidOptions { line, .. } => {
            Problem::unprocessable(code, detail).with_field(format!("items/{line}/options"))
        }
        OrderError::InvalidUnitPrice { line } | OrderError::MixedCurrencies { line } => {
            Problem::unprocessable(code, detail).with_field(format!("items/{line}/dishId"))
        }
        OrderError::InvalidAddress(address) => {
            Problem::unprocessable(code, detail).with_field(address_field(&address))
        }
        OrderError::ContactPhoneTooLong { .. } => {
            Problem::unprocessable(code, detail).with_field("contactPhone")
        }
        OrderError::ReasonTooLong { .. } => {
            Problem::unprocessable(code, detail).with_field("reason")
        }
        OrderError::AllergenConfirmationRequired { conflicts } => Problem::conflict(code, detail)
            .with_field("allergensConfirmed")
            .with_items(serde_json::to_value(conflicts).unwrap_or_default()),
        OrderError::ScheduleNotInFuture | OrderError::ScheduleTooFar { .. } => {
            Problem::unprocessable(code, detail).with_field("scheduledFor")
        }
    }
}

/// The problem for an order the kitchen has no room for when asked: 409 for a full slot,
/// 422 for a scheduled time before the order could be ready; both say when to try.
#[must_use]
pub fn slot_problem(refusal: &SlotRefusal) -> Problem {
    let problem = match refusal {
        SlotRefusal::Full { .. } => Problem::conflict(refusal.code(), refusal.to_string()),
        SlotRefusal::TooSoon { .. } => Problem::unprocessable(refusal.code(), refusal.to_string()),
    }
    .with_field("scheduledFor");
    match refusal.next_available_at() {
        Some(at) => problem.with_next_available_at(at),
        None => problem,
    }
}

/// 404 for an order that does not exist or that the caller may not see.
#[must_use]
pub fn order_not_found() -> Problem {
    Problem::not_found(OrderError::OrderNotFound.code(), "order not found")
}

fn address_field(error: &AddressError) -> String {
    match error {
        AddressError::Missing { field } | AddressError::TooLong { field, .. } => {
            format!("deliveryAddress/{field}")
        }
        AddressError::LatitudeOutOfRange => "deliveryAddress/lat".to_owned(),
        AddressError::LongitudeOutOfRange => "deliveryAddress/lon".to_owned(),
        AddressError::IncompleteCoordinates => "deliveryAddress".to_owned(),
    }
}

/// The problem for a dish command the aggregate refused.
#[must_use]
pub fn dish_problem(error: DishError) -> Problem {
    let detail = error.to_string();
    let code = error.code();
    match error {
        DishError::DishNotFound => Problem::not_found(code, detail),
        DishError::DishAlreadyExists => Problem::conflict(code, detail),
        DishError::Blank { field } | DishError::TooLong { field, .. } => {
            // The availability reason is `unavailableReason` in the API.
            let field = if field == "reason" {
                "unavailableReason"
            } else {
                field
            };
            Problem::unprocessable(code, detail).with_field(field)
        }
        DishError::InvalidPrice { .. } => {
            Problem::unprocessable(code, detail).with_field("price/amount")
        }
        DishError::InvalidCurrency { .. } => {
            Problem::unprocessable(code, detail).with_field("price/currency")
        }
        DishError::InvalidPrepMinutes { .. } => {
            Problem::unprocessable(code, detail).with_field("prepMinutes")
        }
        DishError::InvalidPhotoUrl { .. } => {
            Problem::unprocessable(code, detail).with_field("photoUrl")
        }
        DishError::TooManyOptionGroups { .. } => {
            Problem::unprocessable(code, detail).with_field("options")
        }
        DishError::InvalidOptionName { field, .. }
        | DishError::OptionNameTaken { field, .. }
        | DishError::OptionIdTaken { field }
        | DishError::InvalidOptionChoices { field, .. }
        | DishError::InvalidOptionLimits { field }
        | DishError::InvalidOptionPrice { field, .. } => {
            Problem::unprocessable(code, detail).with_field(field)
        }
    }
}

/// The problem for a basket line that cannot be priced.
#[must_use]
pub fn checkout_problem(error: &CheckoutError) -> Problem {
    Problem::unprocessable(error.code(), error.to_string()).with_field(error.field())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_field_at_fault() {
        let field = |problem: Problem| problem.details().field.clone();
        assert_eq!(
            field(order_problem(OrderError::InvalidQuantity {
                line: 2,
                quantity: 0
            })),
            Some("items/2/quantity".into())
        );
        assert_eq!(
            field(order_problem(OrderError::InvalidAddress(
                AddressError::Missing {
                    field: "postalCode"
                }
            ))),
            Some("deliveryAddress/postalCode".into())
        );
        assert_eq!(
            field(dish_problem(DishError::InvalidPrice { amount: 0 })),
            Some("price/amount".into())
        );
    }

    #[test]
    fn someone_elses_order_looks_missing() {
        assert_eq!(
            order_problem(OrderError::NotYourOrder).details(),
            order_problem(OrderError::OrderNotFound).details()
        );
        assert_eq!(
            order_problem(OrderError::TooLateToCancel).details().status,
            409
        );
        assert_eq!(
            order_problem(OrderError::TooLateToCancel).details().kind,
            "https://brigade.dev/errors/order-too-late-to-cancel"
        );
    }
}
