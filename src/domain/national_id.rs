//! The national identifier of a health professional as IGC-Santé cards carry it:
//! `8` followed by the 11-digit RPPS number, whose last digit is a Luhn check digit.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalId(String);

impl NationalId {
    /// Accepts `8` + RPPS (12 digits), or the UPN local part `8.<RPPS>`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let rpps = s
            .strip_prefix("8.")
            .or_else(|| s.strip_prefix('8'))
            .ok_or("a national identifier starts with 8")?;
        if rpps.len() != 11 || !rpps.bytes().all(|b| b.is_ascii_digit()) {
            return Err("an RPPS number has 11 digits".into());
        }
        if !luhn(rpps) {
            return Err("the RPPS check digit is wrong".into());
        }
        Ok(Self(format!("8{rpps}")))
    }

    /// From a SAN UPN such as `8.10001234567@carte-cps.fr`.
    pub fn from_upn(upn: &str) -> Result<Self, String> {
        Self::parse(upn.split('@').next().unwrap_or(""))
    }

    /// From a subject CN that starts with the identifier (`810001234567/Jean DUPONT`, …).
    pub fn from_cn(cn: &str) -> Result<Self, String> {
        let digits: String = cn
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        Self::parse(&digits)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Appends the Luhn check digit (test and tooling helper).
pub fn with_check_digit(ten: &str) -> String {
    (0..=9)
        .map(|d| format!("{ten}{d}"))
        .find(|s| luhn(s))
        .expect("one digit fits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpps_with_luhn() {
        let rpps = with_check_digit("1000123456");
        assert!(NationalId::parse(&format!("8{rpps}")).is_ok());
        assert_eq!(
            NationalId::from_upn(&format!("8.{rpps}@carte-cps.fr"))
                .unwrap()
                .as_str(),
            format!("8{rpps}")
        );
        assert_eq!(
            NationalId::from_cn(&format!("8{rpps}/Jean DUPONT"))
                .unwrap()
                .as_str(),
            format!("8{rpps}")
        );
        let mut bad = rpps.clone().into_bytes();
        bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
        assert!(NationalId::parse(&format!("8{}", String::from_utf8(bad).unwrap())).is_err());
        assert!(NationalId::parse("912345678901").is_err());
        assert!(NationalId::parse("8123").is_err());
    }
}
