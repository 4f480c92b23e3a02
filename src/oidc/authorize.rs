//! The authorization endpoint (GET and POST): check the request in the order that decides how
//! errors are told (page for an unknown client or redirect URI, redirect for the rest), then
//! answer at once from the SSO session or send the browser to the sign-in page.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::params::{Params, is_form};
use crate::crypto::{random_token, token_hash};
use crate::domain::claims::ClaimsRequest;
use crate::domain::{Client, CodeChallenge, GrantType, RedirectUri, Scopes};
use crate::services::grant::{
    AuthRequest, Interaction, Progress, Prompt, interaction_key, redirect_with,
};
use crate::services::session::Current;
use crate::services::throttle::{AUTHORIZE_PER_ADDRESS, Gate, PENDING_PER_BROWSER};
use crate::state::{AppState, Internal};
use crate::web::see_other;
use crate::web::{Locale, cookies};

pub enum AuthorizeError {
    /// Nowhere safe to redirect to: tell the person.
    Page(&'static str),
    /// Back to the portal with `error`, `error_description`, `state` and `iss`.
    Redirect {
        to: RedirectUri,
        state: Option<String>,
        error: &'static str,
        description: &'static str,
    },
    /// This address started too many sign-ins lately: wait this many seconds. A page for the
    /// person rather than a redirect, so a portal that retries on errors cannot loop.
    Busy(u64),
    Internal(Internal),
}

impl<E: Into<Internal>> From<E> for AuthorizeError {
    fn from(e: E) -> Self {
        AuthorizeError::Internal(e.into())
    }
}

impl AuthorizeError {
    pub fn respond(self, state: &AppState, locale: Locale) -> Response {
        match self {
            AuthorizeError::Page(key) => state
                .pages
                .error_page(locale, key, StatusCode::BAD_REQUEST)
                .into_response(),
            AuthorizeError::Redirect {
                to,
                state: st,
                error,
                description,
            } => see_other(&redirect_with(
                &to,
                st.as_deref(),
                state.issuer(),
                &[("error", error), ("error_description", description)],
            )),
            AuthorizeError::Busy(wait) => state.pages.busy_page(locale, wait),
            AuthorizeError::Internal(e) => {
                let (key, status) = crate::web::page_error(&e, "authorization failed");
                state.pages.error_page(locale, key, status).into_response()
            }
        }
    }
}

pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(state, peer, headers, params).await
}

pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        let locale = Locale::negotiate(None, &headers);
        return state
            .pages
            .error_page(locale, "error.bad_request", StatusCode::BAD_REQUEST)
            .into_response();
    }
    authorize(state, peer, headers, Params::parse(&body)).await
}

async fn authorize(
    state: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let locale = Locale::negotiate(params.get("ui_locales"), &headers);
    let asker = Asker {
        address: state.client_ip(&peer, &headers),
        headers,
        locale,
    };
    let outcome = match parse(&state, &params).await {
        Ok((client, request)) => respond(&state, &asker, &client, request).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|e| e.respond(&state, locale))
}

/// Who is asking: what a parked request needs besides the request itself.
struct Asker {
    headers: HeaderMap,
    address: String,
    locale: Locale,
}

/// (name, most bytes, error_description) for each parameter.
macro_rules! limits {
    ($($name:literal: $max:literal),* $(,)?) => {
        &[$(($name, $max, concat!($name, " is too long (at most ", $max, " bytes)"))),*]
    };
}

/// The longest value of each parameter, in bytes. A request waits 30 minutes in the
/// ephemeral store, so no parameter may make it large; real portals stay far below.
const MAX_LEN: &[(&str, usize, &str)] = limits![
    "client_id": 256, "redirect_uri": 2048,
    "state": 512, "nonce": 512, "login_hint": 256, "claims": 2048,
    "acr_values": 256, "ui_locales": 128, "scope": 512, "prompt": 64, "max_age": 16,
    "response_type": 64, "response_mode": 64, "code_challenge": 128,
    "code_challenge_method": 16, "id_token_hint": 8192, "display": 32,
];

/// The description of the first parameter longer than its limit.
fn too_long(p: &Params, names: &[&str]) -> Option<&'static str> {
    MAX_LEN
        .iter()
        .filter(|(name, ..)| names.is_empty() || names.contains(name))
        .find(|(name, max, _)| p.get(name).is_some_and(|v| v.len() > *max))
        .map(|(.., description)| *description)
}

/// Checks every parameter, in order; the result is a request Sésame can serve. Until the
/// client and its redirect URI are known, errors are pages; after, they go back to the portal.
async fn parse(state: &AppState, p: &Params) -> Result<(Client, AuthRequest), AuthorizeError> {
    let (client, redirect_uri) = client_and_redirect_uri(state, p).await?;
    let reply = Reply::new(redirect_uri, p);
    check_shape(p, &reply)?;
    check_response(p, &client, &reply)?;
    let scopes = scopes(p, &reply)?;
    let prompt =
        parse_prompt(p.get("prompt")).ok_or_else(|| reply.invalid("invalid prompt value"))?;
    let scopes = offline_access_gate(scopes, &client, &prompt);
    let max_age = max_age(p, &reply)?;
    let code_challenge = code_challenge(p, &client, &reply)?;
    let claims = claims(p, &client, &scopes, &reply)?;
    let hint_sub = match p.get("id_token_hint") {
        Some(hint) => Some(hint_subject(state, hint).ok_or_else(|| {
            reply.invalid("id_token_hint is not a valid ID token of this issuer")
        })?),
        None => None,
    };
    let need_mfa = needs_two_factors(&state.settings.acr, &client, p);
    let request = AuthRequest {
        client_id: client.id.to_string(),
        redirect_uri: reply.to,
        scopes,
        state: reply.state,
        nonce: p.get("nonce").map(str::to_owned),
        code_challenge,
        prompt,
        max_age,
        login_hint: p.get("login_hint").map(str::to_owned),
        ui_locales: p.get("ui_locales").map(str::to_owned),
        acr_values: words(p.get("acr_values")).map(str::to_owned).collect(),
        claims,
        hint_sub,
        need_mfa,
    };
    Ok((client, request))
}

/// Where errors go once the redirect URI is known, with the portal's `state`.
struct Reply {
    to: RedirectUri,
    state: Option<String>,
}

impl Reply {
    fn new(to: RedirectUri, p: &Params) -> Self {
        // An oversize state is refused (check_shape), and not echoed back to the portal.
        let state = too_long(p, &["state"])
            .is_none()
            .then(|| p.get("state").map(str::to_owned))
            .flatten();
        Self { to, state }
    }

    fn fail(&self, error: &'static str, description: &'static str) -> AuthorizeError {
        AuthorizeError::Redirect {
            to: self.to.clone(),
            state: self.state.clone(),
            error,
            description,
        }
    }

    fn invalid(&self, description: &'static str) -> AuthorizeError {
        self.fail("invalid_request", description)
    }
}

fn words(v: Option<&str>) -> impl Iterator<Item = &str> {
    v.unwrap_or("").split(' ').filter(|s| !s.is_empty())
}

/// The client, and its redirect URI by exact string match (OIDC Core §3.1.2.1; required even
/// with one registered URI). Anything wrong here is a page: there is nowhere safe to redirect.
async fn client_and_redirect_uri(
    state: &AppState,
    p: &Params,
) -> Result<(Client, RedirectUri), AuthorizeError> {
    use AuthorizeError::Page;
    if p.duplicated(&["client_id", "redirect_uri"]).is_some()
        || too_long(p, &["client_id", "redirect_uri"]).is_some()
    {
        return Err(Page("error.bad_request"));
    }
    let client = match p.get("client_id") {
        Some(id) => state
            .client(id)
            .await?
            .ok_or(Page("error.unknown_client"))?,
        None => return Err(Page("error.unknown_client")),
    };
    let redirect_uri = p
        .get("redirect_uri")
        .and_then(|r| client.redirect_uri(r))
        .cloned()
        .ok_or(Page("error.bad_redirect_uri"))?;
    Ok((client, redirect_uri))
}

/// No repeated or oversize parameter, no request object.
fn check_shape(p: &Params, reply: &Reply) -> Result<(), AuthorizeError> {
    if p.duplicated(&[]).is_some() {
        return Err(reply.invalid("a parameter is repeated"));
    }
    if let Some(description) = too_long(p, &[]) {
        return Err(reply.invalid(description));
    }
    if p.has("request") {
        return Err(reply.fail("request_not_supported", "request objects are not supported"));
    }
    if p.has("request_uri") {
        return Err(reply.fail("request_uri_not_supported", "request_uri is not supported"));
    }
    Ok(())
}

/// `response_type=code`, answered in the query, for a client allowed the code grant.
fn check_response(p: &Params, client: &Client, reply: &Reply) -> Result<(), AuthorizeError> {
    match p.get("response_type") {
        None => return Err(reply.invalid("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(reply.fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(reply.fail(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    if p.get("response_mode").is_some_and(|m| m != "query") {
        return Err(reply.invalid("only response_mode=query is supported"));
    }
    Ok(())
}

/// The supported scopes asked for, `openid` among them.
fn scopes(p: &Params, reply: &Reply) -> Result<Scopes, AuthorizeError> {
    let scopes = Scopes::parse(p.get("scope").unwrap_or(""))
        .map_err(|_| reply.fail("invalid_scope", "malformed scope"))?
        .supported();
    if !scopes.contains("openid") {
        return Err(reply.fail("invalid_scope", "the openid scope is required"));
    }
    Ok(scopes)
}

/// `offline_access` only with an explicit consent (OIDC Core §11) and for a client allowed
/// refresh tokens; otherwise it is dropped, not refused.
fn offline_access_gate(scopes: Scopes, client: &Client, prompt: &Prompt) -> Scopes {
    let allowed = client.allows(GrantType::RefreshToken) && (client.first_party || prompt.consent);
    if scopes.contains("offline_access") && !allowed {
        scopes.without("offline_access")
    } else {
        scopes
    }
}

fn max_age(p: &Params, reply: &Reply) -> Result<Option<i64>, AuthorizeError> {
    p.get("max_age")
        .map(|v| {
            v.parse::<u32>()
                .map(i64::from)
                .map_err(|_| reply.invalid("max_age must be a non-negative integer"))
        })
        .transpose()
}

/// PKCE: S256 only, required for public clients.
fn code_challenge(
    p: &Params,
    client: &Client,
    reply: &Reply,
) -> Result<Option<CodeChallenge>, AuthorizeError> {
    match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (Some(c), m) => Ok(Some(
            CodeChallenge::parse(c, m).map_err(|d| reply.invalid(d))?,
        )),
        (None, Some(_)) => Err(reply.invalid("code_challenge_method without code_challenge")),
        (None, None) if client.is_public() => {
            Err(reply.invalid("PKCE code_challenge is required for public clients"))
        }
        (None, None) => Ok(None),
    }
}

/// The `claims` parameter. Consent is given per scope: a third-party portal gets no identity
/// claim through it that its scopes do not cover (first-party portals need no consent).
fn claims(
    p: &Params,
    client: &Client,
    scopes: &Scopes,
    reply: &Reply,
) -> Result<ClaimsRequest, AuthorizeError> {
    let mut claims = match p.get("claims") {
        Some(raw) => ClaimsRequest::parse(raw).map_err(|d| reply.invalid(d))?,
        None => ClaimsRequest::default(),
    };
    if !client.first_party {
        let covered = crate::domain::claims::by_scope(scopes);
        claims.id_token.retain(|c| covered.contains(c.as_str()));
        claims.userinfo.retain(|c| covered.contains(c.as_str()));
    }
    Ok(claims)
}

/// Two factors: always for a sensitive portal or one whose minimum is above a password; else
/// when `acr_values`, or an essential `acr` in the `claims` parameter (on its own), names
/// only the strong level.
fn needs_two_factors(acr: &crate::config::AcrSettings, client: &Client, p: &Params) -> bool {
    let only_strong = |values: &[&str]| {
        values.contains(&acr.two_factor.as_str()) && !values.contains(&acr.password.as_str())
    };
    let acr_values: Vec<&str> = words(p.get("acr_values")).collect();
    let essential = p
        .get("claims")
        .map(crate::domain::claims::essential_acr)
        .unwrap_or_default();
    client.sensitive
        || acr.above_password(client.min_acr.as_deref())
        || only_strong(&acr_values)
        || only_strong(&essential.iter().map(String::as_str).collect::<Vec<_>>())
}

fn parse_prompt(raw: Option<&str>) -> Option<Prompt> {
    let mut p = Prompt::default();
    for v in raw.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        match v {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            "select_account" => p.select_account = true,
            _ => return None,
        }
    }
    // `none` with anything else is contradictory (OIDC Core §3.1.2.1).
    let others = p.login || p.consent || p.select_account;
    (!(p.none && others)).then_some(p)
}

/// The `sub` of an ID token we issued; expired hints are fine (OIDC Core §3.1.2.1).
pub fn hint_subject(state: &AppState, hint: &str) -> Option<String> {
    let claims = state.keys.verify_id_token(hint)?;
    (claims.get("iss")?.as_str()? == state.issuer()).then_some(())?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// The request is valid: answer from the session, or ask the user.
async fn respond(
    state: &AppState,
    asker: &Asker,
    client: &Client,
    req: AuthRequest,
) -> Result<Response, AuthorizeError> {
    // A session lives while its account is active and in the sign-in epoch it saw.
    let current = state.current_session(&asker.headers).await?;
    let fail = |error: &'static str, description: &'static str| AuthorizeError::Redirect {
        to: req.redirect_uri.clone(),
        state: req.state.clone(),
        error,
        description,
    };
    let fit = current
        .as_ref()
        .map(|c| fit(state, &req, c))
        .unwrap_or(Fit::No);
    match (fit, current) {
        (Fit::Yes, Some(mut c)) => {
            if !state
                .needs_consent(client, &c.session.user_id, &req)
                .await?
            {
                return Ok(see_other(&state.issue_code(&req, &mut c).await?));
            }
            if req.prompt.none {
                return Err(fail(
                    "consent_required",
                    "the user has not consented to this client",
                ));
            }
            let user_id = c.session.user_id.clone();
            start_interaction(
                state,
                asker,
                req,
                Some(user_id),
                None,
                Some(c.session.epoch),
            )
            .await
        }
        // Signed in with a password only: step up with the second factor, no new password.
        (Fit::StepUp, Some(c)) => {
            if req.prompt.none {
                return Err(fail(
                    "interaction_required",
                    "strong authentication is required",
                ));
            }
            if !state.has_second_factor(&c.session.user_id).await? {
                return Err(fail(
                    "access_denied",
                    "strong authentication is required and the account has no second factor",
                ));
            }
            let user_id = c.session.user_id.clone();
            start_interaction(
                state,
                asker,
                req,
                None,
                Some(user_id),
                Some(c.session.epoch),
            )
            .await
        }
        _ if req.prompt.none => Err(fail("login_required", "the user is not signed in")),
        _ => start_interaction(state, asker, req, None, None, None).await,
    }
}

/// How far an existing session answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    Yes,
    /// Right person, recent enough, but one factor short.
    StepUp,
    No,
}

fn fit(state: &AppState, req: &AuthRequest, c: &Current) -> Fit {
    let fresh_enough = match req.max_age {
        Some(0) => false,
        Some(max) => state.now() - c.session.auth_time <= max,
        None => true,
    };
    let same_user = req
        .hint_sub
        .as_ref()
        .is_none_or(|s| *s == c.session.user_id);
    if req.prompt.login || !fresh_enough || !same_user {
        Fit::No
    } else if req.need_mfa && c.session.acr != state.settings.acr.two_factor {
        Fit::StepUp
    } else {
        Fit::Yes
    }
}

/// Parks the request server-side and sends the browser to the sign-in page. A request that
/// goes on from a session (consent, step-up) keeps that session's sign-in epoch: a reset
/// meanwhile voids what it would open.
async fn start_interaction(
    state: &AppState,
    asker: &Asker,
    request: AuthRequest,
    user_id: Option<String>,
    second_factor: Option<String>,
    epoch: Option<i64>,
) -> Result<Response, AuthorizeError> {
    // Counted before anything is kept: a new cookie per request is free for a client, so
    // the per-browser cap alone bounds nothing.
    if let Gate::Wait(s) = state
        .address_attempt("authorize", &asker.address, AUTHORIZE_PER_ADDRESS)
        .await?
    {
        return Err(AuthorizeError::Busy(s));
    }
    let (browser, set_cookie) = match state.cookie(&asker.headers, cookies::BROWSER) {
        Some(b) if b.len() == 43 => (b.to_owned(), None),
        _ => {
            let b = random_token();
            (
                b.clone(),
                Some(state.set_cookie(cookies::BROWSER, &b, None)),
            )
        }
    };
    let uid = random_token();
    let interaction = Interaction {
        request,
        csrf: random_token(),
        locale: asker.locale,
        progress: match (user_id, second_factor) {
            (Some(u), _) => Progress::SignedIn(u),
            (None, Some(u)) => Progress::SecondFactor(u),
            (None, None) => Progress::SignIn,
        },
        pending_binding: None,
        browser: token_hash(&browser),
        replaces: None,
        epoch,
    };
    let ttl = Duration::from_secs(state.settings.tokens.interaction_minutes * 60);
    state
        .eph
        .put_json(&interaction_key(&uid), &interaction, ttl)
        .await?;
    keep_latest_per_browser(state, &interaction.browser, &uid, ttl).await?;
    let next = if interaction.progress.second_factor().is_some() {
        format!("/interaction/{uid}/totp")
    } else {
        format!("/interaction/{uid}")
    };
    let mut res = see_other(&next);
    if let Some(c) = set_cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

/// Files `uid` in one of the browser's `PENDING_PER_BROWSER` slots, taken in turn, and drops
/// the request it displaces. `incr` gives each request its own turn and `swap` hands each
/// previous occupant to exactly one caller, so even racing requests leave at most the cap.
async fn keep_latest_per_browser(
    state: &AppState,
    browser: &str,
    uid: &str,
    ttl: Duration,
) -> Result<(), Internal> {
    let turn = state.eph.incr(&format!("pending:{browser}"), ttl).await?;
    let slot = format!("pending:{browser}:{}", turn % PENDING_PER_BROWSER);
    if let Some(displaced) = state.eph.swap(&slot, uid, ttl).await? {
        state.eph.delete(&interaction_key(&displaced)).await?;
    }
    Ok(())
}
