//! The client side of SCRAM (RFC 5802) with SHA-256 (RFC 7677) or SHA-512,
//! as Kafka's SCRAM-SHA-256 / SCRAM-SHA-512 mechanisms use it: no channel
//! binding (`n,,`), at least 4096 iterations, and the server's signature
//! checked before the exchange counts as done.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The fewest iterations accepted (Kafka's minimum for SCRAM credentials).
const MIN_ITERATIONS: u32 = 4096;
/// The most iterations accepted, so a hostile server cannot make the client
/// spin (Kafka's own maximum is 16384).
const MAX_ITERATIONS: u32 = 1_000_000;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this hash's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramHash::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }

    /// Whether `signature` is the HMAC of `data` under `key` (constant time).
    fn verify(self, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
        match self {
            ScramHash::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.verify_slice(signature).is_ok()
            }
            ScramHash::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key size");
                m.update(data);
                m.verify_slice(signature).is_ok()
            }
        }
    }
}

/// One SCRAM exchange, client side: `client_first`, then `client_final`
/// with the server's first message, then `verify_server_final`.
pub(crate) struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    client_first_bare: String,
    /// Set by `client_final`: the server key and the auth message, to check
    /// the server's signature with.
    expected: Option<(Vec<u8>, String)>,
    /// The most PBKDF2 rounds actually computed. `None` in real exchanges;
    /// the fuzz target sets it so that each well-formed server-first does
    /// not cost thousands of rounds (the server's count is still checked).
    rounds_cap: Option<u32>,
}

impl ScramClient {
    /// A new exchange for `user` with a fresh random nonce.
    pub(crate) fn new(hash: ScramHash, user: &str, password: &str) -> ScramClient {
        let nonce: [u8; 24] = rand::random();
        ScramClient::with_nonce(hash, user, password, BASE64.encode(nonce))
    }

    fn with_nonce(hash: ScramHash, user: &str, password: &str, nonce: String) -> ScramClient {
        ScramClient {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", sasl_name(user)),
            nonce,
            expected: None,
            rounds_cap: None,
        }
    }

    /// The client-first message (`n,,n=user,r=nonce`).
    pub(crate) fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message answering `server_first`.
    ///
    /// # Errors
    /// What is wrong with `server_first` (malformed, a nonce that does not
    /// extend ours, too few or too many iterations).
    pub(crate) fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "server-first message is not UTF-8".to_string())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("m", _)) => {
                    return Err("server requires an unsupported SCRAM extension".into())
                }
                Some(("e", e)) => return Err(format!("server error: {e}")),
                Some(("r", v)) if nonce.is_none() => nonce = Some(v),
                Some(("s", v)) if salt.is_none() => salt = Some(v),
                Some(("i", v)) if iterations.is_none() => iterations = Some(v),
                _ => {} // extensions after the required attributes
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("server-first message lacks r=, s= or i=".into());
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server nonce does not extend the client nonce".into());
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| "server salt is not base64".to_string())?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "iteration count {iterations} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let h = self.hash;
        let rounds = self
            .rounds_cap
            .map_or(iterations, |cap| iterations.min(cap));
        let salted = h.salted_password(self.password.as_bytes(), &salt, rounds);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.digest(&client_key);
        // c=biws is base64("n,,"): no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.expected = Some((h.hmac(&salted, b"Server Key"), auth_message));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message's signature (`v=`).
    ///
    /// # Errors
    /// The server's error (`e=`), or a signature that does not verify
    /// (the server does not know the password: not the broker we meant).
    pub(crate) fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let Some((server_key, auth_message)) = &self.expected else {
            return Err("server-final message before client-final".into());
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| "server-final message is not UTF-8".to_string())?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(e) = first.strip_prefix("e=") {
            return Err(format!("server error: {e}"));
        }
        let Some(v) = first.strip_prefix("v=") else {
            return Err("server-final message lacks v=".into());
        };
        let signature = BASE64
            .decode(v)
            .map_err(|_| "server signature is not base64".to_string())?;
        if self
            .hash
            .verify(server_key, auth_message.as_bytes(), &signature)
        {
            Ok(())
        } else {
            Err("the server's signature does not verify".into())
        }
    }
}

/// A user name as SCRAM writes it: `,` as `=2C` and `=` as `=3D`.
fn sasl_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// For the fuzz targets only (`kpax-proto/fuzz`, target `scram`): runs the
/// client side of one exchange with the server's messages `server_first`
/// and `server_final`, as a hostile server could send them. Returns
/// whether the server was accepted; never panics.
#[doc(hidden)]
pub fn fuzz_exchange(sha512: bool, server_first: &[u8], server_final: &[u8]) -> bool {
    let hash = if sha512 {
        ScramHash::Sha512
    } else {
        ScramHash::Sha256
    };
    let mut c = ScramClient::with_nonce(hash, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL".into());
    // One PBKDF2 round instead of the server's 4,096 or more: the parsing
    // and checking around it is what is fuzzed, not the hash.
    c.rounds_cap = Some(1);
    let _ = c.client_first();
    c.client_final(server_first).is_ok() && c.verify_server_final(server_final).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    fn rfc7677() -> ScramClient {
        ScramClient::with_nonce(
            ScramHash::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        )
    }

    #[test]
    fn rfc7677_exchange() {
        let mut c = rfc7677();
        assert_eq!(c.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let fin = c.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut c = rfc7677();
        c.client_final(SERVER_FIRST.as_bytes()).unwrap();
        let e = c
            .verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        assert!(c
            .verify_server_final(b"e=invalid-proof")
            .unwrap_err()
            .contains("invalid-proof"));
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for bad in [
            "r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4000000000",
            "r=rOprNGfwEbeRWgbNEkqOx,s=***,i=4096",
            "r=rOprNGfwEbeRWgbNEkqOx,i=4096",
            "m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "",
        ] {
            assert!(rfc7677().client_final(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(rfc7677().client_final(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn user_names_are_escaped() {
        assert_eq!(sasl_name("a=b,c"), "a=3Db=2Cc");
        let c = ScramClient::new(ScramHash::Sha512, "x,y", "p");
        assert!(String::from_utf8(c.client_first())
            .unwrap()
            .starts_with("n,,n=x=2Cy,r="));
    }
}
