//! The problems many operations of the OpenAPI document answer, declared once and named by the
//! handlers' `#[utoipa::path]` attributes. Their bodies are never built from these types, only
//! described. They stand apart from [`super::openapi`], which lists every handler, so that no
//! handler imports the document that imports it.

/// No identity (neither a session cookie nor an API token), or a bearer token that is unknown
/// or revoked.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Unauthenticated(domain::Problem);

/// Not a run id (a UUID).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct BadRunId(domain::Problem);

/// No such run of yours.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct RunNotFound(domain::Problem);

/// A bearer token was sent that is unknown or revoked: even an operation that needs no
/// identity refuses a request that names a wrong one.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct InvalidToken(domain::Problem);
