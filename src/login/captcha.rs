//! « Code à recopier »: an image made on our server (no third-party service), or for people
//! who cannot read it, a question in words. The answer waits in the ephemeral store and is
//! good for one try.

use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::app::{AppState, Internal};
use crate::crypto::{ct_eq, random_token};
use crate::web::Locale;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaMode {
    #[default]
    Image,
    Off,
}

/// What a form shows.
#[derive(Debug, Clone, Serialize)]
pub struct Challenge {
    pub id: String,
    /// `data:image/png;base64,…`
    pub image: Option<String>,
    pub question: Option<String>,
}

const TTL: Duration = Duration::from_secs(15 * 60);

fn key(id: &str) -> String {
    format!("captcha:{id}")
}

const WORDS_FR: [&str; 10] = [
    "zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf",
];
const WORDS_EN: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

impl AppState {
    /// A new challenge (`None` when `captcha = "off"`); `text` asks a question instead of an image.
    pub async fn new_captcha(
        &self,
        locale: Locale,
        text: bool,
    ) -> Result<Option<Challenge>, Internal> {
        if self.settings.captcha == CaptchaMode::Off {
            return Ok(None);
        }
        let id = random_token();
        let (answer, challenge) = if text {
            let b = crate::crypto::random_bytes::<2>();
            let (x, y) = ((b[0] % 10) as usize, (b[1] % 10) as usize);
            let q = match locale {
                Locale::Fr => format!(
                    "Combien font {} plus {} ? Répondez en chiffres.",
                    WORDS_FR[x], WORDS_FR[y]
                ),
                Locale::En => format!(
                    "What is {} plus {}? Answer in digits.",
                    WORDS_EN[x], WORDS_EN[y]
                ),
            };
            (
                (x + y).to_string(),
                Challenge {
                    id: id.clone(),
                    image: None,
                    question: Some(q),
                },
            )
        } else {
            // The captcha crate's generator is !Send: build it on a blocking thread.
            let made = tokio::task::spawn_blocking(|| {
                use captcha::filters::{Dots, Noise, Wave};
                let mut c = captcha::Captcha::new();
                c.add_chars(5)
                    .apply_filter(Noise::new(0.3))
                    .apply_filter(Wave::new(2.0, 16.0).horizontal())
                    .view(220, 90)
                    .apply_filter(Dots::new(10));
                c.as_tuple()
            })
            .await
            .ok()
            .flatten();
            let Some((answer, png)) = made else {
                tracing::error!("captcha generation failed");
                return Ok(None);
            };
            let data = format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            );
            (
                answer.to_lowercase(),
                Challenge {
                    id: id.clone(),
                    image: Some(data),
                    question: None,
                },
            )
        };
        self.eph.put(&key(&id), &answer, TTL).await?;
        Ok(Some(challenge))
    }

    /// Checks an answer and spends the challenge, right or wrong. Always true when off.
    pub async fn check_captcha(&self, id: &str, answer: &str) -> Result<bool, Internal> {
        if self.settings.captcha == CaptchaMode::Off {
            return Ok(true);
        }
        if id.is_empty() {
            return Ok(false);
        }
        let expected = self.eph.take(&key(id)).await?;
        let given = answer.trim().to_lowercase();
        Ok(expected.is_some_and(|e| ct_eq(e.as_bytes(), given.as_bytes())))
    }
}
