//! The fleet: managers hire, edit and remove couriers; couriers start and end their shifts
//! and send their positions.
//!
//! A courier's id is their sign-in account's id when they have one (hired from identity's
//! events, or by a manager naming the account), so `/couriers/me/...` needs no lookup.

use brigade_domain::delivery::{Courier, CourierCommand};
use brigade_domain::Role;
use brigade_nats::store;
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::Problem;
use brigade_projections::couriers::{self, CourierView, Position, VehicleKind};
use brigade_projections::{feed, live_deliveries};
use chrono::Utc;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::{courier_problem, problems, Context, DeliveryTags};
use crate::{dispatch, geo, notifications, route};

/// A courier to hire.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct HireCourier {
    pub name: String,
    pub phone: Option<String>,
    pub vehicle: VehicleKind,
    /// The courier's sign-in account (role courier); it then becomes the courier's id.
    pub account_id: Option<Uuid>,
}

/// Changes to a courier; absent fields stay as they are, a blank phone removes it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UpdateCourier {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub vehicle: Option<VehicleKind>,
    /// An inactive courier cannot take a shift; deactivating one on shift ends the shift.
    pub active: Option<bool>,
}

/// Starting or ending a shift.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Shift {
    pub on_shift: bool,
}

/// A position sent by a courier's phone.
#[derive(Debug, Object)]
pub struct NewPosition {
    /// Degrees, from -90 to 90.
    pub lat: f64,
    /// Degrees, from -180 to 180.
    pub lon: f64,
}

#[derive(ApiResponse)]
enum Hired {
    /// The courier was hired.
    #[oai(status = 201)]
    Created(Json<CourierView>),
}

#[derive(ApiResponse)]
enum Removed {
    /// The courier was removed from the fleet.
    #[oai(status = 204)]
    Removed,
}

/// The fleet endpoints.
pub struct CouriersApi(pub Context);

#[OpenApi(tag = "DeliveryTags::Couriers")]
impl CouriersApi {
    /// The fleet, by name, with each courier's last position.
    #[oai(path = "/couriers", method = "get")]
    async fn couriers(&self, auth: BearerAuth) -> Result<Json<Vec<CourierView>>, Problem> {
        auth.0.require(&[Role::Manager])?;
        couriers::all(&self.0.pool)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// Hires a courier: active, off shift.
    #[oai(path = "/couriers", method = "post")]
    async fn hire(&self, auth: BearerAuth, body: Json<HireCourier>) -> Result<Hired, Problem> {
        auth.0.require(&[Role::Manager])?;
        let HireCourier {
            name,
            phone,
            vehicle,
            account_id,
        } = body.0;
        let courier_id = account_id.unwrap_or_else(Uuid::new_v4);
        // `Hire` is idempotent for the event subscriptions' sake; a manager hiring an
        // account twice is told so.
        if self
            .load(courier_id)
            .await?
            .aggregate
            .courier_id()
            .is_some()
        {
            return Err(Problem::conflict(
                "courier-already-exists",
                "this account already has a courier",
            )
            .with_field("accountId"));
        }
        let command = CourierCommand::Hire {
            courier_id,
            account_id,
            name,
            phone,
            vehicle: vehicle.into(),
            at: Utc::now(),
        };
        self.execute(&auth, courier_id, command).await?;
        self.answer(courier_id)
            .await
            .map(|Json(courier)| Hired::Created(Json(courier)))
    }

    /// The calling courier's own profile, shift and position.
    #[oai(path = "/couriers/me", method = "get")]
    async fn me(&self, auth: BearerAuth) -> Result<Json<CourierView>, Problem> {
        auth.0.require(&[Role::Courier])?;
        self.view(auth.0.account_id).await
    }

    /// One courier.
    #[oai(path = "/couriers/:id", method = "get")]
    async fn courier(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> Result<Json<CourierView>, Problem> {
        auth.0.require(&[Role::Manager])?;
        self.view(id.0).await
    }

    /// Changes a courier's name, phone, vehicle or activity.
    #[oai(path = "/couriers/:id", method = "put")]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: Json<UpdateCourier>,
    ) -> Result<Json<CourierView>, Problem> {
        auth.0.require(&[Role::Manager])?;
        let UpdateCourier {
            name,
            phone,
            vehicle,
            active,
        } = body.0;
        let command = CourierCommand::Update {
            name,
            phone,
            vehicle: vehicle.map(Into::into),
            active,
            at: Utc::now(),
        };
        self.execute(&auth, id.0, command).await?;
        self.answer(id.0).await
    }

    /// Removes a courier from the fleet; refused (409) while they carry a delivery.
    #[oai(path = "/couriers/:id", method = "delete")]
    async fn remove(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Removed, Problem> {
        auth.0.require(&[Role::Manager])?;
        if dispatch::is_carrying(&self.0.pool, id.0)
            .await
            .map_err(|e| read_problem(&e))?
        {
            return Err(Problem::conflict(
                "courier-carrying-delivery",
                "this courier is carrying a delivery; reassign or finish it first",
            ));
        }
        self.execute(&auth, id.0, CourierCommand::Remove { at: Utc::now() })
            .await?;
        Ok(Removed::Removed)
    }

    /// The calling courier starts or ends a shift. Dispatch offers deliveries only to
    /// couriers on shift.
    #[oai(path = "/couriers/me/shift", method = "post")]
    async fn shift(
        &self,
        auth: BearerAuth,
        body: Json<Shift>,
    ) -> Result<Json<CourierView>, Problem> {
        auth.0.require(&[Role::Courier])?;
        let command = CourierCommand::SetShift {
            on_shift: body.0.on_shift,
            at: Utc::now(),
        };
        self.execute(&auth, auth.0.account_id, command).await?;
        self.answer(auth.0.account_id).await
    }

    /// The calling courier's position, several times a minute while on shift. Kept as the
    /// courier's last position (not as events) and pushed live to the pages of the
    /// deliveries they carry; near the door, the customer is told the food is arriving.
    /// While they carry food, a position every 30 s (or 100 m) is sampled into the
    /// delivery's route.
    #[oai(path = "/couriers/me/position", method = "post")]
    async fn position(
        &self,
        auth: BearerAuth,
        body: Json<NewPosition>,
    ) -> Result<Json<Position>, Problem> {
        auth.0.require(&[Role::Courier])?;
        let NewPosition { lat, lon } = body.0;
        geo::check_coordinates(lat, lon).map_err(|field| {
            Problem::unprocessable(
                "position-out-of-range",
                "a position needs a latitude from -90 to 90 and a longitude from -180 to 180",
            )
            .with_field(field)
        })?;
        let courier_id = auth.0.account_id;
        let courier = self.load(courier_id).await?.aggregate;
        if !courier.exists() {
            return Err(Problem::not_found(
                "courier-not-found",
                "you are not a courier of the fleet",
            ));
        }
        if !courier.is_on_shift() {
            return Err(Problem::conflict(
                "courier-off-shift",
                "start a shift before sending positions",
            ));
        }
        let position = Position {
            lat,
            lon,
            at: Utc::now(),
        };
        let mut tx = self.0.pool.begin().await.map_err(|e| read_problem(&e))?;
        couriers::record_position(&mut tx, courier_id, position)
            .await
            .map_err(|e| read_problem(&e))?;
        for order_id in live_deliveries::carried_by(&mut tx, courier_id)
            .await
            .map_err(|e| read_problem(&e))?
        {
            feed::record(&mut tx, live_deliveries::FEED, &order_id.to_string())
                .await
                .map_err(|e| read_problem(&e))?;
        }
        notifications::notify_arriving(&mut tx, courier_id, position)
            .await
            .map_err(|e| read_problem(&e))?;
        let full = route::sample(&mut tx, courier_id, position, self.0.route_batch)
            .await
            .map_err(|e| read_problem(&e))?;
        tx.commit().await.map_err(|e| read_problem(&e))?;
        for order_id in full {
            // The position is stored; a batch that fails to record waits for the next one.
            if let Err(error) =
                route::flush(&self.0.pool, &self.0.deliveries, order_id, false).await
            {
                tracing::warn!(%order_id, %error, "route samples not recorded yet");
            }
        }
        Ok(Json(position))
    }
}

impl CouriersApi {
    async fn view(&self, id: Uuid) -> Result<Json<CourierView>, Problem> {
        couriers::courier(&self.0.pool, id)
            .await
            .map_err(|e| read_problem(&e))?
            .map(Json)
            .ok_or_else(|| Problem::not_found("courier-not-found", format!("no courier {id}")))
    }

    async fn load(&self, id: Uuid) -> Result<store::Loaded<Courier>, Problem> {
        store::load::<Courier>(&self.0.pool, &id.to_string())
            .await
            .map_err(|e| command_problem(e, courier_problem))
    }

    async fn execute(
        &self,
        auth: &BearerAuth,
        id: Uuid,
        command: CourierCommand,
    ) -> Result<(), Problem> {
        let key = id.to_string();
        let metadata = auth.0.command_metadata(key.clone())?;
        store::execute_deciding_again(&self.0.couriers, &key, &command, &metadata)
            .await
            .map_err(|e| command_problem(e, courier_problem))
    }

    /// The courier as the aggregate now has it (the read model may lag a few milliseconds),
    /// with the last position from the read model.
    async fn answer(&self, id: Uuid) -> Result<Json<CourierView>, Problem> {
        let loaded = self.load(id).await?;
        let not_found = || Problem::not_found("courier-not-found", format!("no courier {id}"));
        if loaded.aggregate.is_removed() {
            return Err(not_found());
        }
        let mut courier =
            problems::courier_view(&loaded.aggregate, loaded.version).ok_or_else(not_found)?;
        courier.position = couriers::courier(&self.0.pool, id)
            .await
            .map_err(|e| read_problem(&e))?
            .and_then(|c| c.position);
        Ok(Json(courier))
    }
}
