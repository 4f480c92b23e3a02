//! minijinja pages, embedded in the binary so that `sesame` runs from any folder.
//! Strings come from `templates/locales/<locale>.toml` through the `t(key)` function.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, State, context};

use super::Locale;
use crate::config::Branding;

/// A page template, embedded at build time.
macro_rules! page {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../templates/pages/", $name)),
        )
    };
}

const PAGES: &[(&str, &str)] = &[
    page!("base.html"),
    page!("login.html"),
    page!("consent.html"),
    page!("error.html"),
    page!("logout.html"),
    page!("logged_out.html"),
    page!("home.html"),
    page!("password_change.html"),
    page!("password_done.html"),
    page!("forgot.html"),
    page!("forgot_sent.html"),
    page!("reset.html"),
    page!("account.html"),
    page!("_policy.html"),
    page!("_captcha.html"),
    page!("totp.html"),
    page!("totp_enrol.html"),
    page!("passkey.html"),
    page!("passkey_enrol.html"),
    page!("_passkey_form.html"),
];

pub const CSS: &str = include_str!("../../templates/static/sesame.css");
pub const PASSKEY_JS: &str = include_str!("../../templates/static/passkey.js");

type Strings = HashMap<Locale, HashMap<String, String>>;

static STRINGS: LazyLock<Strings> = LazyLock::new(|| {
    let parse = |src: &str| -> HashMap<String, String> {
        toml::from_str(src).expect("locale files are valid TOML")
    };
    HashMap::from([
        (
            Locale::Fr,
            parse(include_str!("../../templates/locales/fr.toml")),
        ),
        (
            Locale::En,
            parse(include_str!("../../templates/locales/en.toml")),
        ),
    ])
});

/// One localised string; a missing key shows as itself (a test keeps both files complete).
pub fn text(locale: Locale, key: &str) -> String {
    STRINGS
        .get(&locale)
        .and_then(|m| m.get(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// A localised string with its `{n}` filled in.
pub fn text_n(locale: Locale, key: &str, n: i64) -> String {
    text(locale, key).replace("{n}", &n.to_string())
}

#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    pub fn new(branding: &Branding) -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(minijinja::default_auto_escape_callback);
        for (name, src) in PAGES {
            env.add_template(name, src)
                .expect("embedded templates compile");
        }
        env.add_global(
            "brand",
            Value::from(minijinja::value::Serde(branding.clone())),
        );
        env.add_function(
            "t",
            |state: &State, key: &str, kwargs: Kwargs| -> Result<String, minijinja::Error> {
                let n: Option<i64> = kwargs.get("n")?;
                kwargs.assert_all_used()?;
                let locale = match state.lookup("locale").as_ref().and_then(|v| v.as_str()) {
                    Some("en") => Locale::En,
                    _ => Locale::Fr,
                };
                Ok(match n {
                    Some(n) => text_n(locale, key, n),
                    None => text(locale, key),
                })
            },
        );
        Self { env: Arc::new(env) }
    }

    /// Renders a page; `ctx` is merged with the locale. A template error is a bug: it is
    /// logged and the user gets a bare page rather than a panic.
    pub fn render(&self, name: &str, locale: Locale, ctx: Value) -> String {
        let ctx = context! { locale => locale.as_str(), ..ctx };
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(template = name, error = %e, detail = ?e, "template rendering failed");
                #[cfg(debug_assertions)]
                eprintln!("template {name} failed: {e:#} {:?}", e.detail());
                "<!doctype html><title>Erreur</title><p>Erreur interne / Internal error</p>"
                    .to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_have_the_same_keys() {
        let fr: std::collections::BTreeSet<_> = STRINGS[&Locale::Fr].keys().collect();
        let en: std::collections::BTreeSet<_> = STRINGS[&Locale::En].keys().collect();
        assert_eq!(fr, en);
    }

    #[test]
    fn every_template_renders_and_escapes() {
        let t = Templates::new(&Branding::default());
        for (name, _) in PAGES {
            let html = t.render(
                name,
                Locale::Fr,
                context! {
                    error => "<script>", username => "<b>", heading => "expired.title", message => "change.done",
                    policy => Value::from(minijinja::value::Serde(crate::config::PasswordSettings::default())),
                    errors => vec!["<script>"], signed_in_name => "<b>",
                },
            );
            assert!(!html.contains("<script>"), "{name} must escape");
            assert!(!html.contains("Internal error"), "{name} failed to render");
            if let Some(title) = html
                .split("<title>")
                .nth(1)
                .and_then(|t| t.split("</title>").next())
            {
                assert!(!title.contains('<'), "{name}: markup in the title");
            }
        }
    }
}
