//! Which identity claims a token or userinfo response carries: by scope (OIDC Core §5.4)
//! and by the `claims` request parameter (§5.5).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::Scopes;
use super::user::User;

pub const PROFILE: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "updated_at",
];
pub const EMAIL: &[&str] = &["email", "email_verified"];

/// Every claim Sésame can release, for discovery.
pub fn supported() -> Vec<&'static str> {
    let mut v = vec![
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "sid",
    ];
    v.extend_from_slice(PROFILE);
    v.extend_from_slice(EMAIL);
    v
}

/// The parsed `claims` parameter: the names asked for in each place; values are not needed
/// because every claim Sésame has is released when asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimsRequest {
    pub id_token: BTreeSet<String>,
    pub userinfo: BTreeSet<String>,
}

impl ClaimsRequest {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let v: Value = serde_json::from_str(raw).map_err(|_| "claims is not a JSON object")?;
        let obj = v.as_object().ok_or("claims is not a JSON object")?;
        let names = |key: &str| -> Result<BTreeSet<String>, &'static str> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(BTreeSet::new()),
                Some(Value::Object(m)) => Ok(m.keys().cloned().collect()),
                Some(_) => Err("claims members must be JSON objects"),
            }
        };
        Ok(Self {
            id_token: names("id_token")?,
            userinfo: names("userinfo")?,
        })
    }
}

/// The `acr` values a `claims` parameter marks essential (OIDC Core §5.5.1.1), from the ID
/// token or userinfo member: they bind like `acr_values`. A voluntary `acr` asks nothing.
pub fn essential_acr(raw: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for member in ["id_token", "userinfo"] {
        let acr = &v[member]["acr"];
        if acr["essential"] != Value::Bool(true) {
            continue;
        }
        let values = acr["values"].as_array().into_iter().flatten();
        out.extend(
            values
                .chain(std::iter::once(&acr["value"]))
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
    }
    out
}

/// Claims granted by scope (released at userinfo).
pub fn by_scope(scopes: &Scopes) -> BTreeSet<&'static str> {
    let mut set = BTreeSet::new();
    if scopes.contains("profile") {
        set.extend(PROFILE);
    }
    if scopes.contains("email") {
        set.extend(EMAIL);
    }
    set
}

/// The values of the named identity claims for a user; claims the account lacks are omitted
/// (never `null` or `""`).
pub fn values<'a>(user: &User, names: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
    let mut out = Map::new();
    for name in names {
        let v = match name {
            "name" => Some(json!(user.display_name())),
            "given_name" => user.given_name.as_ref().map(|s| json!(s)),
            "family_name" => user.family_name.as_ref().map(|s| json!(s)),
            "preferred_username" => Some(json!(user.username.as_str())),
            "updated_at" => Some(json!(user.updated_at)),
            "email" => Some(json!(user.email.as_str())),
            // Addresses are set by operators from the professional directory.
            "email_verified" => Some(json!(true)),
            _ => None,
        };
        if let Some(v) = v {
            out.insert(name.to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_acr_values() {
        let raw = r#"{"id_token":{"acr":{"essential":true,"values":["a","b"]}},"userinfo":{"acr":{"essential":true,"value":"c"}}}"#;
        assert_eq!(essential_acr(raw), ["a", "b", "c"]);
        assert!(essential_acr(r#"{"id_token":{"acr":{"values":["a"]}}}"#).is_empty());
        assert!(essential_acr(r#"{"id_token":{"acr":null}}"#).is_empty());
        assert!(essential_acr("[1]").is_empty());
    }

    #[test]
    fn claims_parameter() {
        let c = ClaimsRequest::parse(
            r#"{"userinfo":{"name":{"essential":true}},"id_token":{"auth_time":null}}"#,
        )
        .unwrap();
        assert!(c.userinfo.contains("name"));
        assert!(c.id_token.contains("auth_time"));
        assert!(ClaimsRequest::parse("[1]").is_err());
        assert!(ClaimsRequest::parse(r#"{"userinfo":3}"#).is_err());
    }

    #[test]
    fn scopes_map_to_claims() {
        let s = by_scope(&Scopes::parse("openid email").unwrap());
        assert!(s.contains("email") && !s.contains("name"));
    }
}
