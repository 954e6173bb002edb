//! The auth guard: verifies access tokens locally and checks roles per endpoint.
