//! A small SMTP server on loopback that keeps what it receives, for reading e-mails in tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
pub struct Sink {
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub raw: String,
}

impl Sink {
    /// Listens on `addr` (use a free port); runs until the test ends.
    pub async fn start(addr: &str) -> (Self, String) {
        let listener = TcpListener::bind(addr).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink::default();
        let mails = sink.mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mails = mails.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let (mut to, mut data, mut in_data) = (String::new(), String::new(), false);
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                mails.lock().unwrap().push(Mail {
                                    to: to.clone(),
                                    raw: std::mem::take(&mut data),
                                });
                                let _ = w.write_all(b"250 queued\r\n").await;
                            } else {
                                data.push_str(
                                    line.strip_prefix('.')
                                        .filter(|_| line.starts_with(".."))
                                        .unwrap_or(&line),
                                );
                                data.push('\n');
                            }
                            continue;
                        }
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to = line[8..].trim().trim_matches(['<', '>']).to_owned();
                            b"250 ok\r\n"
                        } else if upper.starts_with("DATA") {
                            in_data = true;
                            b"354 go on\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        (sink, format!("smtp://127.0.0.1:{port}"))
    }

    /// Waits for the `n`-th mail (1-based) to `to`, and returns its plain-text part.
    pub async fn wait_for(&self, to: &str, n: usize) -> String {
        for _ in 0..100 {
            let found: Vec<Mail> = self
                .mails
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.to == to)
                .cloned()
                .collect();
            if found.len() >= n {
                return plain_text(&found[n - 1].raw);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail #{n} for {to}");
    }

    pub fn count(&self, to: &str) -> usize {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to == to)
            .count()
    }
}

/// The decoded text/plain part of a MIME message (quoted-printable, base64 or 7bit).
pub fn plain_text(raw: &str) -> String {
    let part = raw
        .split("Content-Type: text/plain")
        .nth(1)
        .expect("a text/plain part");
    let (head, body) = part.split_once("\n\n").expect("part headers");
    let body = body.split("\n--").next().unwrap_or(body);
    if head.contains("quoted-printable") {
        decode_qp(body)
    } else if head.contains("base64") {
        let compact: String = body.split_whitespace().collect();
        String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, compact).unwrap(),
        )
        .unwrap()
    } else {
        body.to_owned()
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
