//! The `Dish` aggregate: one dish of the menu, with its price, allergens, kitchen station and
//! availability.
//!
//! Orders copy a dish's name and price when placed, so editing a dish never changes an existing
//! order. Besides the essentials, a dish has dietary tags, a photo, a visibility (a hidden dish
//! is off the customers' menu and cannot be ordered) and a position within its category. Text is trimmed and stations are lower-cased before they are recorded, so the events
//! hold the values the menu shows. An update or availability change that changes nothing
//! records nothing. A dish may also have option groups (cooking, supplements, size: see
//! [`options`](super::options)), set whole by `SetOptions`.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::options::valid_option_groups;
use super::{DishCommand, DishError, DishEvent, OptionGroup};
use crate::shared::{char_len, non_blank};
use crate::{Allergen, Money};

/// What a diet-conscious customer looks for on a menu, besides the allergens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DietaryTag {
    Vegetarian,
    Vegan,
    GlutenFree,
    DairyFree,
    Spicy,
    Halal,
}

impl DietaryTag {
    pub const ALL: [DietaryTag; 6] = [
        DietaryTag::Vegetarian,
        DietaryTag::Vegan,
        DietaryTag::GlutenFree,
        DietaryTag::DairyFree,
        DietaryTag::Spicy,
        DietaryTag::Halal,
    ];
}

/// A dish of the menu. `Dish::default()` is a dish not added yet: `exists()` is false.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dish {
    listed: Option<ListedDish>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedDish {
    dish_id: Uuid,
    name: String,
    description: String,
    category: String,
    price: Money,
    allergens: Vec<Allergen>,
    available: bool,
    station: String,
    prep_minutes: u32,
    dietary_tags: Vec<DietaryTag>,
    photo_url: Option<String>,
    visible: bool,
    position: u32,
    #[serde(default)]
    options: Vec<OptionGroup>,
}

impl Dish {
    pub const MAX_NAME_CHARS: usize = 80;
    pub const MAX_CATEGORY_CHARS: usize = 40;
    pub const MAX_DESCRIPTION_CHARS: usize = 500;
    pub const MAX_STATION_CHARS: usize = 40;
    pub const MAX_REASON_CHARS: usize = 200;
    /// 100 000.00 in minor units: anything above is a typo.
    pub const MAX_PRICE: i64 = 10_000_000;
    pub const MAX_PREP_MINUTES: u32 = 240;
    /// The station of a dish added without one.
    pub const DEFAULT_STATION: &'static str = "main";
    pub const MAX_PHOTO_URL_CHARS: usize = 500;

    pub fn exists(&self) -> bool {
        self.listed.is_some()
    }

    pub fn dish_id(&self) -> Option<Uuid> {
        self.listed.as_ref().map(|d| d.dish_id)
    }

    pub fn name(&self) -> Option<&str> {
        self.listed.as_ref().map(|d| d.name.as_str())
    }

    pub fn description(&self) -> Option<&str> {
        self.listed.as_ref().map(|d| d.description.as_str())
    }

    pub fn category(&self) -> Option<&str> {
        self.listed.as_ref().map(|d| d.category.as_str())
    }

    pub fn price(&self) -> Option<&Money> {
        self.listed.as_ref().map(|d| &d.price)
    }

    /// Sorted, without duplicates; empty until added.
    pub fn allergens(&self) -> &[Allergen] {
        self.listed.as_ref().map_or(&[], |d| &d.allergens)
    }

    /// False for a dish that does not exist.
    pub fn is_available(&self) -> bool {
        self.listed.as_ref().is_some_and(|d| d.available)
    }

    pub fn station(&self) -> Option<&str> {
        self.listed.as_ref().map(|d| d.station.as_str())
    }

    pub fn prep_minutes(&self) -> Option<u32> {
        self.listed.as_ref().map(|d| d.prep_minutes)
    }

    /// Sorted, without duplicates; empty until added.
    pub fn dietary_tags(&self) -> &[DietaryTag] {
        self.listed.as_ref().map_or(&[], |d| &d.dietary_tags)
    }

    pub fn photo_url(&self) -> Option<&str> {
        self.listed.as_ref().and_then(|d| d.photo_url.as_deref())
    }

    /// Whether customers see it on the menu (true once added, until hidden); false for a dish
    /// that does not exist.
    pub fn is_visible(&self) -> bool {
        self.listed.as_ref().is_some_and(|d| d.visible)
    }

    /// Position within its category (0 until moved).
    pub fn position(&self) -> Option<u32> {
        self.listed.as_ref().map(|d| d.position)
    }

    /// Its option groups, in menu order; empty for a dish without options (or not added).
    pub fn options(&self) -> &[OptionGroup] {
        self.listed.as_ref().map_or(&[], |d| &d.options)
    }

    fn decide(&self, command: DishCommand) -> Result<Vec<DishEvent>, DishError> {
        match command {
            DishCommand::Add {
                dish_id,
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                available,
                at,
            } => {
                if self.exists() {
                    return Err(DishError::DishAlreadyExists);
                }
                Ok(vec![DishEvent::DishAdded {
                    dish_id,
                    name: valid_name(&name)?,
                    description: valid_description(&description)?,
                    category: valid_category(&category)?,
                    price: valid_price(price)?,
                    allergens: normalized(allergens),
                    station: match station {
                        Some(station) => valid_station(&station)?,
                        None => Self::DEFAULT_STATION.to_owned(),
                    },
                    prep_minutes: valid_prep_minutes(prep_minutes)?,
                    available,
                    at,
                }])
            }
            DishCommand::Update {
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                at,
            } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                // Validate every given field, then keep only those that differ.
                let name = name.as_deref().map(valid_name).transpose()?;
                let description = description.as_deref().map(valid_description).transpose()?;
                let category = category.as_deref().map(valid_category).transpose()?;
                let price = price.map(valid_price).transpose()?;
                let allergens = allergens.map(normalized);
                let station = station.as_deref().map(valid_station).transpose()?;
                let prep_minutes = prep_minutes.map(valid_prep_minutes).transpose()?;
                // Options are priced in the dish's currency: a new currency must be theirs too.
                if let Some(price) = &price {
                    valid_option_groups(dish.options.clone(), &price.currency)?;
                }

                let update = DishEvent::DishUpdated {
                    name: changed(name, &dish.name),
                    description: changed(description, &dish.description),
                    category: changed(category, &dish.category),
                    price: changed(price, &dish.price),
                    allergens: changed(allergens, &dish.allergens),
                    station: changed(station, &dish.station),
                    prep_minutes: changed(prep_minutes, &dish.prep_minutes),
                    at,
                };
                let nothing_changed = matches!(
                    update,
                    DishEvent::DishUpdated {
                        name: None,
                        description: None,
                        category: None,
                        price: None,
                        allergens: None,
                        station: None,
                        prep_minutes: None,
                        ..
                    }
                );
                Ok(if nothing_changed {
                    Vec::new()
                } else {
                    vec![update]
                })
            }
            DishCommand::ChangeAvailability {
                available,
                reason,
                at,
            } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                let reason = non_blank(reason);
                if reason
                    .as_deref()
                    .is_some_and(|r| char_len(r) > Self::MAX_REASON_CHARS)
                {
                    return Err(DishError::TooLong {
                        field: "reason",
                        max: Self::MAX_REASON_CHARS,
                    });
                }
                if dish.available == available {
                    return Ok(Vec::new());
                }
                Ok(vec![DishEvent::DishAvailabilityChanged {
                    available,
                    reason,
                    at,
                }])
            }
            DishCommand::Present {
                dietary_tags,
                photo_url,
                at,
            } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                let dietary_tags = normalized(dietary_tags);
                let photo_url = valid_photo_url(photo_url)?;
                if dish.dietary_tags == dietary_tags && dish.photo_url == photo_url {
                    return Ok(Vec::new());
                }
                Ok(vec![DishEvent::DishPresentationChanged {
                    dietary_tags,
                    photo_url,
                    at,
                }])
            }
            DishCommand::ChangeVisibility { visible, at } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                if dish.visible == visible {
                    return Ok(Vec::new());
                }
                Ok(vec![DishEvent::DishVisibilityChanged { visible, at }])
            }
            DishCommand::Move { position, at } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                if dish.position == position {
                    return Ok(Vec::new());
                }
                Ok(vec![DishEvent::DishMoved { position, at }])
            }
            DishCommand::SetOptions { groups, at } => {
                let dish = self.listed.as_ref().ok_or(DishError::DishNotFound)?;
                let groups = valid_option_groups(groups, &dish.price.currency)?;
                if dish.options == groups {
                    return Ok(Vec::new());
                }
                Ok(vec![DishEvent::DishOptionsChanged { groups, at }])
            }
        }
    }
}

/// `new` if it differs from `current`.
fn changed<T: PartialEq>(new: Option<T>, current: &T) -> Option<T> {
    new.filter(|value| value != current)
}

/// Trims `value` and checks it is non-blank (when `required`) and at most `max` characters.
fn text(field: &'static str, value: &str, max: usize, required: bool) -> Result<String, DishError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(DishError::Blank { field });
    }
    if char_len(value) > max {
        return Err(DishError::TooLong { field, max });
    }
    Ok(value.to_owned())
}

fn valid_name(name: &str) -> Result<String, DishError> {
    text("name", name, Dish::MAX_NAME_CHARS, true)
}

fn valid_description(description: &str) -> Result<String, DishError> {
    text(
        "description",
        description,
        Dish::MAX_DESCRIPTION_CHARS,
        false,
    )
}

fn valid_category(category: &str) -> Result<String, DishError> {
    text("category", category, Dish::MAX_CATEGORY_CHARS, true)
}

fn valid_station(station: &str) -> Result<String, DishError> {
    text("station", station, Dish::MAX_STATION_CHARS, true).map(|s| s.to_lowercase())
}

fn valid_price(price: Money) -> Result<Money, DishError> {
    if !price.has_valid_currency() {
        return Err(DishError::InvalidCurrency {
            currency: price.currency,
        });
    }
    if !(1..=Dish::MAX_PRICE).contains(&price.amount) {
        return Err(DishError::InvalidPrice {
            amount: price.amount,
        });
    }
    Ok(price)
}

fn valid_prep_minutes(minutes: u32) -> Result<u32, DishError> {
    if (1..=Dish::MAX_PREP_MINUTES).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(DishError::InvalidPrepMinutes { minutes })
    }
}

/// Sorted and deduplicated, so equal sets compare equal.
fn normalized<T: Ord>(mut values: Vec<T>) -> Vec<T> {
    values.sort_unstable();
    values.dedup();
    values
}

/// A trimmed http(s) URL without spaces, or `None` for a blank one (no photo).
fn valid_photo_url(url: Option<String>) -> Result<Option<String>, DishError> {
    let Some(url) = non_blank(url) else {
        return Ok(None);
    };
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok
        || url.chars().any(char::is_whitespace)
        || char_len(&url) > Dish::MAX_PHOTO_URL_CHARS
    {
        return Err(DishError::InvalidPhotoUrl {
            max: Dish::MAX_PHOTO_URL_CHARS,
        });
    }
    Ok(Some(url))
}

impl Aggregate for Dish {
    const TYPE: &'static str = "dish";
    type Command = DishCommand;
    type Event = DishEvent;
    type Error = DishError;
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
            DishEvent::DishAdded {
                dish_id,
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                available,
                at: _,
            } => {
                self.listed = Some(ListedDish {
                    dish_id,
                    name,
                    description,
                    category,
                    price,
                    allergens,
                    available,
                    station,
                    prep_minutes,
                    dietary_tags: Vec::new(),
                    photo_url: None,
                    visible: true,
                    position: 0,
                    options: Vec::new(),
                });
            }
            DishEvent::DishUpdated {
                name,
                description,
                category,
                price,
                allergens,
                station,
                prep_minutes,
                at: _,
            } => {
                let Some(dish) = &mut self.listed else { return };
                if let Some(name) = name {
                    dish.name = name;
                }
                if let Some(description) = description {
                    dish.description = description;
                }
                if let Some(category) = category {
                    dish.category = category;
                }
                if let Some(price) = price {
                    dish.price = price;
                }
                if let Some(allergens) = allergens {
                    dish.allergens = allergens;
                }
                if let Some(station) = station {
                    dish.station = station;
                }
                if let Some(prep_minutes) = prep_minutes {
                    dish.prep_minutes = prep_minutes;
                }
            }
            DishEvent::DishAvailabilityChanged { available, .. } => {
                if let Some(dish) = &mut self.listed {
                    dish.available = available;
                }
            }
            DishEvent::DishPresentationChanged {
                dietary_tags,
                photo_url,
                ..
            } => {
                if let Some(dish) = &mut self.listed {
                    dish.dietary_tags = dietary_tags;
                    dish.photo_url = photo_url;
                }
            }
            DishEvent::DishVisibilityChanged { visible, .. } => {
                if let Some(dish) = &mut self.listed {
                    dish.visible = visible;
                }
            }
            DishEvent::DishMoved { position, .. } => {
                if let Some(dish) = &mut self.listed {
                    dish.position = position;
                }
            }
            DishEvent::DishOptionsChanged { groups, .. } => {
                if let Some(dish) = &mut self.listed {
                    dish.options = groups;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::test_support::{at, handle_then_reload};

    type DishTest = TestFramework<Dish>;

    const DISH: Uuid = Uuid::from_u128(10);

    fn add() -> DishCommand {
        DishCommand::Add {
            dish_id: DISH,
            name: "  Crème brûlée ".into(),
            description: "Vanilla custard, caramelised sugar".into(),
            category: "Desserts".into(),
            price: Money::eur(750),
            allergens: vec![Allergen::Milk, Allergen::Eggs, Allergen::Milk],
            station: Some("Pastry".into()),
            prep_minutes: 5,
            available: true,
            at: at(0),
        }
    }

    fn added() -> DishEvent {
        DishEvent::DishAdded {
            dish_id: DISH,
            name: "Crème brûlée".into(),
            description: "Vanilla custard, caramelised sugar".into(),
            category: "Desserts".into(),
            price: Money::eur(750),
            allergens: vec![Allergen::Eggs, Allergen::Milk],
            station: "pastry".into(),
            prep_minutes: 5,
            available: true,
            at: at(0),
        }
    }

    /// The fields of an update, so tests can name only those they change.
    #[derive(Default)]
    struct Changes {
        name: Option<String>,
        description: Option<String>,
        category: Option<String>,
        price: Option<Money>,
        allergens: Option<Vec<Allergen>>,
        station: Option<String>,
        prep_minutes: Option<u32>,
    }

    impl Changes {
        fn command(self) -> DishCommand {
            DishCommand::Update {
                name: self.name,
                description: self.description,
                category: self.category,
                price: self.price,
                allergens: self.allergens,
                station: self.station,
                prep_minutes: self.prep_minutes,
                at: at(1),
            }
        }

        fn event(self) -> DishEvent {
            DishEvent::DishUpdated {
                name: self.name,
                description: self.description,
                category: self.category,
                price: self.price,
                allergens: self.allergens,
                station: self.station,
                prep_minutes: self.prep_minutes,
                at: at(1),
            }
        }
    }

    fn add_with(change: impl FnOnce(&mut DishCommand)) -> DishCommand {
        let mut command = add();
        change(&mut command);
        command
    }

    #[test]
    fn a_manager_adds_a_dish_with_normalized_text() {
        DishTest::with(())
            .given_no_previous_events()
            .when(add())
            .then_expect_events(vec![added()]);
    }

    #[test]
    fn a_dish_without_a_station_is_cooked_at_the_main_station() {
        let events = DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { station, .. } = c {
                    *station = None;
                }
            }))
            .inspect_result()
            .expect("the dish is added");
        assert!(matches!(
            &events[..],
            [DishEvent::DishAdded { station, .. }] if station == "main"
        ));
    }

    #[test]
    fn a_dish_cannot_be_added_twice() {
        DishTest::with(())
            .given(vec![added()])
            .when(add())
            .then_expect_error(DishError::DishAlreadyExists);
    }

    #[test]
    fn a_dish_needs_a_name_of_at_most_eighty_characters() {
        DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { name, .. } = c {
                    *name = "   ".into();
                }
            }))
            .then_expect_error(DishError::Blank { field: "name" });
        DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { name, .. } = c {
                    *name = "n".repeat(81);
                }
            }))
            .then_expect_error_message("dish name is longer than 80 characters");
    }

    #[test]
    fn a_dish_needs_a_category_and_a_short_description() {
        DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { category, .. } = c {
                    *category = String::new();
                }
            }))
            .then_expect_error(DishError::Blank { field: "category" });
        DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { description, .. } = c {
                    *description = "d".repeat(501);
                }
            }))
            .then_expect_error(DishError::TooLong {
                field: "description",
                max: 500,
            });
    }

    #[test]
    fn a_dish_price_is_positive_and_sane() {
        for amount in [0, -100, 10_000_001] {
            DishTest::with(())
                .given_no_previous_events()
                .when(add_with(|c| {
                    if let DishCommand::Add { price, .. } = c {
                        *price = Money::eur(amount);
                    }
                }))
                .then_expect_error(DishError::InvalidPrice { amount });
        }
        DishTest::with(())
            .given_no_previous_events()
            .when(add_with(|c| {
                if let DishCommand::Add { price, .. } = c {
                    *price = Money::new(100, "euro");
                }
            }))
            .then_expect_error(DishError::InvalidCurrency {
                currency: "euro".into(),
            });
    }

    #[test]
    fn a_dish_takes_between_one_and_two_hundred_forty_minutes() {
        for minutes in [0, 241] {
            DishTest::with(())
                .given_no_previous_events()
                .when(add_with(|c| {
                    if let DishCommand::Add { prep_minutes, .. } = c {
                        *prep_minutes = minutes;
                    }
                }))
                .then_expect_error(DishError::InvalidPrepMinutes { minutes });
        }
    }

    #[test]
    fn an_update_records_only_what_changed() {
        DishTest::with(())
            .given(vec![added()])
            .when(
                Changes {
                    name: Some("Crème brûlée".into()),
                    price: Some(Money::eur(850)),
                    allergens: Some(vec![Allergen::Milk, Allergen::Eggs]),
                    station: Some("GRILL".into()),
                    ..Changes::default()
                }
                .command(),
            )
            .then_expect_events(vec![Changes {
                price: Some(Money::eur(850)),
                station: Some("grill".into()),
                ..Changes::default()
            }
            .event()]);
    }

    #[test]
    fn an_update_that_changes_nothing_records_nothing() {
        DishTest::with(())
            .given(vec![added()])
            .when(
                Changes {
                    name: Some(" Crème brûlée".into()),
                    prep_minutes: Some(5),
                    ..Changes::default()
                }
                .command(),
            )
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_update_is_validated_like_an_addition() {
        DishTest::with(())
            .given(vec![added()])
            .when(
                Changes {
                    price: Some(Money::eur(0)),
                    ..Changes::default()
                }
                .command(),
            )
            .then_expect_error(DishError::InvalidPrice { amount: 0 });
        DishTest::with(())
            .given(vec![added()])
            .when(
                Changes {
                    station: Some(" ".into()),
                    ..Changes::default()
                }
                .command(),
            )
            .then_expect_error(DishError::Blank { field: "station" });
    }

    #[test]
    fn an_unknown_dish_cannot_be_updated_or_withdrawn() {
        DishTest::with(())
            .given_no_previous_events()
            .when(Changes::default().command())
            .then_expect_error(DishError::DishNotFound);
        DishTest::with(())
            .given_no_previous_events()
            .when(DishCommand::ChangeAvailability {
                available: false,
                reason: None,
                at: at(2),
            })
            .then_expect_error(DishError::DishNotFound);
    }

    #[test]
    fn a_sold_out_dish_is_taken_off_the_menu() {
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::ChangeAvailability {
                available: false,
                reason: Some(" sold out ".into()),
                at: at(2),
            })
            .then_expect_events(vec![DishEvent::DishAvailabilityChanged {
                available: false,
                reason: Some("sold out".into()),
                at: at(2),
            }]);
    }

    #[test]
    fn setting_the_same_availability_records_nothing() {
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::ChangeAvailability {
                available: true,
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_state_after_handling_equals_the_state_reloaded_from_events() {
        let (handled, reloaded, _) = handle_then_reload::<Dish>(vec![], add());
        assert_eq!(handled, reloaded);
        let (handled, reloaded, emitted) = handle_then_reload::<Dish>(
            vec![added()],
            Changes {
                category: Some("Sweets".into()),
                ..Changes::default()
            }
            .command(),
        );
        assert_eq!(emitted.len(), 1);
        assert_eq!(handled, reloaded);
        assert_eq!(handled.category(), Some("Sweets"));
        assert_eq!(handled.name(), Some("Crème brûlée"));
        assert_eq!(handled.allergens(), [Allergen::Eggs, Allergen::Milk]);
        assert_eq!(handled.station(), Some("pastry"));
        assert!(handled.is_available());
        assert!(!Dish::default().is_available());
    }

    #[test]
    fn a_dish_is_presented_with_sorted_tags_and_a_photo() {
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::Present {
                dietary_tags: vec![
                    DietaryTag::Vegetarian,
                    DietaryTag::GlutenFree,
                    DietaryTag::Vegetarian,
                ],
                photo_url: Some(" https://img.brigade.dev/creme-brulee.jpg ".into()),
                at: at(3),
            })
            .then_expect_events(vec![DishEvent::DishPresentationChanged {
                dietary_tags: vec![DietaryTag::Vegetarian, DietaryTag::GlutenFree],
                photo_url: Some("https://img.brigade.dev/creme-brulee.jpg".into()),
                at: at(3),
            }]);
    }

    #[test]
    fn a_photo_must_be_a_web_address() {
        for url in [
            "ftp://x/y.jpg",
            "javascript:alert(1)",
            "https://a b.jpg",
            &format!("https://{}", "x".repeat(500)),
        ] {
            DishTest::with(())
                .given(vec![added()])
                .when(DishCommand::Present {
                    dietary_tags: vec![],
                    photo_url: Some(url.to_owned()),
                    at: at(3),
                })
                .then_expect_error(DishError::InvalidPhotoUrl { max: 500 });
        }
    }

    #[test]
    fn the_same_presentation_records_nothing() {
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::Present {
                dietary_tags: vec![],
                photo_url: Some("  ".into()),
                at: at(3),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_manager_hides_and_moves_a_dish() {
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::ChangeVisibility {
                visible: false,
                at: at(4),
            })
            .then_expect_events(vec![DishEvent::DishVisibilityChanged {
                visible: false,
                at: at(4),
            }]);
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::ChangeVisibility {
                visible: true,
                at: at(4),
            })
            .then_expect_events(vec![]);
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::Move {
                position: 2,
                at: at(5),
            })
            .then_expect_events(vec![DishEvent::DishMoved {
                position: 2,
                at: at(5),
            }]);
        DishTest::with(())
            .given_no_previous_events()
            .when(DishCommand::Move {
                position: 2,
                at: at(5),
            })
            .then_expect_error(DishError::DishNotFound);
    }

    #[test]
    fn presentation_visibility_and_position_survive_a_reload() {
        let given = vec![
            added(),
            DishEvent::DishVisibilityChanged {
                visible: false,
                at: at(4),
            },
            DishEvent::DishMoved {
                position: 3,
                at: at(5),
            },
        ];
        let (handled, reloaded, _) = handle_then_reload::<Dish>(
            given,
            DishCommand::Present {
                dietary_tags: vec![DietaryTag::Vegan],
                photo_url: Some("https://img.brigade.dev/x.jpg".into()),
                at: at(6),
            },
        );
        assert_eq!(handled, reloaded);
        assert_eq!(handled.dietary_tags(), [DietaryTag::Vegan]);
        assert_eq!(handled.photo_url(), Some("https://img.brigade.dev/x.jpg"));
        assert!(!handled.is_visible());
        assert_eq!(handled.position(), Some(3));
        let fresh = handle_then_reload::<Dish>(vec![], add()).0;
        assert!(fresh.is_visible());
        assert_eq!(fresh.position(), Some(0));
    }

    fn cooking() -> Vec<OptionGroup> {
        vec![OptionGroup {
            id: Uuid::from_u128(100),
            name: " Cuisson".into(),
            min_choices: 1,
            max_choices: 1,
            choices: ["saignant", "à point"]
                .into_iter()
                .zip(101..)
                .map(|(name, id)| crate::ordering::OptionChoice {
                    id: Uuid::from_u128(id),
                    name: name.into(),
                    price_delta: Money::eur(0),
                })
                .collect(),
        }]
    }

    #[test]
    fn a_manager_sets_options_and_they_survive_a_reload() {
        let (handled, reloaded, emitted) = handle_then_reload::<Dish>(
            vec![added()],
            DishCommand::SetOptions {
                groups: cooking(),
                at: at(6),
            },
        );
        assert_eq!(handled, reloaded);
        assert!(matches!(
            &emitted[..],
            [DishEvent::DishOptionsChanged { groups, .. }] if groups[0].name == "Cuisson"
        ));
        assert_eq!(handled.options()[0].choices.len(), 2);
        assert_eq!(emitted[0].subject_suffix(), "options_changed");
        assert_eq!(emitted[0].event_type(), "DishOptionsChanged");
    }

    #[test]
    fn the_same_options_record_nothing_and_invalid_ones_nothing_either() {
        let mut groups = cooking();
        groups[0].name = "Cuisson".into();
        let set = DishEvent::DishOptionsChanged {
            groups: groups.clone(),
            at: at(6),
        };
        DishTest::with(())
            .given(vec![added(), set])
            .when(DishCommand::SetOptions {
                groups: cooking(),
                at: at(7),
            })
            .then_expect_events(vec![]);
        groups[0].min_choices = 2;
        DishTest::with(())
            .given(vec![added()])
            .when(DishCommand::SetOptions { groups, at: at(7) })
            .then_expect_error(DishError::InvalidOptionLimits {
                field: "options/0/minChoices".into(),
            });
        DishTest::with(())
            .given_no_previous_events()
            .when(DishCommand::SetOptions {
                groups: cooking(),
                at: at(7),
            })
            .then_expect_error(DishError::DishNotFound);
    }

    #[test]
    fn a_dish_with_options_keeps_their_currency() {
        let mut groups = cooking();
        groups[0].name = "Cuisson".into();
        DishTest::with(())
            .given(vec![
                added(),
                DishEvent::DishOptionsChanged { groups, at: at(6) },
            ])
            .when(
                Changes {
                    price: Some(Money::new(900, "CHF")),
                    ..Changes::default()
                }
                .command(),
            )
            .then_expect_error(DishError::InvalidOptionPrice {
                field: "options/0/choices/0/priceDelta".into(),
                currency: "CHF".into(),
            });
    }

    #[test]
    fn a_dish_stored_before_options_reads_without_any() {
        let json = serde_json::json!({"DishAdded": {
            "dishId": DISH, "name": "Soupe", "description": "", "category": "Entrées",
            "price": {"amount": 800, "currency": "EUR"}, "allergens": [], "station": "main",
            "prepMinutes": 5, "available": true, "at": at(0)
        }});
        let event: DishEvent = serde_json::from_value(json).expect("an old event reads");
        let mut dish = Dish::default();
        dish.apply(event);
        assert!(dish.options().is_empty());
    }

    #[test]
    fn dish_events_name_their_type_and_subject() {
        let event = DishEvent::DishAvailabilityChanged {
            available: false,
            reason: None,
            at: at(2),
        };
        assert_eq!(event.event_type(), "DishAvailabilityChanged");
        assert_eq!(event.subject_suffix(), "availability_changed");
        assert_eq!(added().subject_suffix(), "added");
        assert_eq!(Changes::default().event().subject_suffix(), "updated");
        let json = serde_json::to_value(added()).expect("an event serializes");
        assert_eq!(json["DishAdded"]["prepMinutes"], 5);
        assert_eq!(json["DishAdded"]["allergens"][0], "eggs");
        assert_eq!(DishError::DishNotFound.code(), "dish-not-found");
        assert_eq!(
            DishEvent::DishMoved {
                position: 1,
                at: at(5)
            }
            .subject_suffix(),
            "moved"
        );
        let presented = DishEvent::DishPresentationChanged {
            dietary_tags: vec![DietaryTag::GlutenFree],
            photo_url: None,
            at: at(3),
        };
        assert_eq!(presented.event_type(), "DishPresentationChanged");
        assert_eq!(presented.subject_suffix(), "presentation_changed");
        let json = serde_json::to_value(presented).expect("an event serializes");
        assert_eq!(
            json["DishPresentationChanged"]["dietaryTags"][0],
            "gluten_free"
        );
    }
}
