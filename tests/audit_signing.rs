//! Signed checkpoints end to end: `audit keygen`, `audit checkpoint --sign`
//! over a log the real server wrote, and `audit verify --checkpoint FILE
//! --public-key KEY`, for SM2 and Ed25519.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{action, cli, staff, Server, E_SYNCED, P_CLERK};
use serde_json::{json, Value};
use sha2::Digest as _;
use sm2::pkcs8::DecodePrivateKey;

const ALGORITHMS: [&str; 2] = ["sm2", "ed25519"];
/// `audit verify`'s exit code for a signed checkpoint that is not genuine.
const BAD_SIGNATURE: i32 = 5;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data directory whose decision log the real server wrote: a few
/// authorize decisions, then a clean stop.
fn log_with_records(dir: &Path, functions: &[&str]) -> PathBuf {
    let data = dir.join("data");
    let s = Server::demo_in(&data, &[]);
    for f in functions {
        s.authorize(
            &staff(E_SYNCED, P_CLERK),
            &action("useFunction"),
            &format!("Function::\"{f}\""),
            json!({}),
        );
    }
    s.stop();
    data
}

fn run_keygen(algorithm: &str, prefix: &Path) -> (i32, String, String) {
    cli(&[
        "audit",
        "keygen",
        "--algorithm",
        algorithm,
        "--out",
        path(prefix),
    ])
}

/// Runs `audit keygen`; answers the fingerprint it printed and its output.
fn keygen(algorithm: &str, prefix: &Path) -> (String, String) {
    let (code, out, err) = run_keygen(algorithm, prefix);
    assert_eq!(code, 0, "{out}{err}");
    let fingerprint = out
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint ("))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no fingerprint printed: {out}"))
        .to_owned();
    (fingerprint, format!("{out}{err}"))
}

fn run_sign(data: &Path, key: &Path, out: Option<&Path>) -> (i32, String, String) {
    let mut args = vec![
        "audit",
        "checkpoint",
        "--data",
        path(data),
        "--sign",
        path(key),
    ];
    if let Some(out) = out {
        args.extend(["--out", path(out)]);
    }
    cli(&args)
}

/// Signs the head with `key` into the new file `out`; answers the JSON.
fn sign(data: &Path, key: &Path, out: &Path) -> Value {
    let (code, stdout, err) = run_sign(data, key, Some(out));
    assert_eq!(code, 0, "{stdout}{err}");
    for secret in secret_material(key) {
        assert!(
            !stdout.contains(&secret) && !err.contains(&secret),
            "signing printed private key material"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        stdout,
        "the file holds what was printed"
    );
    serde_json::from_str(&stdout).unwrap()
}

fn verify(data: &Path, checkpoint: &Path, key: Option<&Path>) -> (i32, String, String) {
    let mut args = vec![
        "audit",
        "verify",
        "--data",
        path(data),
        "--checkpoint",
        path(checkpoint),
    ];
    if let Some(key) = key {
        args.extend(["--public-key", path(key)]);
    }
    cli(&args)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", prefix.display()))
}

/// The private scalar in hex and the PEM's base64 lines: none of it may
/// ever appear in what a command prints.
fn secret_material(key_file: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(key_file).unwrap();
    let scalar = match ed25519_dalek::SigningKey::from_pkcs8_pem(&pem) {
        Ok(k) => hex::encode(k.to_bytes()),
        Err(_) => hex::encode(sm2::SecretKey::from_pkcs8_pem(&pem).unwrap().to_bytes()),
    };
    let mut material: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    material.push(scalar);
    material
}

/// The fingerprint computed apart from the service's code: the PEM's DER,
/// hashed with SM3 (SM2 keys) or SHA-256 (Ed25519 keys).
fn fingerprint_of(pub_file: &Path, algorithm: &str) -> String {
    let pem = std::fs::read(pub_file).unwrap();
    let (label, der) = sm2::pkcs8::der::pem::decode_vec(&pem).unwrap();
    assert_eq!(label, "PUBLIC KEY");
    match algorithm {
        "sm2" => hex::encode(sm3::Sm3::digest(&der)),
        _ => hex::encode(sha2::Sha256::digest(&der)),
    }
}

#[test]
fn keygen_writes_a_pair_whose_private_half_only_its_owner_reads() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ALGORITHMS {
        let prefix = dir.path().join(format!("auditor-{algorithm}"));
        let (fingerprint, printed) = keygen(algorithm, &prefix);
        let (private, public) = (with_suffix(&prefix, ".key"), with_suffix(&prefix, ".pub"));

        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{algorithm} private key mode {mode:o}");
        let text = std::fs::read_to_string(&private).unwrap();
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "PKCS#8 PEM: {algorithm}"
        );
        let pub_text = std::fs::read_to_string(&public).unwrap();
        assert!(
            pub_text.starts_with("-----BEGIN PUBLIC KEY-----\n"),
            "SPKI PEM: {algorithm}"
        );
        assert_eq!(fingerprint, fingerprint_of(&public, algorithm));
        for secret in secret_material(&private) {
            assert!(
                !printed.contains(&secret),
                "keygen printed private key material"
            );
        }

        // A second keygen to the same prefix changes nothing.
        let (code, out, err) = run_keygen(algorithm, &prefix);
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&private).unwrap(), text);
        assert_eq!(std::fs::read_to_string(&public).unwrap(), pub_text);
    }
    let (code, _, err) = run_keygen("rsa", &dir.path().join("x"));
    assert_ne!(code, 0);
    assert!(err.contains("rsa"), "{err}");
    assert!(!dir.path().join("x.key").exists());
}

#[test]
fn a_signed_checkpoint_of_a_real_log_verifies_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = log_with_records(dir.path(), &["vat_filing", "cit_filing", "invoice_issue"]);
    let (code, unsigned, _) = cli(&["audit", "checkpoint", "--data", path(&data)]);
    assert_eq!(code, 0);
    let unsigned: Value = serde_json::from_str(&unsigned).unwrap();
    assert!(
        unsigned.get("signature").is_none(),
        "without --sign: today's checkpoint"
    );

    for algorithm in ALGORITHMS {
        let prefix = dir.path().join(algorithm);
        let (fingerprint, _) = keygen(algorithm, &prefix);
        let file = dir.path().join(format!("checkpoint-{algorithm}.json"));
        let signed = sign(&data, &with_suffix(&prefix, ".key"), &file);
        for field in ["seq", "hash", "timestamp_ms", "time"] {
            assert_eq!(signed[field], unsigned[field], "{field}");
        }
        assert_eq!(signed["chain_hash"], "sha256");
        assert_eq!(signed["signature_algorithm"], algorithm);
        assert_eq!(signed["key_fingerprint"], fingerprint.as_str());
        assert_eq!(
            signed["sm2_id"].as_str(),
            (algorithm == "sm2").then_some("1234567812345678")
        );
        assert!(
            signed["signed_at"].as_str().unwrap().ends_with('Z'),
            "{signed}"
        );
        assert!(
            signed["signed_at_beijing"]
                .as_str()
                .unwrap()
                .ends_with("+08:00"),
            "{signed}"
        );

        let (code, out, err) = verify(&data, &file, Some(&with_suffix(&prefix, ".pub")));
        assert_eq!(code, 0, "{out}{err}");
        assert!(err.contains("signature ok"), "{err}");
        assert!(out.contains("the log extends it"), "{out}");

        // A kept checkpoint is never replaced.
        let (code, _, err) = run_sign(&data, &with_suffix(&prefix, ".key"), Some(&file));
        assert_ne!(code, 0);
        assert!(err.contains("exists"), "{err}");
        assert_eq!(
            serde_json::from_str::<Value>(&std::fs::read_to_string(&file).unwrap()).unwrap(),
            signed
        );
    }
}

#[test]
fn an_altered_field_is_a_bad_signature_not_a_tampered_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = log_with_records(dir.path(), &["vat_filing", "tax_payment"]);
    for algorithm in ALGORITHMS {
        let prefix = dir.path().join(algorithm);
        keygen(algorithm, &prefix);
        let original = dir.path().join(format!("original-{algorithm}.json"));
        let signed = sign(&data, &with_suffix(&prefix, ".key"), &original);
        let public = with_suffix(&prefix, ".pub");

        // `time` and `signed_at_beijing` change nothing the log is checked
        // against, so only the signature can catch them; `seq` and `hash`
        // would also fail against the log, but the signature speaks first.
        let edits: [(&str, Value); 5] = [
            ("time", json!("2020-01-01T00:00:00.000Z")),
            ("signed_at_beijing", json!("2020-01-01T08:00:00.000+08:00")),
            ("seq", json!(signed["seq"].as_u64().unwrap() - 1)),
            ("hash", json!("0".repeat(64))),
            ("chain_hash", json!("sm3")),
        ];
        for (field, value) in edits {
            let mut altered = signed.clone();
            altered[field] = value;
            let file = dir.path().join(format!("altered-{algorithm}-{field}.json"));
            std::fs::write(&file, altered.to_string()).unwrap();
            let (code, out, err) = verify(&data, &file, Some(&public));
            assert_eq!(code, BAD_SIGNATURE, "{algorithm} {field}: {out}{err}");
            assert!(err.contains("BAD SIGNATURE"), "{algorithm} {field}: {err}");
            assert!(!out.contains("ok:"), "the log is not reported on: {out}");
        }
        let mut flipped = signed.clone();
        let sig = signed["signature"].as_str().unwrap();
        let last = if sig.ends_with('0') { "1" } else { "0" };
        flipped["signature"] = json!(format!("{}{last}", &sig[..sig.len() - 1]));
        let file = dir.path().join(format!("flipped-{algorithm}.json"));
        std::fs::write(&file, flipped.to_string()).unwrap();
        let (code, _, err) = verify(&data, &file, Some(&public));
        assert_eq!(code, BAD_SIGNATURE, "{err}");

        // An added field is not covered by the signature: refused too.
        let mut padded = signed.clone();
        padded["approved_by"] = json!("chief auditor");
        let file = dir.path().join(format!("padded-{algorithm}.json"));
        std::fs::write(&file, padded.to_string()).unwrap();
        let (code, _, err) = verify(&data, &file, Some(&public));
        assert_eq!(code, BAD_SIGNATURE, "{err}");
        assert!(err.contains("approved_by"), "{err}");

        // Reformatted (pretty-printed) is the same checkpoint.
        let pretty = dir.path().join(format!("pretty-{algorithm}.json"));
        std::fs::write(&pretty, serde_json::to_string_pretty(&signed).unwrap()).unwrap();
        let (code, out, err) = verify(&data, &pretty, Some(&public));
        assert_eq!(code, 0, "{out}{err}");
    }
}

#[test]
fn a_wrong_public_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = log_with_records(dir.path(), &["vat_filing"]);
    let (signer, _) = keygen("sm2", &dir.path().join("signer"));
    let (other, _) = keygen("sm2", &dir.path().join("other"));
    keygen("ed25519", &dir.path().join("edwards"));
    let file = dir.path().join("checkpoint.json");
    sign(&data, &dir.path().join("signer.key"), &file);

    let (code, out, err) = verify(&data, &file, Some(&dir.path().join("other.pub")));
    assert_eq!(code, BAD_SIGNATURE, "{out}{err}");
    assert!(
        err.contains(&format!(
            "signed by key {signer}, not by the given public key {other}"
        )),
        "{err}"
    );

    let (code, _, err) = verify(&data, &file, Some(&dir.path().join("edwards.pub")));
    assert_eq!(code, BAD_SIGNATURE);
    assert!(
        err.contains("signed with sm2 but the public key is an ed25519 key"),
        "{err}"
    );

    // A private key is not a public key (and its content is not echoed).
    let (code, out, err) = verify(&data, &file, Some(&dir.path().join("signer.key")));
    assert_eq!(code, BAD_SIGNATURE);
    assert!(err.contains("not an SPKI PEM"), "{err}");
    for secret in secret_material(&dir.path().join("signer.key")) {
        assert!(!out.contains(&secret) && !err.contains(&secret));
    }

    let (code, _, err) = verify(&data, &file, Some(&dir.path().join("missing.pub")));
    assert_eq!(code, BAD_SIGNATURE);
    assert!(err.contains("missing.pub"), "{err}");

    // Signing takes a private key only, and warns when others can read it.
    let (code, out, err) = run_sign(&data, &dir.path().join("other.pub"), None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("not a PKCS#8 PEM"), "{err}");
    assert!(out.is_empty(), "{out}");
    let key = dir.path().join("signer.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run_sign(&data, &key, None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("can be read by other users"), "{err}");
}

#[test]
fn a_genuine_checkpoint_the_log_does_not_extend_is_a_tampered_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = log_with_records(dir.path(), &["vat_filing", "cit_filing"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let other_log = log_with_records(elsewhere.path(), &["vat_filing", "cit_filing"]);
    keygen("sm2", &dir.path().join("k"));
    let foreign = dir.path().join("foreign.json");
    sign(&other_log, &dir.path().join("k.key"), &foreign);

    // Signed by the right key, but over another history: the signature is
    // fine and the log check fails, with the log's exit code.
    let (code, out, err) = verify(&data, &foreign, Some(&dir.path().join("k.pub")));
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("signature ok"), "{err}");
    assert!(out.contains("DOES NOT extend"), "{out}");
}

#[test]
fn without_a_public_key_a_signed_checkpoint_is_checked_against_the_log_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = log_with_records(dir.path(), &["vat_filing"]);
    keygen("ed25519", &dir.path().join("k"));
    let file = dir.path().join("checkpoint.json");
    let signed = sign(&data, &dir.path().join("k.key"), &file);

    let (code, out, err) = verify(&data, &file, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("signature was NOT checked"), "{err}");
    assert!(out.contains("the log extends it"), "{out}");

    // An unsigned checkpoint keeps working without a key, with no warning,
    let unsigned = dir.path().join("unsigned.json");
    let (_, text, _) = cli(&["audit", "checkpoint", "--data", path(&data)]);
    std::fs::write(&unsigned, text).unwrap();
    let (code, out, err) = verify(&data, &unsigned, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
    // but is no signed checkpoint when a key is given.
    let (code, _, err) = verify(&data, &unsigned, Some(&dir.path().join("k.pub")));
    assert_eq!(code, BAD_SIGNATURE, "{err}");
    assert!(err.contains("carries no signature"), "{err}");
    let (code, _, err) = cli(&[
        "audit",
        "verify",
        "--data",
        path(&data),
        "--checkpoint",
        &format!("{}:{}", signed["seq"], signed["hash"].as_str().unwrap()),
        "--public-key",
        path(&dir.path().join("k.pub")),
    ]);
    assert_eq!(code, BAD_SIGNATURE, "{err}");

    // --public-key without --checkpoint is a usage error.
    let (code, _, _) = cli(&[
        "audit",
        "verify",
        "--data",
        path(&data),
        "--public-key",
        path(&dir.path().join("k.pub")),
    ]);
    assert_eq!(code, 2);
}

/// A script written from `--help` must learn the exit code the command
/// gives: 4 is a damaged log, not a forged checkpoint.
#[test]
fn help_names_the_exit_code_of_a_forged_checkpoint() {
    let (code, help, _) = cli(&["audit", "verify", "--help"]);
    assert_eq!(code, 0);
    let said = format!("exit {BAD_SIGNATURE} if it is not genuine");
    assert!(help.contains(&said), "{help}");
}
