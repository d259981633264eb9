//! Certificates for TLS tests, made by the test: a CA of its own, a server certificate for
//! 127.0.0.1 and localhost, and client certificates for mutual TLS, as PEM files in a
//! temporary directory (removed on drop), plus the nats-server `tls {}` block that uses them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA and what it signed; see the module docs.
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, for clients and for a server that verifies its clients.
    pub ca: PathBuf,
    /// The server's certificate, valid for 127.0.0.1 and localhost.
    pub server: CertFiles,
}

impl TestCa {
    /// A new CA named `name`, and a server certificate signed by it.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("a temporary directory for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, issuer.pem()).expect("write ca.pem");
        let mut ca = TestCa {
            server: CertFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            dir,
            issuer,
            ca,
        };
        ca.server = ca.sign(
            "server",
            &["localhost"],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        ca
    }

    /// A client certificate named `name` (its common name), for mutual TLS.
    pub fn client(&self, name: &str) -> CertFiles {
        self.sign(name, &[], &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(
        &self,
        name: &str,
        dns: &[&str],
        ips: &[IpAddr],
        usage: ExtendedKeyUsagePurpose,
    ) -> CertFiles {
        let names: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the key");
        files
    }

    /// nats-server's `tls {}` block serving [`TestCa::server`]; with `verify`, clients must
    /// show a certificate this CA signed (mutual TLS).
    pub fn nats_tls_block(&self, verify: bool) -> String {
        let quoted = |p: &Path| format!("{:?}", p.display().to_string());
        let mut block = format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n",
            quoted(&self.server.cert),
            quoted(&self.server.key)
        );
        if verify {
            block += &format!("  ca_file: {}\n  verify: true\n", quoted(&self.ca));
        }
        block + "  timeout: 2\n}\n"
    }
}
