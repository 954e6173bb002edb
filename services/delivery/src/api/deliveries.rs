//! Deliveries: the live list, one delivery with its courier's position and ETA (also as a
//! live stream) and its sampled route, a manager's assignment, and the assigned courier's
//! pickup, handover or failure.

use brigade_domain::delivery::{Courier, Delivery, DeliveryCommand, DeliveryError, DeliveryStatus};
use brigade_domain::Role;
use brigade_nats::store;
use brigade_platform::auth::BearerAuth;
use brigade_platform::problem::{command_problem, read_problem};
use brigade_platform::sse::EventStream;
use brigade_platform::Problem;
use brigade_projections::couriers;
use brigade_projections::feed;
use brigade_projections::live_deliveries::{self, CourierSummary, LiveDelivery};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::{delivery_problem, may_see, problems, Context, DeliveryTags};
use crate::dispatch::{self, Booking};
use crate::geo;
use crate::route::{self, RoutePointView};

/// A manager's choice of courier.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AssignCourier {
    pub courier_id: Uuid,
}

/// Proof of delivery.
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliverRequest {
    /// Who took the food ("the customer", "the concierge").
    pub received_by: Option<String>,
    pub note: Option<String>,
}

/// Why the courier could not deliver.
#[derive(Debug, Object)]
pub struct FailRequest {
    /// "customer absent", "address wrong".
    pub reason: String,
}

/// One change of a delivery, as pushed to its page: a status change or a new courier position.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryChange {
    /// Also the SSE `id`: send it back as `Last-Event-ID` to resume.
    pub change_id: i64,
    pub delivery: LiveDelivery,
}

/// One delivery with the route its courier took with the food.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[oai(flatten)]
    pub delivery: LiveDelivery,
    /// The courier's way since pickup, sampled every 30 s or 100 m, oldest point first;
    /// empty until the food is picked up.
    pub route: Vec<RoutePointView>,
}

/// The delivery endpoints.
pub struct DeliveriesApi(pub Context);

#[OpenApi(tag = "DeliveryTags::Deliveries")]
impl DeliveriesApi {
    /// Deliveries in progress (not delivered, failed or cancelled), oldest order first: a
    /// courier sees their own, a manager all of them.
    #[oai(path = "/deliveries", method = "get")]
    async fn deliveries(&self, auth: BearerAuth) -> Result<Json<Vec<LiveDelivery>>, Problem> {
        auth.0.require(&[Role::Courier, Role::Manager])?;
        let courier = auth.0.is(Role::Courier).then_some(auth.0.account_id);
        let mut deliveries = live_deliveries::in_progress(&self.0.pool, courier)
            .await
            .map_err(|e| read_problem(&e))?;
        let now = Utc::now();
        for delivery in &mut deliveries {
            delivery.eta = geo::eta(delivery, self.0.restaurant, now);
        }
        Ok(Json(deliveries))
    }

    /// The dispatch queue: deliveries ready for pickup that no courier has yet, longest
    /// waiting first.
    #[oai(path = "/dispatch/queue", method = "get")]
    async fn queue(&self, auth: BearerAuth) -> Result<Json<Vec<LiveDelivery>>, Problem> {
        auth.0.require(&[Role::Manager])?;
        live_deliveries::waiting_for_courier(&self.0.pool, 500)
            .await
            .map(Json)
            .map_err(|e| read_problem(&e))
    }

    /// One delivery, whatever its state, with the courier's last position and ETA while on
    /// the way, and the route sampled since pickup: for the order's customer, its courier and
    /// the manager.
    #[oai(path = "/deliveries/:order_id", method = "get")]
    async fn delivery(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<DeliveryDetail>, Problem> {
        let delivery = self.visible(&auth, order_id.0).await?;
        let route = route::route(&self.0.pool, order_id.0)
            .await
            .map_err(|e| match e {
                route::RouteError::Database(e) => read_problem(&e),
                other @ route::RouteError::Command(_) => Problem::internal(&other),
            })?;
        Ok(Json(DeliveryDetail { delivery, route }))
    }

    /// The delivery live (server-sent events): one `delivery` event with the whole delivery
    /// at each status change and each courier position. Resume with `Last-Event-ID`.
    #[oai(path = "/deliveries/:order_id/stream", method = "get")]
    async fn stream(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
    ) -> Result<EventStream<futures::stream::BoxStream<'static, DeliveryChange>>, Problem> {
        self.visible(&auth, order_id.0).await?;
        let pool = self.0.pool.clone();
        let restaurant = self.0.restaurant;
        let reads = self.0.live_reads.clone();
        let key = Some(order_id.0.to_string());
        let changes = feed::follow(
            pool.clone(),
            &self.0.hub,
            live_deliveries::FEED,
            key,
            last_event_id.0,
        )
        .filter_map(move |change| {
            let (pool, reads) = (pool.clone(), reads.clone());
            // Boxed: the stream keeps no room for a database read between two changes.
            async move {
                let read = || async { live_deliveries::delivery(&pool, order_id.0).await.ok()? };
                let mut delivery = reads.get(&change.key, change.id, read).await?;
                delivery.eta = geo::eta(&delivery, restaurant, Utc::now());
                Some(DeliveryChange {
                    change_id: change.id,
                    delivery,
                })
            }
            .boxed()
        })
        .boxed();
        Ok(EventStream::new(changes)
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|change| {
                poem::web::sse::Event::message(change.to_json_string())
                    .event_type("delivery")
                    .id(change.change_id.to_string())
            }))
    }

    /// A manager assigns the delivery to a courier, or reassigns it until pickup. The courier
    /// must be active and free: a courier carries one delivery at a time.
    #[oai(path = "/deliveries/:order_id/assign", method = "post")]
    async fn assign(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: Json<AssignCourier>,
    ) -> Result<Json<LiveDelivery>, Problem> {
        auth.0.require(&[Role::Manager])?;
        let (order_id, courier_id) = (order_id.0, body.0.courier_id);
        let courier = store::load::<Courier>(&self.0.pool, &courier_id.to_string())
            .await
            .map_err(|e| command_problem(e, problems::courier_problem))?
            .aggregate;
        if !courier.exists() {
            return Err(Problem::unprocessable(
                "courier-not-found",
                format!("no courier {courier_id}"),
            )
            .with_field("courierId"));
        }
        if !courier.is_active() {
            return Err(
                Problem::conflict("courier-inactive", "this courier is inactive")
                    .with_field("courierId"),
            );
        }
        // Refuse what the aggregate would refuse before touching any booking: a booking
        // taken and given back would briefly free the courier who has the food.
        let delivery = self.load(order_id).await?.aggregate;
        match delivery.status() {
            None => return Err(delivery_problem(DeliveryError::DeliveryNotFound)),
            Some(DeliveryStatus::Assigned) if delivery.courier_id() == Some(courier_id) => {
                return self.answer(order_id, |_| {}).await;
            }
            Some(DeliveryStatus::ReadyForPickup | DeliveryStatus::Assigned) => {}
            Some(status) => {
                let error = if status == DeliveryStatus::Requested {
                    DeliveryError::NotReadyForPickup
                } else {
                    DeliveryError::WrongStatus {
                        action: "assign",
                        status,
                    }
                };
                return Err(delivery_problem(error));
            }
        }
        let replaced = match dispatch::book(&self.0.pool, courier_id, order_id, true)
            .await
            .map_err(|e| read_problem(&e))?
        {
            Booking::Booked { replaced } => replaced,
            Booking::AlreadyBooked => None,
            Booking::CourierBusy | Booking::OrderTaken => {
                return Err(Problem::conflict(
                    "courier-busy",
                    "this courier is carrying another delivery",
                )
                .with_field("courierId"));
            }
        };
        let command = DeliveryCommand::Assign {
            courier_id,
            at: Utc::now(),
        };
        if let Err(problem) = self.execute(&auth, order_id, command).await {
            dispatch::unbook(&self.0.pool, courier_id, order_id, replaced)
                .await
                .map_err(|e| read_problem(&e))?;
            return Err(problem);
        }
        self.answer(order_id, |_| {}).await
    }

    /// The assigned courier turns the delivery down before pickup: it waits for a courier
    /// again, and dispatch offers it to someone else (never to them again).
    #[oai(path = "/deliveries/:order_id/decline", method = "post")]
    async fn decline(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<LiveDelivery>, Problem> {
        let courier_id = self.assigned_courier(&auth, order_id.0).await?;
        // Recorded first: the moment the decline is an event, dispatch may look for the next
        // courier, and must already skip this one. A refused decline leaves a harmless mark.
        dispatch::record_decline(&self.0.pool, order_id.0, courier_id)
            .await
            .map_err(|e| read_problem(&e))?;
        let command = DeliveryCommand::Decline {
            courier_id,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await?;
        self.answer(order_id.0, |_| {}).await
    }

    /// The assigned courier has collected the food.
    #[oai(path = "/deliveries/:order_id/pickup", method = "post")]
    async fn pickup(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
    ) -> Result<Json<LiveDelivery>, Problem> {
        let courier_id = self.assigned_courier(&auth, order_id.0).await?;
        let command = DeliveryCommand::PickUp {
            courier_id,
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await?;
        self.answer(order_id.0, |_| {}).await
    }

    /// The assigned courier has handed the food over (proof: who took it, a note).
    #[oai(path = "/deliveries/:order_id/deliver", method = "post")]
    async fn deliver(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: Json<DeliverRequest>,
    ) -> Result<Json<LiveDelivery>, Problem> {
        let courier_id = self.assigned_courier(&auth, order_id.0).await?;
        self.flush_route(order_id.0).await;
        let DeliverRequest { received_by, note } = body.0;
        let command = DeliveryCommand::Deliver {
            courier_id,
            received_by: received_by.clone(),
            note: note.clone(),
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await?;
        self.answer(order_id.0, |delivery| {
            delivery.received_by = received_by
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty());
            delivery.note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        })
        .await
    }

    /// The assigned courier cannot deliver, and says why.
    #[oai(path = "/deliveries/:order_id/fail", method = "post")]
    async fn fail(
        &self,
        auth: BearerAuth,
        order_id: Path<Uuid>,
        body: Json<FailRequest>,
    ) -> Result<Json<LiveDelivery>, Problem> {
        let courier_id = self.assigned_courier(&auth, order_id.0).await?;
        self.flush_route(order_id.0).await;
        let reason = body.0.reason;
        let command = DeliveryCommand::Fail {
            courier_id,
            reason: reason.clone(),
            at: Utc::now(),
        };
        self.execute(&auth, order_id.0, command).await?;
        self.answer(order_id.0, |delivery| {
            delivery.failure_reason = Some(reason.trim().to_owned())
        })
        .await
    }
}

impl DeliveriesApi {
    /// Records the route samples still waiting, ending with the courier's last position: the
    /// route is complete on the delivery before it is handed over or failed. A failure here
    /// never holds the handover up; the samples stay, shown with the route.
    async fn flush_route(&self, order_id: Uuid) {
        if let Err(error) = route::flush(&self.0.pool, &self.0.deliveries, order_id, true).await {
            tracing::warn!(%order_id, %error, "the route could not be recorded before the handover");
        }
    }

    /// The delivery from the read model, if the caller may see it; 404 otherwise.
    async fn visible(&self, auth: &BearerAuth, order_id: Uuid) -> Result<LiveDelivery, Problem> {
        let not_found = || {
            Problem::not_found(
                "delivery-not-found",
                format!("no delivery for order {order_id}"),
            )
        };
        let mut delivery = live_deliveries::delivery(&self.0.pool, order_id)
            .await
            .map_err(|e| read_problem(&e))?
            .ok_or_else(not_found)?;
        if !may_see(&auth.0, &delivery) {
            return Err(not_found());
        }
        delivery.eta = geo::eta(&delivery, self.0.restaurant, Utc::now());
        Ok(delivery)
    }

    /// The caller, if they are a courier and the delivery is assigned to them (or was last,
    /// once finished): a courier's commands are theirs alone. Anyone else's delivery is
    /// "not found", not "forbidden": ids of other people's orders are not confirmed.
    async fn assigned_courier(&self, auth: &BearerAuth, order_id: Uuid) -> Result<Uuid, Problem> {
        auth.0.require(&[Role::Courier])?;
        let delivery = self.load(order_id).await?.aggregate;
        if delivery.courier_id() != Some(auth.0.account_id) {
            return Err(Problem::not_found(
                "delivery-not-found",
                format!("no delivery for order {order_id} is assigned to you"),
            ));
        }
        Ok(auth.0.account_id)
    }

    async fn load(&self, order_id: Uuid) -> Result<store::Loaded<Delivery>, Problem> {
        store::load::<Delivery>(&self.0.pool, &order_id.to_string())
            .await
            .map_err(|e| command_problem(e, delivery_problem))
    }

    async fn execute(
        &self,
        auth: &BearerAuth,
        order_id: Uuid,
        command: DeliveryCommand,
    ) -> Result<(), Problem> {
        let id = order_id.to_string();
        let metadata = auth.0.command_metadata(id.clone())?;
        store::execute_deciding_again(&self.0.deliveries, &id, &command, &metadata)
            .await
            .map_err(|e| command_problem(e, delivery_problem))
    }

    /// The delivery as it now stands, read from the aggregate (the read model may lag a few
    /// milliseconds behind the command), with `complete` adding what only the command knew.
    async fn answer(
        &self,
        order_id: Uuid,
        complete: impl FnOnce(&mut LiveDelivery),
    ) -> Result<Json<LiveDelivery>, Problem> {
        let loaded = self.load(order_id).await?;
        let courier = match loaded.aggregate.courier_id() {
            Some(id) => {
                let view = couriers::courier(&self.0.pool, id)
                    .await
                    .map_err(|e| read_problem(&e))?;
                Some(CourierSummary {
                    id,
                    name: view.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
                    vehicle: view.map_or(couriers::VehicleKind::Bike, |c| c.vehicle),
                })
            }
            None => None,
        };
        let mut delivery = problems::live(&loaded.aggregate, order_id, loaded.version, courier)
            .ok_or_else(|| {
                Problem::not_found(
                    "delivery-not-found",
                    format!("no delivery for order {order_id}"),
                )
            })?;
        complete(&mut delivery);
        Ok(Json(delivery))
    }
}
