//! Server-sent event responses, each event written straight into the response body.
//!
//! poem-openapi's `EventStream` answers through poem's `SSE`, which turns the events into an
//! `AsyncRead` (tokio-util's `StreamReader`, holding on to the last event) and reads that back
//! into chunks (`ReaderStream`, with a 4 KiB buffer of its own): 5.4 KiB held by every open
//! stream, and one copy of each frame, for nothing (the heap profile is in BENCHMARKS.md). A
//! service holds thousands of these streams, so this one has the same API, the same frames and
//! the same OpenAPI description, and hands each frame to the body as it is.

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use poem::web::sse::Event;
use poem::{Body, IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::ApiResponse;

/// What a keep-alive writes: an SSE comment, which clients ignore.
const KEEP_ALIVE: &[u8] = b":\n\n";

type ToEvent<T> = Box<dyn FnMut(T) -> Event + Send + 'static>;

/// A `text/event-stream` response: one event per item of `stream`, as JSON unless
/// [`EventStream::to_event`] says otherwise.
pub struct EventStream<T: Stream + Send + 'static> {
    stream: T,
    keep_alive: Option<Duration>,
    to_event: Option<ToEvent<T::Item>>,
}

impl<T: Stream + Send + 'static> EventStream<T> {
    pub fn new(stream: T) -> Self {
        Self {
            stream,
            keep_alive: None,
            to_event: None,
        }
    }

    /// Writes a comment whenever `every` passes, so that proxies and clients see the stream is
    /// alive (and a gone client is noticed).
    #[must_use]
    pub fn keep_alive(self, every: Duration) -> Self {
        Self {
            keep_alive: Some(every),
            ..self
        }
    }

    /// Builds each item's event (its type, id, data).
    #[must_use]
    pub fn to_event(self, build: impl FnMut(T::Item) -> Event + Send + 'static) -> Self {
        Self {
            to_event: Some(Box::new(build)),
            ..self
        }
    }
}

impl<T: Stream<Item = E> + Send + 'static, E: Type + ToJSON + 'static> IntoResponse
    for EventStream<T>
{
    fn into_response(self) -> Response {
        let mut to_event = self.to_event;
        let frames = self
            .stream
            .map(move |item| {
                let event = match to_event.as_mut() {
                    Some(build) => build(item),
                    None => Event::message(item.to_json_string()),
                };
                Bytes::from(event.to_string())
            })
            .boxed();
        let frames = match self.keep_alive {
            None => frames,
            Some(every) => {
                let mut frames = frames;
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                futures::stream::poll_fn(move |cx| {
                    if let Poll::Ready(frame) = frames.poll_next_unpin(cx) {
                        return Poll::Ready(frame);
                    }
                    ticks
                        .poll_tick(cx)
                        .map(|_| Some(Bytes::from_static(KEEP_ALIVE)))
                })
                .boxed()
            }
        };
        Response::builder()
            .content_type("text/event-stream")
            .header("X-Accel-Buffering", "no")
            .header("Cache-Control", "no-cache")
            .body(Body::from_bytes_stream(frames.map(Ok::<_, std::io::Error>)))
    }
}

impl<T: Stream<Item = E> + Send + 'static, E: Type + ToJSON> Payload for EventStream<T> {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(E::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

impl<T: Stream<Item = E> + Send + 'static, E: Type + ToJSON> ApiResponse for EventStream<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> String {
        response
            .into_body()
            .into_string()
            .await
            .expect("a text body")
    }

    #[tokio::test]
    async fn each_item_is_one_frame_built_by_to_event() {
        let stream = futures::stream::iter([1_i32, 2]);
        let response = EventStream::new(stream)
            .to_event(|n| {
                Event::message(n.to_string())
                    .event_type("n")
                    .id(n.to_string())
            })
            .into_response();
        assert_eq!(
            response.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        assert_eq!(
            body_of(response).await,
            "id: 1\nevent: n\ndata: 1\n\nid: 2\nevent: n\ndata: 2\n\n"
        );
    }

    #[tokio::test]
    async fn items_are_json_without_to_event() {
        let response = EventStream::new(futures::stream::iter(["a b".to_owned()])).into_response();
        assert_eq!(body_of(response).await, "data: \"a b\"\n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_writes_a_comment_every_keep_alive() {
        let quiet = futures::stream::pending::<i32>();
        let response = EventStream::new(quiet)
            .keep_alive(Duration::from_secs(15))
            .into_response();
        let mut chunks = response.into_body().into_bytes_stream();
        let started = tokio::time::Instant::now();
        let first = chunks.next().await.expect("a chunk").expect("no error");
        assert_eq!(&first[..], KEEP_ALIVE);
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        let second = chunks.next().await.expect("a chunk").expect("no error");
        assert_eq!(&second[..], KEEP_ALIVE);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
