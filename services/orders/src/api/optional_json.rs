//! A JSON request body that may be left out entirely (`POST /orders/{id}/cancel` needs no body,
//! or `{"reason": "…"}`). poem-openapi's `Json<T>` insists on a `Content-Type` even for an
//! empty body; this one reads an empty body, with or without one, as `None`.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// An optional JSON body: `None` when the request has no body.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<T> as Payload>::CONTENT_TYPE,
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if let Some(content_type) = request.content_type() {
            if !<Json<T> as Payload>::check_content_type(content_type) {
                return Err(ContentTypeError::NotSupported {
                    content_type: content_type.to_owned(),
                }
                .into());
            }
        }
        let value: serde_json::Value =
            serde_json::from_slice(&data).map_err(|error| ParseRequestPayloadError {
                reason: error.to_string(),
            })?;
        let parsed = T::parse_from_json(Some(value)).map_err(|error| ParseRequestPayloadError {
            reason: error.into_message(),
        })?;
        Ok(Self(Some(parsed)))
    }
}
