//! RFC 6238 TOTP with `totp-rs`: enrollment material (base32 secret, `otpauth://` URI, QR
//! codes) and constant-time code checks within ±1 time step.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};
use totp_rs::{Algorithm, Builder, Totp};
use twofold_domain::secrets::TotpParams;
use twofold_domain::TotpAlgorithm;
use twofold_services::ports::{TotpEngine, TotpError, TotpProvisioning};
use zeroize::Zeroizing;

use super::qr;

/// The issuer shown when the tenant's name is blank after cleaning.
const FALLBACK_ISSUER: &str = "Twofold";

/// The account shown when the label is blank after cleaning.
const FALLBACK_ACCOUNT: &str = "user";

/// The [`TotpEngine`] of the service: RFC 6238 over `totp-rs`, Google Authenticator compatible.
#[derive(Debug, Clone, Copy, Default)]
pub struct RfcTotp;

fn algorithm(algorithm: TotpAlgorithm) -> Algorithm {
    match algorithm {
        TotpAlgorithm::Sha1 => Algorithm::SHA1,
        TotpAlgorithm::Sha256 => Algorithm::SHA256,
        TotpAlgorithm::Sha512 => Algorithm::SHA512,
    }
}

/// A label part as `issuer:account` allows it: no `:`, trimmed, `fallback` when blank.
fn label_part(raw: &str, fallback: &str) -> String {
    let cleaned = raw.replace(':', " ");
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned.to_owned()
    }
}

fn builder(secret: &[u8], params: &TotpParams) -> Builder {
    Builder::new()
        .with_algorithm(algorithm(params.algorithm))
        .with_digits(params.digits)
        .with_secret(secret)
        .with_skew(1)
        .with_step_duration(u64::from(params.period))
}

/// Appends `key=value` to the URI's query unless the key is there. `totp-rs` leaves out
/// parameters at their default (SHA1, 6 digits, 30 s); we always write them, so what the app
/// uses never depends on its defaults.
fn ensure_param(uri: &mut String, key: &str, value: &str) {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let present = query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == key);
    if !present {
        uri.push(if uri.contains('?') { '&' } else { '?' });
        uri.push_str(key);
        uri.push('=');
        uri.push_str(value);
    }
}

impl TotpEngine for RfcTotp {
    fn provision(
        &self,
        secret: &[u8],
        params: &TotpParams,
        issuer: &str,
        account: &str,
    ) -> Result<TotpProvisioning, TotpError> {
        let totp = builder(secret, params)
            .with_account_name(label_part(account, FALLBACK_ACCOUNT))
            .with_issuer(Some(label_part(issuer, FALLBACK_ISSUER)))
            .build()
            .map_err(|e| TotpError::Failed(e.to_string()))?;
        let mut uri = totp
            .to_url()
            .map_err(|e| TotpError::Failed(e.to_string()))?;
        ensure_param(&mut uri, "algorithm", params.algorithm.as_str());
        ensure_param(&mut uri, "digits", &params.digits.to_string());
        ensure_param(&mut uri, "period", &params.period.to_string());
        if !qr::fits(&uri) {
            return Err(TotpError::TooLongForQr(uri.len()));
        }
        Ok(TotpProvisioning {
            secret_base32: totp.secret().to_base32(),
            uri,
        })
    }

    fn qr_png(&self, uri: &str) -> Result<String, TotpError> {
        let code = qr::encode(uri).map_err(|_| TotpError::TooLongForQr(uri.len()))?;
        qr::png_data_uri(&code).map_err(|e| TotpError::Failed(e.to_string()))
    }

    fn qr_svg(&self, uri: &str) -> Result<String, TotpError> {
        qr::svg(uri).map_err(|_| TotpError::TooLongForQr(uri.len()))
    }

    fn matching_step(
        &self,
        secret: &[u8],
        params: &TotpParams,
        code: &str,
        unix_time: u64,
    ) -> Option<u64> {
        let code: Zeroizing<String> =
            Zeroizing::new(code.chars().filter(|c| !c.is_whitespace()).collect());
        if code.len() != usize::from(params.digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Refuses what RFC 6238 does not allow (short secret, digits outside 6..=8, period 0).
        let totp: Totp = builder(secret, params).build().ok()?;
        let period = u64::from(params.period);
        let origin = unix_time / period;
        // Every step is computed and compared, whatever matched: the time taken does not say
        // which step (if any) matched. Steps ascend, so on a double match the highest wins.
        let mut matched = Choice::from(0);
        let mut step_found = 0u64;
        for step in [origin.checked_sub(1), Some(origin), origin.checked_add(1)]
            .into_iter()
            .flatten()
        {
            let Some(at) = step.checked_mul(period) else {
                continue;
            };
            let expected = Zeroizing::new(totp.generate(at).to_string());
            let equal = expected.as_bytes().ct_eq(code.as_bytes());
            step_found = u64::conditional_select(&step_found, &step, equal);
            matched |= equal;
        }
        CtOption::new(step_found, matched).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn params(algorithm: TotpAlgorithm, digits: u8) -> TotpParams {
        TotpParams {
            algorithm,
            digits,
            period: TotpParams::PERIOD,
        }
    }

    /// RFC 6238 Appendix B.
    #[test]
    fn rfc6238_test_vectors() {
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in table {
            for (seed, alg, code) in [
                (SEED_SHA1, TotpAlgorithm::Sha1, sha1),
                (SEED_SHA256, TotpAlgorithm::Sha256, sha256),
                (SEED_SHA512, TotpAlgorithm::Sha512, sha512),
            ] {
                assert_eq!(
                    RfcTotp.matching_step(seed, &params(alg, 8), code, time),
                    Some(time / 30),
                    "{alg:?} at {time}"
                );
            }
        }
    }

    /// RFC 4226 Appendix D: HOTP counter c is TOTP step c.
    #[test]
    fn rfc4226_hotp_values() {
        let codes = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let p = params(TotpAlgorithm::Sha1, 6);
        for (counter, code) in codes.iter().enumerate() {
            let counter = counter as u64;
            assert_eq!(
                RfcTotp.matching_step(SEED_SHA1, &p, code, counter * 30),
                Some(counter),
                "counter {counter}"
            );
        }
    }

    #[test]
    fn window_is_plus_minus_one_step() {
        let p = params(TotpAlgorithm::Sha1, 6);
        // 287922 is step 6, 162583 step 7, 399871 step 8, 520489 step 9.
        let at_step_7 = 7 * 30 + 12;
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &p, "287922", at_step_7),
            Some(6)
        );
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &p, "162583", at_step_7),
            Some(7)
        );
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &p, "399871", at_step_7),
            Some(8)
        );
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &p, "520489", at_step_7),
            None
        );
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &p, "254676", at_step_7),
            None
        ); // step 5
           // At time 0 there is no step -1; step 0 and 1 still match.
        assert_eq!(RfcTotp.matching_step(SEED_SHA1, &p, "755224", 0), Some(0));
        assert_eq!(RfcTotp.matching_step(SEED_SHA1, &p, "287082", 0), Some(1));
        assert_eq!(RfcTotp.matching_step(SEED_SHA1, &p, "359152", 0), None);
        // The far end of time does not overflow.
        let _ = RfcTotp.matching_step(SEED_SHA1, &p, "123456", u64::MAX);
    }

    #[test]
    fn malformed_or_wrong_codes_are_refused() {
        let p = params(TotpAlgorithm::Sha1, 6);
        for code in [
            "755225",
            "75522",
            "7552244",
            "",
            "75522a",
            "+55224",
            "-55224",
            "７５５２２４",
            "755224\0",
        ] {
            assert_eq!(
                RfcTotp.matching_step(SEED_SHA1, &p, code, 0),
                None,
                "{code:?}"
            );
        }
        // 8-digit enrollments refuse 6-digit codes and the other way round.
        assert_eq!(
            RfcTotp.matching_step(SEED_SHA1, &params(TotpAlgorithm::Sha1, 8), "755224", 0),
            None
        );
        assert_eq!(RfcTotp.matching_step(SEED_SHA1, &p, "84755224", 0), None);
        // A secret below RFC 4226's 128 bits is refused, not used.
        assert_eq!(RfcTotp.matching_step(b"short", &p, "755224", 0), None);
    }

    #[test]
    fn spaces_are_ignored() {
        let p = params(TotpAlgorithm::Sha1, 6);
        for code in ["755 224", " 755224 ", "7 5 5 2 2 4", "755\t224"] {
            assert_eq!(
                RfcTotp.matching_step(SEED_SHA1, &p, code, 0),
                Some(0),
                "{code:?}"
            );
        }
    }

    fn decode_png(data_uri: &str) -> String {
        use base64::Engine as _;
        let b64 = data_uri.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn provisioning_material_is_consistent() {
        let secret = [0xA5u8; 20];
        let p = params(TotpAlgorithm::Sha1, 6);
        let out = RfcTotp
            .provision(&secret, &p, "Acme: Corp", " alice@example.com ")
            .unwrap();
        assert_eq!(out.secret_base32, "UWS2LJNFUWS2LJNFUWS2LJNFUWS2LJNF");
        assert!(out
            .uri
            .starts_with("otpauth://totp/Acme%20%20Corp:alice%40example.com?"));
        for part in [
            "secret=UWS2LJNFUWS2LJNFUWS2LJNFUWS2LJNF",
            "issuer=Acme%20%20Corp",
            "algorithm=SHA1",
            "digits=6",
            "period=30",
        ] {
            assert!(out.uri.contains(part), "{part} in {}", out.uri);
        }
        // The URI round-trips through totp-rs's own parser to the same code generator.
        let parsed = Totp::from_url(&out.uri).unwrap();
        assert_eq!(parsed.secret().as_bytes(), &secret);
        assert_eq!(parsed.issuer(), Some("Acme  Corp"));
        assert_eq!(parsed.account_name(), "alice@example.com");
        assert_eq!(decode_png(&RfcTotp.qr_png(&out.uri).unwrap()), out.uri);
        assert!(RfcTotp.qr_svg(&out.uri).unwrap().starts_with("<svg"));
        assert!(!format!("{out:?}").contains("UWS2"));
    }

    #[test]
    fn provisioning_writes_non_default_parameters_once() {
        let secret = [0x11u8; 32];
        let p = params(TotpAlgorithm::Sha512, 8);
        let out = RfcTotp.provision(&secret, &p, "Acme", "").unwrap();
        assert!(
            out.uri.starts_with("otpauth://totp/Acme:user?"),
            "{}",
            out.uri
        );
        for key in ["secret=", "issuer=", "algorithm=", "digits=", "period="] {
            assert_eq!(out.uri.matches(key).count(), 1, "{key} in {}", out.uri);
        }
        assert!(out.uri.contains("algorithm=SHA512") && out.uri.contains("digits=8"));
        let parsed = Totp::from_url(&out.uri).unwrap();
        assert_eq!(parsed.algorithm(), Algorithm::SHA512);
        assert_eq!(parsed.digits(), 8);
        assert_eq!(decode_png(&RfcTotp.qr_png(&out.uri).unwrap()), out.uri);
        // A code from the provisioned generator is accepted.
        let code = parsed.generate(1_700_000_000).to_string();
        assert_eq!(
            RfcTotp.matching_step(&secret, &p, &code, 1_700_000_000),
            Some(1_700_000_000 / 30)
        );
        // A blank issuer and a colon-only account get readable fallbacks.
        let out = RfcTotp.provision(&secret, &p, " : ", ":").unwrap();
        assert!(
            out.uri.starts_with("otpauth://totp/Twofold:user?"),
            "{}",
            out.uri
        );
    }

    #[test]
    fn short_secrets_cannot_be_provisioned() {
        let err = RfcTotp
            .provision(&[1; 10], &params(TotpAlgorithm::Sha1, 6), "Acme", "a")
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot build the TOTP enrollment"),
            "{err}"
        );
    }
}
