//! Signing keys: where each comes from and the one loader of them all.
//!
//! Every signing key the gateway holds is a 32-byte secret: the block keys
//! of its built-in ledgers and its connector key (secp256k1), its SATP
//! identity key (P-256) and the account keys of its `[[evm]]` chains
//! (secp256k1). Each is configured the same way ([`KeySource`]): as hex in
//! the configuration or the environment (`<name>_key`), or as a Web3 Secret
//! Storage (v3) keystore file (`<name>_keystore`, scrypt or pbkdf2 with
//! AES-128-CTR, the format of geth, `cast wallet` and `eth-keystore`) with
//! its password given directly (`<name>_keystore_password`) or in an
//! environment variable (`<name>_keystore_password_env`). At most one of
//! key and keystore; a keystore needs exactly one of the two password
//! settings. Neither key nor keystore means a development key generated
//! into the data directory (the callers in `app` and `satp` decide that).
//!
//! [`decrypt_keystore`] checks the file's shape before decrypting (a
//! malformed file is an error naming it, never a panic in the decryption
//! code, and its KDF cost is bounded, at most 256 MiB and twice geth's
//! standard work, so a file cannot make start-up take minutes or gigabytes;
//! it is decrypted from the text read once), and [`encrypt_keystore`] writes a new file
//! (mode 0600, never over an existing one) for `lockgate keystore`.
//!
//! No error here carries a key, a password or a character of either: they
//! name the setting, the file or the environment variable.

use std::path::{Path, PathBuf};

use crate::config::Secret;

/// Largest keystore file read (a v3 keystore is well under 1 KiB).
const KEYSTORE_BYTES_MAX: u64 = 64 * 1024;
/// Largest scrypt `n` accepted.
const SCRYPT_N_MAX: u32 = 1 << 20;
/// Largest scrypt `r` and `p` accepted.
const SCRYPT_R_P_MAX: u32 = 16;
/// Largest scrypt memory, 128·n·r bytes, as `n·r`: 2^21 (256 MiB), geth's
/// "standard" parameters (n = 2^18, r = 8). The cost bounds, not each
/// parameter alone, are what keep start-up short and small.
const SCRYPT_N_R_MAX: u64 = 1 << 21;
/// Largest scrypt work, `n·r·p` (the p lanes run one after another): 2^22,
/// twice geth's standard.
const SCRYPT_N_R_P_MAX: u64 = 1 << 22;
/// Largest pbkdf2 iteration count accepted.
const PBKDF2_C_MAX: u32 = 10_000_000;

/// Why a key cannot be loaded or stored. Never carries the key or a
/// password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The configured key is not 32 bytes of hex, or not a key of its curve.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `ledger.block_key`.
        setting: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The settings name no single source (see [`KeySource::check`]).
    #[error("{0}")]
    Settings(String),
    /// The environment variable meant to hold a keystore's password is not set.
    #[error("{setting}: the keystore password variable {var} is not set")]
    PasswordEnv {
        /// The setting naming the variable.
        setting: String,
        /// The variable.
        var: String,
    },
    /// The keystore file cannot be read or is not a v3 keystore of a
    /// 32-byte key.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The password does not open the keystore (its MAC does not match).
    #[error("keystore {path}: wrong password (the keystore's MAC does not match)")]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// A new keystore file cannot be written.
    #[error("writing keystore {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where one signing key comes from, as configured: the settings of one key
/// (see the module docs), borrowed from the configuration.
#[derive(Debug, Clone)]
pub struct KeySource<'a> {
    /// The configuration section, for messages: `ledger`, `transfers`,
    /// `satp`, `extra_ledgers (chain 4301)`, `[[evm]] (chain 31337)`.
    pub section: String,
    /// The key setting's name in the section: `block_key`, `connector_key`,
    /// `identity_key`, `key`.
    pub key_name: &'static str,
    /// The keystore setting's name: `block_keystore`, ..., `keystore`; its
    /// password settings are this name with `_password` and `_password_env`.
    pub keystore_name: &'static str,
    /// The key as hex.
    pub key: Option<&'a Secret>,
    /// The keystore file.
    pub keystore: Option<&'a Path>,
    /// The keystore's password.
    pub password: Option<&'a Secret>,
    /// The environment variable holding the keystore's password.
    pub password_env: Option<&'a str>,
}

impl KeySource<'_> {
    fn setting(&self, name: &str) -> String {
        format!("{}.{name}", self.section)
    }

    /// Checks that the settings name one source: at most one of key and
    /// keystore, and a keystore with exactly one of its password settings.
    /// The message names the settings.
    pub fn check(&self) -> Result<(), String> {
        let keystore = self.keystore_name;
        let section = &self.section;
        if self.key.is_some() && self.keystore.is_some() {
            return Err(format!(
                "{section}: give either {} or {keystore}, not both",
                self.key_name
            ));
        }
        let passwords =
            usize::from(self.password.is_some()) + usize::from(self.password_env.is_some());
        match (self.keystore.is_some(), passwords) {
            (true, 1) | (false, 0) => Ok(()),
            (true, 0) => Err(format!(
                "{section}: {keystore} needs {keystore}_password or {keystore}_password_env"
            )),
            (true, _) => Err(format!(
                "{section}: give either {keystore}_password or {keystore}_password_env, not both"
            )),
            (false, _) => Err(format!(
                "{section}: {keystore}_password or {keystore}_password_env without {keystore}"
            )),
        }
    }

    /// True when a key or keystore is configured (false: a development key).
    pub fn is_configured(&self) -> bool {
        self.key.is_some() || self.keystore.is_some()
    }

    /// The 32 secret bytes: from the hex key, or decrypted from the
    /// keystore; `None` when neither is configured.
    pub fn load(&self) -> Result<Option<[u8; 32]>, KeyError> {
        self.check().map_err(KeyError::Settings)?;
        if let Some(key) = self.key {
            return parse_hex(key)
                .map(Some)
                .map_err(|reason| KeyError::Invalid {
                    setting: self.setting(self.key_name),
                    reason,
                });
        }
        let Some(path) = self.keystore else {
            return Ok(None);
        };
        let password = match (self.password, self.password_env) {
            (Some(password), _) => password.clone(),
            (None, Some(var)) => {
                Secret::new(std::env::var(var).map_err(|_| KeyError::PasswordEnv {
                    setting: self.setting(&format!("{}_password_env", self.keystore_name)),
                    var: var.to_string(),
                })?)
            }
            // `check` refused this above.
            (None, None) => Secret::new(String::new()),
        };
        decrypt_keystore(path, &password).map(Some)
    }

    /// The secp256k1 key (block, connector and EVM keys), if configured.
    pub fn secp256k1(&self) -> Result<Option<ledger_core::SigningKey>, KeyError> {
        self.load()?
            .map(|bytes| {
                ledger_core::SigningKey::from_bytes(bytes).map_err(|_| KeyError::Invalid {
                    setting: self.setting(self.key_name),
                    reason: "not a valid secp256k1 secret key",
                })
            })
            .transpose()
    }

    /// The P-256 key (the SATP identity key), if configured.
    pub fn p256(&self) -> Result<Option<p256::ecdsa::SigningKey>, KeyError> {
        self.load()?
            .map(|bytes| {
                p256::ecdsa::SigningKey::from_slice(&bytes).map_err(|_| KeyError::Invalid {
                    setting: self.setting(self.key_name),
                    reason: "not a valid P-256 secret key",
                })
            })
            .transpose()
    }
}

/// 32 bytes of hex, with or without `0x`. The error says what is wrong
/// without repeating any of the input.
pub fn parse_hex(secret: &Secret) -> Result<[u8; 32], &'static str> {
    let text = secret.expose().trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| "must be 32 bytes of hex")?;
    Ok(bytes)
}

/// Reads and checks a v3 keystore, then decrypts it with `password`.
pub fn decrypt_keystore(path: &Path, password: &Secret) -> Result<[u8; 32], KeyError> {
    let bad = |reason: String| KeyError::Keystore {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if metadata.len() > KEYSTORE_BYTES_MAX {
        return Err(bad(format!(
            "larger than {KEYSTORE_BYTES_MAX} bytes: not a keystore"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    // Decrypted from the very text checked: the file is read once (a file
    // swapped in between, as a Kubernetes Secret update does, cannot skip
    // the checks).
    let keystore = check_shape(&text).map_err(|reason| bad(reason.to_string()))?;
    decrypt_checked(&keystore, password).map_err(|e| match e {
        Decrypt::Mac => KeyError::WrongPassword {
            path: path.to_path_buf(),
        },
        Decrypt::Kdf(reason) => bad(reason.to_string()),
    })
}

enum Decrypt {
    Mac,
    Kdf(&'static str),
}

/// Web3 Secret Storage v3 decryption of a keystore [`check_shape`] accepted:
/// the KDF, the Keccak-256 MAC over the derived key's second half and the
/// ciphertext, then AES-128-CTR.
fn decrypt_checked(
    keystore: &eth_keystore::EthKeystore,
    password: &Secret,
) -> Result<[u8; 32], Decrypt> {
    use aes::cipher::{KeyIvInit as _, StreamCipher as _};
    use eth_keystore::KdfparamsType;
    use sha3::Digest as _;
    let crypto = &keystore.crypto;
    let mut derived = [0u8; 32];
    match &crypto.kdfparams {
        KdfparamsType::Scrypt { n, p, r, salt, .. } => {
            let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| Decrypt::Kdf("scrypt n"))?;
            let params = scrypt::Params::new(log_n, *r, *p)
                .map_err(|_| Decrypt::Kdf("the scrypt parameters are not valid"))?;
            scrypt::scrypt(password.expose().as_bytes(), salt, &params, &mut derived)
                .map_err(|_| Decrypt::Kdf("the scrypt parameters are not valid"))?;
        }
        KdfparamsType::Pbkdf2 { c, salt, .. } => {
            pbkdf2::pbkdf2::<hmac::Hmac<sha2::Sha256>>(
                password.expose().as_bytes(),
                salt,
                *c,
                &mut derived,
            );
        }
    }
    let mac = sha3::Keccak256::new()
        .chain_update(&derived[16..32])
        .chain_update(&crypto.ciphertext)
        .finalize();
    if mac[..] != crypto.mac[..] {
        return Err(Decrypt::Mac);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&crypto.ciphertext);
    let mut cipher =
        ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&derived[..16], &crypto.cipherparams.iv)
            .map_err(|_| Decrypt::Kdf("the IV is not 16 bytes"))?;
    cipher.apply_keystream(&mut key);
    Ok(key)
}

/// The checks before decryption: the shape [`decrypt_checked`] relies on
/// and the bounds on the work it does.
fn check_shape(text: &str) -> Result<eth_keystore::EthKeystore, &'static str> {
    use eth_keystore::{EthKeystore, KdfType, KdfparamsType};
    let keystore: EthKeystore =
        serde_json::from_str(text).map_err(|_| "not a Web3 Secret Storage (v3) keystore")?;
    let crypto = &keystore.crypto;
    if keystore.version != 3 {
        return Err("not a version 3 keystore");
    }
    if crypto.cipher != "aes-128-ctr" {
        return Err("the cipher is not aes-128-ctr");
    }
    if crypto.cipherparams.iv.len() != 16 {
        return Err("the IV is not 16 bytes");
    }
    if crypto.ciphertext.len() != 32 {
        return Err("does not hold a 32-byte key");
    }
    if crypto.mac.len() != 32 {
        return Err("the MAC is not 32 bytes");
    }
    match (&crypto.kdf, &crypto.kdfparams) {
        (KdfType::Scrypt, KdfparamsType::Scrypt { dklen, n, p, r, .. }) => {
            if *dklen != 32 {
                return Err("the scrypt dklen is not 32");
            }
            if !n.is_power_of_two() || *n < 2 || *n > SCRYPT_N_MAX {
                return Err("the scrypt n is not a power of two from 2 to 2^20");
            }
            if *r == 0 || *r > SCRYPT_R_P_MAX || *p == 0 || *p > SCRYPT_R_P_MAX {
                return Err("the scrypt r and p must be from 1 to 16");
            }
            let (n, r, p) = (u64::from(*n), u64::from(*r), u64::from(*p));
            if n * r > SCRYPT_N_R_MAX {
                return Err("the scrypt memory, 128·n·r bytes, is above 256 MiB");
            }
            if n * r * p > SCRYPT_N_R_P_MAX {
                return Err("the scrypt work, n·r·p, is above 2^22");
            }
        }
        (KdfType::Pbkdf2, KdfparamsType::Pbkdf2 { c, dklen, prf, .. }) => {
            if *dklen != 32 {
                return Err("the pbkdf2 dklen is not 32");
            }
            if prf != "hmac-sha256" {
                return Err("the pbkdf2 prf is not hmac-sha256");
            }
            if *c == 0 || *c > PBKDF2_C_MAX {
                return Err("the pbkdf2 iteration count must be from 1 to 10000000");
            }
        }
        _ => return Err("the kdf does not match its kdfparams"),
    }
    Ok(keystore)
}

/// Writes `key` encrypted under `password` to a new keystore file at `path`
/// (scrypt n = 2^13, r = 8, p = 1, as `eth-keystore` and `cast` write), mode
/// 0600. Refuses to overwrite an existing file.
pub fn encrypt_keystore(path: &Path, key: &[u8; 32], password: &Secret) -> Result<(), KeyError> {
    let write = |source: std::io::Error| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let (Some(name), dir) = (path.file_name().and_then(|n| n.to_str()), path.parent()) else {
        return Err(write(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let dir = match dir {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Create the file first, owner-only and only if it is new; the
    // keystore library then writes into it (keeping its mode).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(write)?;
    let written = eth_keystore::encrypt_key(
        dir,
        &mut rand::thread_rng(),
        key,
        password.expose(),
        Some(name),
    );
    if let Err(error) = written {
        let _ = std::fs::remove_file(path);
        return Err(write(std::io::Error::other(error.to_string())));
    }
    Ok(())
}

/// 32 random bytes that are a valid secret key on both secp256k1 and P-256
/// (`lockgate keystore new`: one command for every kind of key).
pub fn random_key() -> Result<[u8; 32], getrandom::Error> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        if ledger_core::SigningKey::from_bytes(bytes).is_ok()
            && p256::ecdsa::SigningKey::from_slice(&bytes).is_ok()
        {
            return Ok(bytes);
        }
    }
}

/// What a key is known by in public: its address as a secp256k1 key (block,
/// connector, EVM) and its JWK and `kid` as a P-256 key (SATP identity).
/// Printed by `lockgate keystore`, so an operator can check a keystore
/// against what peers pin without the key leaving the file.
pub fn public_description(key: &[u8; 32]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Ok(k) = ledger_core::SigningKey::from_bytes(*key) {
        out.insert("address".into(), k.address().to_string().into());
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_slice(key) {
        let public = k.verifying_key();
        out.insert("identityKey".into(), adapters::satp::jws::jwk(public));
        out.insert("kid".into(), adapters::satp::jws::thumbprint(public).into());
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(
        key: Option<&'a Secret>,
        keystore: Option<&'a Path>,
        password: Option<&'a Secret>,
        password_env: Option<&'a str>,
    ) -> KeySource<'a> {
        KeySource {
            section: "ledger".into(),
            key_name: "block_key",
            keystore_name: "block_keystore",
            key,
            keystore,
            password,
            password_env,
        }
    }

    #[test]
    fn one_source_per_key() {
        let key = Secret::new(format!("0x{}", "11".repeat(32)));
        let password = Secret::new("pw".into());
        let path = Path::new("k.json");
        assert!(source(None, None, None, None).check().is_ok());
        assert!(source(Some(&key), None, None, None).check().is_ok());
        assert!(
            source(None, Some(path), Some(&password), None)
                .check()
                .is_ok()
        );
        assert!(source(None, Some(path), None, Some("PW")).check().is_ok());
        for (bad, says) in [
            (
                source(Some(&key), Some(path), Some(&password), None),
                "ledger: give either block_key or block_keystore, not both",
            ),
            (
                source(None, Some(path), None, None),
                "ledger: block_keystore needs block_keystore_password or block_keystore_password_env",
            ),
            (
                source(None, Some(path), Some(&password), Some("PW")),
                "ledger: give either block_keystore_password or block_keystore_password_env, not both",
            ),
            (
                source(Some(&key), None, None, Some("PW")),
                "ledger: block_keystore_password or block_keystore_password_env without block_keystore",
            ),
        ] {
            assert_eq!(bad.check().unwrap_err(), says);
        }
    }

    #[test]
    fn hex_errors_repeat_nothing_of_the_key() {
        let key = Secret::new("0xzz-secret-material".into());
        let error = source(Some(&key), None, None, None).load().unwrap_err();
        assert_eq!(
            error.to_string(),
            "ledger.block_key: must be 32 bytes of hex"
        );
        let short = Secret::new("0x1234".into());
        assert!(source(Some(&short), None, None, None).load().is_err());
        let zero = Secret::new("00".repeat(32));
        let error = source(Some(&zero), None, None, None)
            .secp256k1()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "ledger.block_key: not a valid secp256k1 secret key"
        );
    }

    #[test]
    fn a_keystore_round_trips_and_a_wrong_password_names_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("block.json");
        let key = random_key().unwrap();
        let password = Secret::new("correct horse battery".into());
        encrypt_keystore(&path, &key, &password).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(decrypt_keystore(&path, &password).unwrap(), key);
        let wrong = Secret::new("tr0ub4dor".into());
        let error = decrypt_keystore(&path, &wrong).unwrap_err();
        assert!(matches!(error, KeyError::WrongPassword { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains("tr0ub4dor") && !text.contains(&hex::encode(key)));
        // Never over an existing file.
        assert!(matches!(
            encrypt_keystore(&path, &key, &password),
            Err(KeyError::Write { .. })
        ));
        // Through a source, with the password in a variable that is unset.
        let unset = source(
            None,
            Some(&path),
            None,
            Some("LOCKGATE_TEST_UNSET_PASSWORD_VAR"),
        );
        let error = unset.load().unwrap_err();
        assert_eq!(
            error.to_string(),
            "ledger.block_keystore_password_env: the keystore password variable \
             LOCKGATE_TEST_UNSET_PASSWORD_VAR is not set"
        );
        let given = source(None, Some(&path), Some(&password), None);
        assert_eq!(given.load().unwrap(), Some(key));
        assert_eq!(
            given.secp256k1().unwrap().unwrap().address(),
            ledger_core::SigningKey::from_bytes(key).unwrap().address()
        );
    }

    #[test]
    fn malformed_keystores_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let password = Secret::new("pw".into());
        encrypt_keystore(&path, &[7u8; 32], &password).unwrap();
        let good: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let cases: [(&str, serde_json::Value, &str); 6] = [
            (
                "/crypto/cipherparams/iv",
                "00".into(),
                "the IV is not 16 bytes",
            ),
            (
                "/crypto/kdfparams/dklen",
                16.into(),
                "the scrypt dklen is not 32",
            ),
            (
                "/crypto/kdfparams/n",
                (1u64 << 24).into(),
                "the scrypt n is not a power of two from 2 to 2^20",
            ),
            (
                "/crypto/ciphertext",
                "00".repeat(16).into(),
                "does not hold a 32-byte key",
            ),
            (
                "/crypto/cipher",
                "aes-256-gcm".into(),
                "the cipher is not aes-128-ctr",
            ),
            ("/version", 1.into(), "not a version 3 keystore"),
        ];
        for (pointer, value, reason) in cases {
            let mut bad = good.clone();
            *bad.pointer_mut(pointer).unwrap() = value;
            let file = dir.path().join("bad.json");
            std::fs::write(&file, bad.to_string()).unwrap();
            let error = decrypt_keystore(&file, &password).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("keystore {}: {reason}", file.display()),
                "{pointer}"
            );
        }
        // The cost bounds: geth's standard (n = 2^18, r = 8, p = 1) is at
        // the memory bound; twice its memory, or more than twice its work,
        // is refused before any work is done.
        for ((n, r, p), reason) in [
            (
                (1u64 << 18, 16u64, 1u64),
                Some("the scrypt memory, 128·n·r bytes, is above 256 MiB"),
            ),
            (
                (1 << 20, 4, 1),
                Some("the scrypt memory, 128·n·r bytes, is above 256 MiB"),
            ),
            (
                (1 << 18, 8, 3),
                Some("the scrypt work, n·r·p, is above 2^22"),
            ),
            (
                (1 << 16, 16, 16),
                Some("the scrypt work, n·r·p, is above 2^22"),
            ),
            ((1 << 18, 8, 1), None),
        ] {
            let mut costly = good.clone();
            costly["crypto"]["kdfparams"]["n"] = n.into();
            costly["crypto"]["kdfparams"]["r"] = r.into();
            costly["crypto"]["kdfparams"]["p"] = p.into();
            match reason {
                Some(reason) => assert_eq!(
                    check_shape(&costly.to_string()).err(),
                    Some(reason),
                    "{n} {r} {p}"
                ),
                None => assert!(check_shape(&costly.to_string()).is_ok()),
            }
        }
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        assert!(decrypt_keystore(&dir.path().join("bad.json"), &password).is_err());
        assert!(decrypt_keystore(&dir.path().join("missing.json"), &password).is_err());
    }

    #[test]
    fn one_random_key_serves_both_curves() {
        let key = random_key().unwrap();
        let public = public_description(&key);
        assert!(public["address"].as_str().unwrap().starts_with("0x"));
        assert_eq!(public["identityKey"]["crv"], "P-256");
        assert_eq!(public["kid"].as_str().unwrap().len(), 43);
    }
}
