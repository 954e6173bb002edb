//! Service plumbing shared by every Brigade service: typed configuration, database creation and
//! migrations, the HTTP server with problem+json errors, health and home pages, and the auth guard.
//! It holds plumbing only, never one service's business rules.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod database;
pub mod dead_letters_api;
pub mod otlp;
pub mod problem;
pub mod runtime;
pub mod server;
pub mod sse;
pub mod system;
pub mod telemetry;
pub mod testing;

pub use config::{ServiceName, Settings};
pub use problem::{Problem, ProblemDetails};
pub use runtime::Service;
