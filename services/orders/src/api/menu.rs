//! The menu endpoints: anyone reads the menu; managers add, change, hide, move and sell out
//! dishes, and see the hidden ones.
//!
//! Reads come from the menu read model, which follows the `Dish` events within milliseconds;
//! a manager's change is answered from the aggregate itself, so the answer never lags.

use brigade_domain::ordering::{valid_option_groups, Dish, DishCommand, OptionChoice, OptionGroup};
use brigade_domain::Money;
use brigade_domain::Role;
use brigade_nats::store::{self, EventStore};
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::Problem;
use brigade_projections::menu::{self, AllergenName, Amount, DietaryTagName, Menu, MenuDish};
use chrono::Utc;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sqlx::PgPool;
use uuid::Uuid;

use super::problems::dish_problem;
use super::OrdersTags;

/// Preparation time of a dish added without one.
const DEFAULT_PREP_MINUTES: u32 = 10;

/// A new dish.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NewDish {
    pub name: String,
    #[oai(default)]
    pub description: String,
    /// `Entrées`, `Plats`, `Desserts`, `Boissons`, or a new category.
    pub category: String,
    pub price: Amount,
    #[oai(default)]
    pub allergens: Vec<AllergenName>,
    /// Kitchen station (`grill`, `cold`, `pastry`, `bar`, ...); `main` when left out.
    pub station: Option<String>,
    /// Minutes to prepare one; 10 when left out.
    pub prep_minutes: Option<u32>,
    /// Whether it can be ordered at once; true when left out.
    pub available: Option<bool>,
    #[oai(default)]
    pub dietary_tags: Vec<DietaryTagName>,
    /// An http(s) URL of the dish's photo.
    #[oai(validator(max_length = 500, pattern = r"^https?://\S+$"))]
    pub photo_url: Option<String>,
    /// False adds it hidden from customers; true when left out.
    pub visible: Option<bool>,
    /// Position within its category; 0 when left out (then listed in the order added).
    pub position: Option<u32>,
    /// Option groups the customer picks from (cooking, supplements, size…); none when left
    /// out. At most 10 groups of 1 to 20 choices, names unique and at most 60 characters.
    #[oai(default)]
    pub options: Vec<NewOptionGroup>,
}

/// An option group of a dish, as a manager sets it.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct NewOptionGroup {
    /// Keep the id the menu shows when editing a group (carts refer to it); a new group
    /// leaves it out and gets one.
    pub id: Option<Uuid>,
    /// "Cuisson", "Supplément", unique within the dish.
    pub name: String,
    /// Fewest choices to pick; 1 or more makes the group required. 0 when left out.
    #[oai(default)]
    pub min_choices: u32,
    /// Most choices to pick (at least 1, at most the number of choices); 1 when left out.
    pub max_choices: Option<u32>,
    pub choices: Vec<NewOptionChoice>,
}

/// One choice of an option group, as a manager sets it.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct NewOptionChoice {
    /// Keep the id the menu shows when editing a choice; a new one leaves it out.
    pub id: Option<Uuid>,
    /// "saignant", "fromage", unique within the group.
    pub name: String,
    /// Added to the dish's price when picked: 0 to 1000.00, in the dish's currency; 0 when
    /// left out.
    pub price_delta: Option<Amount>,
}

/// The groups as the `Dish` aggregate takes them, with ids given to new groups and choices,
/// checked against the dish's `currency` before anything is applied (so an invalid group never
/// leaves a dish half added or half changed).
fn option_groups(groups: Vec<NewOptionGroup>, currency: &str) -> Result<Vec<OptionGroup>, Problem> {
    let groups = groups
        .into_iter()
        .map(|group| OptionGroup {
            id: group.id.unwrap_or_else(Uuid::new_v4),
            name: group.name,
            min_choices: group.min_choices,
            max_choices: group.max_choices.unwrap_or(1),
            choices: group
                .choices
                .into_iter()
                .map(|choice| OptionChoice {
                    id: choice.id.unwrap_or_else(Uuid::new_v4),
                    name: choice.name,
                    price_delta: choice
                        .price_delta
                        .map_or_else(|| Money::zero(currency), Into::into),
                })
                .collect(),
        })
        .collect();
    valid_option_groups(groups, currency).map_err(dish_problem)
}

/// Changes to a dish: only the fields given change.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DishChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub price: Option<Amount>,
    pub allergens: Option<Vec<AllergenName>>,
    pub station: Option<String>,
    pub prep_minutes: Option<u32>,
    /// False takes the dish off the menu (sold out); true puts it back.
    pub available: Option<bool>,
    /// Why it is unavailable ("sold out"), with `available: false`. Checked before anything is
    /// applied (at most 200 characters, as the aggregate allows), so a change is never half done.
    #[oai(validator(max_length = 200))]
    pub unavailable_reason: Option<String>,
    pub dietary_tags: Option<Vec<DietaryTagName>>,
    /// An http(s) URL of the dish's photo; `null` removes it. Checked before anything is
    /// applied.
    #[oai(validator(max_length = 500, pattern = r"^https?://\S+$"))]
    pub photo_url: MaybeUndefined<String>,
    /// False hides the dish from customers (it cannot be ordered); true shows it again.
    pub visible: Option<bool>,
    /// Position within its category (dishes are listed by position, then in the order added).
    pub position: Option<u32>,
    /// The dish's option groups, all of them (`[]` removes them); send back the `id`s the
    /// menu shows for the groups and choices that stay. Checked before anything is applied.
    pub options: Option<Vec<NewOptionGroup>>,
}

impl DishChanges {
    /// The `Update` command for the fields other than availability, if any is given.
    fn update(&mut self) -> Option<DishCommand> {
        let any = self.name.is_some()
            || self.description.is_some()
            || self.category.is_some()
            || self.price.is_some()
            || self.allergens.is_some()
            || self.station.is_some()
            || self.prep_minutes.is_some();
        any.then(|| DishCommand::Update {
            name: self.name.take(),
            description: self.description.take(),
            category: self.category.take(),
            price: self.price.take().map(Into::into),
            allergens: self
                .allergens
                .take()
                .map(|allergens| allergens.into_iter().map(Into::into).collect()),
            station: self.station.take(),
            prep_minutes: self.prep_minutes.take(),
            at: Utc::now(),
        })
    }
}

#[derive(ApiResponse)]
enum DishCreated {
    /// The dish is on the menu.
    #[oai(status = 201)]
    Created(Json<MenuDish>),
}

/// The menu endpoints.
pub struct MenuApi {
    pub pool: PgPool,
    pub dishes: EventStore<Dish>,
}

#[OpenApi(tag = "OrdersTags::Menu")]
impl MenuApi {
    /// The menu, by category: every dish customers may see, with its price, allergens,
    /// dietary tags and availability.
    #[oai(path = "/menu", method = "get")]
    async fn menu(&self) -> Result<Json<Menu>, Problem> {
        menu::menu(&self.pool, false)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// The manager's menu: the same, hidden dishes included.
    #[oai(path = "/menu/dishes", method = "get")]
    async fn all_dishes(&self, auth: BearerAuth) -> Result<Json<Menu>, Problem> {
        auth.0.require(&[Role::Manager])?;
        menu::menu(&self.pool, true)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// One dish of the menu.
    #[oai(path = "/menu/dishes/:dish_id", method = "get")]
    async fn dish(&self, dish_id: Path<Uuid>) -> Result<Json<MenuDish>, Problem> {
        menu::dish(&self.pool, dish_id.0)
            .await
            .map_err(|e| read_problem(&e))?
            .map(Json)
            .ok_or_else(|| dish_not_found(dish_id.0))
    }

    /// Adds a dish to the menu (manager).
    #[oai(path = "/menu/dishes", method = "post")]
    async fn add_dish(
        &self,
        auth: BearerAuth,
        body: Json<NewDish>,
    ) -> Result<DishCreated, Problem> {
        auth.0.require(&[Role::Manager])?;
        let dish_id = Uuid::new_v4();
        let new = body.0;
        let options = option_groups(new.options, &new.price.currency)?;
        let command = DishCommand::Add {
            dish_id,
            name: new.name,
            description: new.description,
            category: new.category,
            price: new.price.into(),
            allergens: new.allergens.into_iter().map(Into::into).collect(),
            station: new.station,
            prep_minutes: new.prep_minutes.unwrap_or(DEFAULT_PREP_MINUTES),
            available: new.available.unwrap_or(true),
            at: Utc::now(),
        };
        self.execute(&auth, dish_id, command).await?;
        if !new.dietary_tags.is_empty() || new.photo_url.is_some() {
            let command = DishCommand::Present {
                dietary_tags: new.dietary_tags.into_iter().map(Into::into).collect(),
                photo_url: new.photo_url,
                at: Utc::now(),
            };
            self.execute(&auth, dish_id, command).await?;
        }
        if !options.is_empty() {
            let command = DishCommand::SetOptions {
                groups: options,
                at: Utc::now(),
            };
            self.execute(&auth, dish_id, command).await?;
        }
        self.arrange(&auth, dish_id, new.visible, new.position)
            .await?;
        Ok(DishCreated::Created(Json(
            self.current(dish_id, None).await?,
        )))
    }

    /// Changes a dish (manager): any of its fields, its presentation, its options, its
    /// visibility, its position, and its availability (sold out or back). Orders already placed keep the name
    /// and price they were placed with.
    #[oai(path = "/menu/dishes/:dish_id", method = "patch")]
    async fn change_dish(
        &self,
        auth: BearerAuth,
        dish_id: Path<Uuid>,
        body: Json<DishChanges>,
    ) -> Result<Json<MenuDish>, Problem> {
        auth.0.require(&[Role::Manager])?;
        let dish_id = dish_id.0;
        let mut changes = body.0;
        let options = match changes.options.take() {
            Some(groups) => {
                let currency = match &changes.price {
                    Some(price) => price.currency.clone(),
                    None => self.current(dish_id, None).await?.price.currency,
                };
                Some(option_groups(groups, &currency)?)
            }
            None => None,
        };
        if let Some(update) = changes.update() {
            self.execute(&auth, dish_id, update).await?;
        }
        if changes.dietary_tags.is_some() || !changes.photo_url.is_undefined() {
            // The presentation is recorded whole: what is not given stays as it is.
            let current = self.current(dish_id, None).await?;
            let command = DishCommand::Present {
                dietary_tags: changes
                    .dietary_tags
                    .take()
                    .unwrap_or(current.dietary_tags)
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                photo_url: match std::mem::take(&mut changes.photo_url) {
                    MaybeUndefined::Undefined => current.photo_url,
                    MaybeUndefined::Null => None,
                    MaybeUndefined::Value(url) => Some(url),
                },
                at: Utc::now(),
            };
            self.execute(&auth, dish_id, command).await?;
        }
        if let Some(groups) = options {
            let command = DishCommand::SetOptions {
                groups,
                at: Utc::now(),
            };
            self.execute(&auth, dish_id, command).await?;
        }
        self.arrange(&auth, dish_id, changes.visible, changes.position)
            .await?;
        let mut reason = None;
        if let Some(available) = changes.available {
            reason = changes.unavailable_reason.take().filter(|_| !available);
            let command = DishCommand::ChangeAvailability {
                available,
                reason: reason.clone(),
                at: Utc::now(),
            };
            self.execute(&auth, dish_id, command).await?;
        }
        Ok(Json(self.current(dish_id, reason).await?))
    }
}

impl MenuApi {
    /// Hides or shows the dish, and moves it, when asked to.
    async fn arrange(
        &self,
        auth: &BearerAuth,
        dish_id: Uuid,
        visible: Option<bool>,
        position: Option<u32>,
    ) -> Result<(), Problem> {
        if let Some(visible) = visible {
            let command = DishCommand::ChangeVisibility {
                visible,
                at: Utc::now(),
            };
            self.execute(auth, dish_id, command).await?;
        }
        if let Some(position) = position {
            let command = DishCommand::Move {
                position,
                at: Utc::now(),
            };
            self.execute(auth, dish_id, command).await?;
        }
        Ok(())
    }

    async fn execute(
        &self,
        auth: &BearerAuth,
        dish_id: Uuid,
        command: DishCommand,
    ) -> Result<(), Problem> {
        let metadata = auth.0.command_metadata(dish_id.to_string())?;
        store::execute_deciding_again(&self.dishes, &dish_id.to_string(), &command, &metadata)
            .await
            .map_err(|e| command_problem(e, dish_problem))
    }

    /// The dish as the aggregate has it now (the read model may lag a few milliseconds).
    async fn current(
        &self,
        dish_id: Uuid,
        unavailable_reason: Option<String>,
    ) -> Result<MenuDish, Problem> {
        let loaded = store::load::<Dish>(&self.pool, &dish_id.to_string())
            .await
            .map_err(|e| command_problem(e, dish_problem))?;
        let mut dish =
            MenuDish::from_aggregate(&loaded.aggregate).ok_or_else(|| dish_not_found(dish_id))?;
        dish.unavailable_reason = unavailable_reason;
        Ok(dish)
    }
}

fn dish_not_found(dish_id: Uuid) -> Problem {
    Problem::not_found("dish-not-found", format!("no dish {dish_id} on the menu"))
}
