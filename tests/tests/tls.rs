//! Load over TLS (rustls, ring): HTTP/1.1 and h2 chosen by ALPN, the server verified against a
//! CA file, and a server that cannot be verified counted as connect failures.

use std::time::Duration;

use e2e::*;

const LIMIT: Duration = Duration::from_secs(90);

/// A self-signed certificate for 127.0.0.1, written as PEM files in `dir`.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// A mock backend serving HTTPS with a fresh self-signed certificate; returns the server, its
/// URL, and the certificate's path (its own CA).
fn tls_backend(dir: &std::path::Path) -> (Server, String, String) {
    let (cert, key) = certificate(dir);
    let backend = Server::mock(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--ttft",
        "5ms",
        "--output-tokens",
        "3",
    ]);
    let url = format!("https://127.0.0.1:{}", backend.addr.port());
    (backend, url, cert)
}

fn adhoc(url: &str, out: &std::path::Path, extra: &[&str]) -> Finished {
    let mut command = std::process::Command::new(binary("loadgen"));
    command
        .args([
            "run",
            "--target",
            url,
            "--users",
            "4",
            "--duration",
            "1s",
            "--stream",
            "--out",
        ])
        .arg(out)
        .args(extra);
    run(&mut command, LIMIT)
}

#[test]
fn https_targets_are_loaded_over_http1_and_h2_with_a_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, url, cert) = tls_backend(dir.path());
    for (name, extra) in [
        ("h1", vec!["--ca", cert.as_str()]),
        (
            "h2",
            vec!["--ca", cert.as_str(), "--http2", "--connections", "2"],
        ),
    ] {
        let out = dir.path().join(name);
        let run = adhoc(&url, &out, &extra);
        assert_eq!(run.code(), Some(0), "{name}: {run:?}");
        let summary = read_summary(&out);
        assert!(
            summary["ok"].unwrap() > 0.0,
            "{name}: requests succeeded over TLS"
        );
        assert_eq!(summary["failed"].unwrap(), 0.0, "{name}: {summary:?}");
        assert!(
            summary["ttft_p50"].is_some(),
            "{name}: streams measured through TLS"
        );
    }
}

#[test]
fn an_unverifiable_server_fails_the_run_with_the_reason_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let (_backend, url, _) = tls_backend(dir.path());

    let strict = dir.path().join("strict");
    let run = adhoc(&url, &strict, &[]);
    assert_eq!(
        run.code(),
        Some(3),
        "an unverifiable target fails the run: {run:?}"
    );
    assert!(
        run.stderr.contains("TLS handshake"),
        "says why: {}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "names the cause: {}",
        run.stderr
    );

    let insecure = dir.path().join("insecure");
    let run = adhoc(&url, &insecure, &["--insecure"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(read_summary(&insecure)["ok"].unwrap() > 0.0);
}
