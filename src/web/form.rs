//! `PageForm`: axum's `Form` for our pages, whose rejection (a malformed or oversized body,
//! a field sent twice) is a localised error page rather than axum's plain-text 4xx.

use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::Locale;
use super::Templates;

pub struct PageForm<T>(pub T);

impl<S, T> FromRequest<S> for PageForm<T>
where
    S: AsRef<Templates> + Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let locale = Locale::negotiate(None, req.headers());
        match Form::<T>::from_request(req, state).await {
            Ok(Form(value)) => Ok(PageForm(value)),
            Err(rejection) => {
                tracing::info!(reason = %rejection.body_text(), "malformed form");
                Err(state
                    .as_ref()
                    .error_page(locale, "error.bad_request", StatusCode::BAD_REQUEST)
                    .into_response())
            }
        }
    }
}

/// The password-change form (F3 at sign-in, F5 in « Mon compte »), with the guide's field
/// names; the captcha fields are empty where the page has none.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PasswordChange {
    pub csrf_token: String,
    pub username: String,
    pub old_password: secrecy::SecretString,
    pub new_password: secrecy::SecretString,
    pub new_password_confirm: secrecy::SecretString,
    pub captcha_id: String,
    pub captcha: String,
}
