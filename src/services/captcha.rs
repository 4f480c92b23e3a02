//! « Code à recopier »: an image made on our server (no third-party service), or for people
//! who cannot read it, the same kind of code spelled out for a screen reader ("B comme
//! Bravo ; 7 (sept) ; …"). The answer waits in the ephemeral store and is good for one try.
//!
//! The spelled-out code is drawn from 32^6 = 2^30 answers, so guessing is hopeless; a script
//! written for this very page can still read it, as it could any text, which is why the
//! pages that ask for it are throttled per address and per account.

use std::time::Duration;

use base64::Engine;
use serde::Serialize;

use crate::crypto::{ct_eq, random_token};
use crate::state::{AppState, Internal};
use crate::web::Locale;

pub use crate::config::CaptchaMode;

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

/// Length of the spelled-out code.
const TEXT_LEN: usize = 6;

/// 24 letters and 8 digits, none easy to mistake for another by ear or by eye (no I, O, 0
/// or 1); letters are spelled with the ICAO words, used in French too.
const LETTERS: [(char, &str); 24] = [
    ('A', "Alpha"),
    ('B', "Bravo"),
    ('C', "Charlie"),
    ('D', "Delta"),
    ('E', "Echo"),
    ('F', "Foxtrot"),
    ('G', "Golf"),
    ('H', "Hotel"),
    ('J', "Juliett"),
    ('K', "Kilo"),
    ('L', "Lima"),
    ('M', "Mike"),
    ('N', "November"),
    ('P', "Papa"),
    ('Q', "Quebec"),
    ('R', "Romeo"),
    ('S', "Sierra"),
    ('T', "Tango"),
    ('U', "Uniform"),
    ('V', "Victor"),
    ('W', "Whiskey"),
    ('X', "X-ray"),
    ('Y', "Yankee"),
    ('Z', "Zulu"),
];
const DIGITS: [(char, &str, &str); 8] = [
    ('2', "deux", "two"),
    ('3', "trois", "three"),
    ('4', "quatre", "four"),
    ('5', "cinq", "five"),
    ('6', "six", "six"),
    ('7', "sept", "seven"),
    ('8', "huit", "eight"),
    ('9', "neuf", "nine"),
];

/// A spelled-out code: (answer, question).
fn spelled_code(locale: Locale) -> (String, String) {
    let (mut answer, mut spelled) = (String::new(), Vec::new());
    // 256 is a multiple of 32: every symbol is equally likely.
    for b in crate::crypto::random_bytes::<TEXT_LEN>() {
        let i = b as usize % (LETTERS.len() + DIGITS.len());
        let (c, said) = match (LETTERS.get(i), locale) {
            (Some((c, word)), Locale::Fr) => (*c, format!("{c} comme {word}")),
            (Some((c, word)), Locale::En) => (*c, format!("{c} as in {word}")),
            (None, _) => {
                let (c, fr, en) = DIGITS[i - LETTERS.len()];
                let word = if locale == Locale::Fr { fr } else { en };
                (c, format!("{c} ({word})"))
            }
        };
        answer.push(c.to_ascii_lowercase());
        spelled.push(said);
    }
    let question = match locale {
        Locale::Fr => format!(
            "Recopiez ces {TEXT_LEN} caractères, sans espaces : {}.",
            spelled.join(" ; ")
        ),
        Locale::En => format!(
            "Type these {TEXT_LEN} characters, without spaces: {}.",
            spelled.join("; ")
        ),
    };
    (answer, question)
}

impl AppState {
    /// A new challenge (`None` when `captcha = "off"`); `text` spells a code out instead of
    /// showing an image.
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
            let (answer, question) = spelled_code(locale);
            (
                answer,
                Challenge {
                    id: id.clone(),
                    image: None,
                    question: Some(question),
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
        // Spaces or capitals typed while following the spelling do not count.
        let given: String = answer
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        Ok(expected.is_some_and(|e| ct_eq(e.as_bytes(), given.as_bytes())))
    }
}
