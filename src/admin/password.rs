//! Password hashes in the werkzeug format that Airflow's FAB security
//! manager writes to `ab_user.password`: `method$salt$hex`, with method
//! `pbkdf2:<sha256|sha512>:<iterations>` (Airflow 2, Werkzeug 2.2; also
//! accepted by Werkzeug 3) or `scrypt:<N>:<r>:<p>` (Airflow 3, Werkzeug
//! 3.1, FAB's default). The salt is used as its ASCII text, the digest is
//! hex, scrypt derives 64 bytes. Comparison is constant-time.

use hmac::Hmac;

use crate::digest::hex;
use rand::Rng as _;
use subtle::ConstantTimeEq as _;

/// Why a stored hash cannot be checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    /// Not `method$salt$hash`.
    #[error("not a werkzeug password hash")]
    Malformed,
    /// A method windsock does not implement (e.g. the plain `sha256$…` of
    /// very old installs, or LDAP/OAuth users without a password).
    #[error("unsupported hash method `{0}`")]
    Unsupported(String),
}

/// How to hash a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `pbkdf2:sha256:<iterations>`.
    Pbkdf2Sha256 {
        /// Rounds.
        iterations: u32,
    },
    /// `scrypt:<n>:<r>:<p>`.
    Scrypt {
        /// CPU/memory cost (a power of two).
        n: u32,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
    },
}

impl Method {
    /// What FAB writes on Airflow 2 (Werkzeug 2.2 default).
    pub const AIRFLOW_2: Method = Method::Pbkdf2Sha256 {
        iterations: 260_000,
    };
    /// What FAB writes on Airflow 3 (Werkzeug 3.1 scrypt default).
    pub const AIRFLOW_3: Method = Method::Scrypt {
        n: 32_768,
        r: 8,
        p: 1,
    };

    /// The method FAB uses for an Airflow major version.
    pub fn for_major(major: u8) -> Method {
        if major >= 3 {
            Method::AIRFLOW_3
        } else {
            Method::AIRFLOW_2
        }
    }
}

/// Largest pbkdf2 iteration count and scrypt cost accepted in a stored
/// hash (werkzeug's defaults are 1,000,000 and 2^15).
const MAX_ITERATIONS: u32 = 10_000_000;
const MAX_SCRYPT_N: u32 = 1 << 20;

fn derive(method: &str, salt: &str, password: &str) -> Result<Vec<u8>, HashError> {
    let parts: Vec<&str> = method.split(':').collect();
    let num = |s: &str| s.parse::<u32>().map_err(|_| HashError::Malformed);
    match parts.as_slice() {
        ["pbkdf2", digest, iterations] => {
            let iterations = num(iterations)?;
            // werkzeug writes 260k-1M; far more is a hash made to stall us.
            if iterations == 0 || iterations > MAX_ITERATIONS {
                return Err(HashError::Malformed);
            }
            match *digest {
                "sha256" => {
                    let mut out = [0u8; 32];
                    pbkdf2::pbkdf2::<Hmac<sha2::Sha256>>(
                        password.as_bytes(),
                        salt.as_bytes(),
                        iterations,
                        &mut out,
                    )
                    .map_err(|_| HashError::Malformed)?;
                    Ok(out.to_vec())
                }
                "sha512" => {
                    let mut out = [0u8; 64];
                    pbkdf2::pbkdf2::<Hmac<sha2::Sha512>>(
                        password.as_bytes(),
                        salt.as_bytes(),
                        iterations,
                        &mut out,
                    )
                    .map_err(|_| HashError::Malformed)?;
                    Ok(out.to_vec())
                }
                other => Err(HashError::Unsupported(format!("pbkdf2:{other}"))),
            }
        }
        ["scrypt", n, r, p] => {
            let (n, r, p) = (num(n)?, num(r)?, num(p)?);
            if !n.is_power_of_two() || !(2..=MAX_SCRYPT_N).contains(&n) || r > 64 || p > 16 {
                return Err(HashError::Malformed);
            }
            let params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, 64)
                .map_err(|_| HashError::Malformed)?;
            let mut out = [0u8; 64];
            scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out)
                .map_err(|_| HashError::Malformed)?;
            Ok(out.to_vec())
        }
        _ => Err(HashError::Unsupported(method.to_owned())),
    }
}

/// Whether `password` matches the stored hash.
pub fn verify(stored: &str, password: &str) -> Result<bool, HashError> {
    let mut it = stored.splitn(3, '$');
    let (Some(method), Some(salt), Some(digest)) = (it.next(), it.next(), it.next()) else {
        return Err(HashError::Malformed);
    };
    let got = hex(&derive(method, salt, password)?);
    Ok(got.len() == digest.len() && bool::from(got.as_bytes().ct_eq(digest.as_bytes())))
}

/// A new hash of `password`, with a random 16-character salt (as werkzeug).
pub fn generate(method: Method, password: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let salt: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let method = match method {
        Method::Pbkdf2Sha256 { iterations } => format!("pbkdf2:sha256:{iterations}"),
        Method::Scrypt { n, r, p } => format!("scrypt:{n}:{r}:{p}"),
    };
    // The parameters are ours and valid, so derivation cannot fail.
    let digest = derive(&method, &salt, password)
        .map(|d| hex(&d))
        .unwrap_or_default();
    format!("{method}${salt}${digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        for m in [
            Method::Pbkdf2Sha256 { iterations: 1000 },
            Method::Scrypt {
                n: 1024,
                r: 8,
                p: 1,
            },
        ] {
            let h = generate(m, "pässwörd/1");
            assert_eq!(verify(&h, "pässwörd/1"), Ok(true), "{h}");
            assert_eq!(verify(&h, "pässwörd/2"), Ok(false));
            assert_eq!(h.split('$').nth(1).unwrap().len(), 16);
        }
        assert_eq!(verify("nonsense", "x"), Err(HashError::Malformed));
        assert!(matches!(
            verify("sha256$salt$abcd", "x"),
            Err(HashError::Unsupported(_))
        ));
        assert_eq!(
            verify("scrypt:1000:8:1$s$ab", "x"),
            Err(HashError::Malformed)
        );
        assert_eq!(Method::for_major(2), Method::AIRFLOW_2);
        assert_eq!(Method::for_major(3), Method::AIRFLOW_3);
    }
}
