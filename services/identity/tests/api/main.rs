//! Black-box tests of the identity service: the real application on a random port, against a
//! fresh PostgreSQL database per test, spoken to over HTTP.

mod accounts;
mod helpers;
mod sessions;
mod tokens;
