//! `argon2-time [ITERATIONS]`: verifies one password ITERATIONS times (default 30) with
//! argon2id m=19456 KiB, t=2, p=1 (Sésame's defaults), first on one thread, then on
//! `nproc` threads at once, and prints one JSON line:
//! {"m_kib","t","p","threads","ms_per_hash_1thread_median","ms_per_hash_1thread_min",
//!  "hashes_per_s_all_threads"}

use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

const M_KIB: u32 = 19_456;
const T: u32 = 2;
const P: u32 = 1;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(M_KIB, T, P, None).expect("params"),
    );
    let stored = argon
        .hash_password(b"Secret#123")
        .expect("hash")
        .to_string();
    let verify = |argon: &Argon2| {
        let parsed = PasswordHash::new(&stored).expect("phc");
        argon
            .verify_password(b"Secret#123", &parsed)
            .expect("verify");
    };
    // warm-up
    for _ in 0..3 {
        verify(&argon);
    }
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            verify(&argon);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    verify(&argon);
                }
            });
        }
    });
    let rate = (threads * n) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{{\"m_kib\":{M_KIB},\"t\":{T},\"p\":{P},\"threads\":{threads},\"iterations\":{n},\"ms_per_hash_1thread_median\":{:.3},\"ms_per_hash_1thread_min\":{:.3},\"hashes_per_s_all_threads\":{:.2}}}",
        ms[ms.len() / 2],
        ms[0],
        rate
    );
}
