//! TLS for `wss://`: which servers a client trusts, as a rustls client configuration.
//!
//! The roots are the Mozilla set bundled by `webpki-roots` (the same on every platform, a
//! phone's included), plus the certificates of an optional CA file (PEM) for an
//! organisation's own CA. The crypto is rustls's `ring` provider, chosen here explicitly so
//! that no process-wide default has to be installed.

use crate::dial::DialError;
use crate::limits::CA_FILE_BYTES_MAX;
use rustls::crypto::ring;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The client configuration for a `wss://` connection to `url`: the bundled roots, plus
/// those in `ca_file` if given. A CA file that cannot be read, is too large, or holds no
/// usable certificate is a [`DialError::BadCaFile`].
pub(crate) fn client_config(
    url: &str,
    ca_file: Option<&Path>,
) -> Result<Arc<ClientConfig>, DialError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| DialError::Tls {
            url: url.to_owned(),
            reason: format!("cannot set up TLS: {error}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds every certificate of the PEM file at `path` to `roots`.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), DialError> {
    let bad = |reason: String| DialError::BadCaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = read_bounded(path).map_err(|error| bad(error.to_string()))?;
    if pem.len() > CA_FILE_BYTES_MAX {
        return Err(bad(format!(
            "larger than {CA_FILE_BYTES_MAX} bytes: not a CA file"
        )));
    }
    let mut added = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|error| bad(format!("not valid PEM: {error}")))?;
        roots
            .add(cert)
            .map_err(|error| bad(format!("a certificate in it is unusable: {error}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad(
            "holds no PEM certificate (expected -----BEGIN CERTIFICATE----- sections)".into(),
        ));
    }
    Ok(())
}

/// The file's bytes, at most one past [`CA_FILE_BYTES_MAX`] (enough to tell it is too large).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(CA_FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether a failed connection failed in the TLS handshake (a certificate refused either
/// way, a protocol mismatch), as opposed to the network: tokio-tungstenite hands rustls's
/// error back wrapped in an I/O error.
pub(crate) fn handshake_failure(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// rustls's reason for refusing a handshake, with a hint for the common certificate cases.
pub(crate) fn explain(error: &rustls::Error) -> String {
    use rustls::CertificateError as Refused;
    let hint = match error {
        rustls::Error::InvalidCertificate(Refused::UnknownIssuer) => {
            "the server's certificate is not signed by a CA this client trusts (the bundled roots, or the CA file if one was given)"
        }
        rustls::Error::InvalidCertificate(
            Refused::NotValidForName | Refused::NotValidForNameContext { .. },
        ) => "the server's certificate is for another host name",
        rustls::Error::InvalidCertificate(Refused::Expired | Refused::ExpiredContext { .. }) => {
            "the server's certificate has expired"
        }
        _ => return error.to_string(),
    };
    format!("{hint}: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(bytes).expect("written");
        file
    }

    #[test]
    fn the_bundled_roots_alone_make_a_config() {
        assert!(client_config("wss://h/v1/sync/a", None).is_ok());
    }

    #[test]
    fn a_ca_file_that_is_not_a_certificate_is_refused_by_name() {
        let missing = Path::new("/nonexistent/weft-ca.pem");
        let not_pem = file_with(b"just some text\n");
        let bad_base64 =
            file_with(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let not_a_cert =
            file_with(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let huge = file_with(&vec![b'A'; CA_FILE_BYTES_MAX + 10]);
        for path in [
            missing,
            not_pem.path(),
            bad_base64.path(),
            not_a_cert.path(),
            huge.path(),
        ] {
            match client_config("wss://h/v1/sync/a", Some(path)) {
                Err(DialError::BadCaFile { path: named, .. }) => assert_eq!(named, path),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
    }
}
