//! Client TLS as etcdctl 3.5.1 sets it up: `newClientCfg` turns the
//! `--cert/--key/--cacert/--insecure-*` flags into clientv3's `Config.TLS`,
//! and clientv3's `credentialsForEndpoint` decides from the first
//! endpoint's scheme whether the connections use it. Errors in the files
//! are worded as Go's `crypto/tls` and `os` word them.
//!
//! The handshake is done by a connector of our own rather than tonic's
//! `ClientTlsConfig`, which cannot take the custom certificate verifier
//! `--insecure-skip-tls-verify` needs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::{PemObject, SectionKind};
use tokio_rustls::rustls::pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, ServerName,
    SignatureVerificationAlgorithm, UnixTime,
};
use tokio_rustls::rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, Error as TlsError, InconsistentKeys,
    RootCertStore, SignatureScheme, WantsVerifier,
};
use tonic::codegen::Service;

use crate::gofmt;
use tonic::transport::Uri;

/// etcdctl's `secureCfg`: the TLS flags of one client.
pub struct SecureCfg<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub cacert: &'a str,
    pub insecure_transport: bool,
    pub insecure_skip_verify: bool,
}

/// clientv3's `Config.TLS`: the TLS the flags ask for, if any.
#[derive(Clone, Default)]
pub struct Tls(Option<Arc<ClientConfig>>);

impl Tls {
    /// etcdctl's `newClientCfg`: TLS as soon as one file is given or
    /// `--insecure-transport=false`; `--insecure-skip-tls-verify` only
    /// matters then. The error is etcdctl's (it exits with 128).
    pub fn new(s: &SecureCfg) -> Result<Tls, String> {
        let files = !s.cert.is_empty() || !s.key.is_empty() || !s.cacert.is_empty();
        if !files && s.insecure_transport {
            return Ok(Tls(None));
        }
        let identity = if !s.cert.is_empty() || !s.key.is_empty() {
            Some(key_pair(s.cert, s.key)?)
        } else {
            None
        };
        let roots = if s.cacert.is_empty() {
            None
        } else {
            Some(ca_pool(s.cacert)?)
        };
        let cfg = client_config(roots, identity, s.insecure_skip_verify)?;
        Ok(Tls(Some(Arc::new(cfg))))
    }

    /// clientv3's `credentialsForEndpoint`, asked of the first endpoint:
    /// `http://` never uses TLS, `https://` always does (with the system's
    /// roots if the flags gave none), and a bare `host:port` as the flags
    /// say.
    pub fn for_endpoint(&self, first: &str) -> Result<Option<Arc<ClientConfig>>, String> {
        if first.starts_with("http://") {
            Ok(None)
        } else if first.starts_with("https://") && self.0.is_none() {
            Ok(Some(Arc::new(client_config(None, None, false)?)))
        } else {
            Ok(self.0.clone())
        }
    }
}

/// ring, plus ECDSA P-521 verification, which ring lacks and etcd's
/// `--auto-tls` certificates (and Go-made ones generally) use.
fn provider() -> Arc<CryptoProvider> {
    let mut p = crypto::ring::default_provider();
    p.signature_verification_algorithms = with_p521(p.signature_verification_algorithms);
    Arc::new(p)
}

type Algs = &'static [&'static dyn SignatureVerificationAlgorithm];

const P521_SHA256: EcdsaP521 = EcdsaP521(Hash::Sha256);
const P521_SHA384: EcdsaP521 = EcdsaP521(Hash::Sha384);
const P521_SHA512: EcdsaP521 = EcdsaP521(Hash::Sha512);

/// The P-521 algorithms a TLS signature scheme may stand for: in TLS 1.2
/// a scheme names only the hash, so a P-521 key signs "P-256 SHA-256"
/// handshakes too (as etcd 3.5's server does).
fn p521_for(scheme: SignatureScheme) -> Algs {
    match scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => &[&P521_SHA256],
        SignatureScheme::ECDSA_NISTP384_SHA384 => &[&P521_SHA384],
        SignatureScheme::ECDSA_NISTP521_SHA512 => &[&P521_SHA512],
        _ => &[],
    }
}

/// `ring`'s algorithms with P-521 added; rustls wants `'static` lists,
/// which the ones built once here are.
fn with_p521(ring: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    type Lists = Vec<(
        SignatureScheme,
        Vec<&'static dyn SignatureVerificationAlgorithm>,
    )>;
    static ALL: OnceLock<Vec<&'static dyn SignatureVerificationAlgorithm>> = OnceLock::new();
    static LISTS: OnceLock<Lists> = OnceLock::new();
    static MAPPING: OnceLock<Vec<(SignatureScheme, Algs)>> = OnceLock::new();
    let all = ALL.get_or_init(|| [ring.all, &[&P521_SHA256, &P521_SHA384, &P521_SHA512]].concat());
    let lists = LISTS.get_or_init(|| {
        let mut lists: Lists = ring
            .mapping
            .iter()
            .map(|&(scheme, algs)| (scheme, [algs, p521_for(scheme)].concat()))
            .collect();
        let p521 = SignatureScheme::ECDSA_NISTP521_SHA512;
        if !lists.iter().any(|(scheme, _)| *scheme == p521) {
            lists.push((p521, p521_for(p521).to_vec()));
        }
        lists
    });
    let mapping = MAPPING.get_or_init(|| {
        lists
            .iter()
            .map(|(s, algs)| (*s, algs.as_slice()))
            .collect()
    });
    WebPkiSupportedAlgorithms { all, mapping }
}

#[derive(Debug)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// ECDSA with a P-521 key, for webpki (chains) and rustls (handshake
/// signatures).
#[derive(Debug)]
struct EcdsaP521(Hash);

impl SignatureVerificationAlgorithm for EcdsaP521 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::hazmat::PrehashVerifier;
        use p521::ecdsa::{Signature, VerifyingKey};
        use sha2::Digest;
        let digest = match self.0 {
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        };
        // ECDSA reads a hash shorter than the curve as a number; the
        // ecdsa crate refuses one under half the field's 66 bytes, so
        // give it the same number zero-padded to full width
        let mut prehash = vec![0u8; 66 - digest.len()];
        prehash.extend_from_slice(&digest);
        let key = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify_prehash(&prehash, &sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self.0 {
            Hash::Sha256 => alg_id::ECDSA_SHA256,
            Hash::Sha384 => alg_id::ECDSA_SHA384,
            Hash::Sha512 => alg_id::ECDSA_SHA512,
        }
    }
}

fn builder(
    provider: Arc<CryptoProvider>,
) -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
}

/// A Go `tls.Config`: `roots` or else the system's, a client certificate
/// if given, and gRPC's ALPN.
fn client_config(
    roots: Option<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    skip_verify: bool,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifying = if skip_verify {
        builder(provider.clone())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        builder(provider)?.with_root_certificates(roots.unwrap_or_else(system_roots))
    };
    let mut cfg = match identity {
        Some((chain, key)) => verifying
            .with_client_auth_cert(chain, key)
            .map_err(|e| key_pair_error(&e))?,
        None => verifying.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// The roots Go's `x509.SystemCertPool` finds (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, the distribution's bundle). None found makes every
/// handshake fail, as in Go.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots
}

/// Go's `ioutil.ReadFile`, its error as Go words it.
fn read_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("open {path}: {}", gofmt::io_error(&e)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| format!("read {path}: {}", gofmt::io_error(&e)))?;
    Ok(buf)
}

/// The PEM blocks of a file, as Go's `pem.Decode` loop sees them: what
/// cannot be read as PEM ends the list rather than failing.
fn pem_blocks(pem: &[u8]) -> Vec<(SectionKind, Vec<u8>)> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .map_while(Result::ok)
        .collect()
}

fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "UNKNOWN",
    }
}

fn is_private_key(kind: SectionKind) -> bool {
    label(kind).ends_with("PRIVATE KEY")
}

fn skipped_list(kinds: &[SectionKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| label(*k)).collect();
    format!("[{}]", names.join(" "))
}

/// etcd's `tlsutil.NewCert`: the files read as Go's `tls.X509KeyPair`
/// does, with its error texts (its pairing check is rustls's, later).
fn key_pair(
    cert: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    if cert.is_empty() || key.is_empty() {
        return Err(format!(
            "KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"
        ));
    }
    let cert_pem = read_file(cert)?;
    let key_pem = read_file(key)?;
    Ok((cert_chain(&cert_pem)?, private_key(&key_pem)?))
}

fn cert_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let (certs, skipped): (Vec<_>, Vec<_>) = pem_blocks(pem)
        .into_iter()
        .partition(|(k, _)| *k == SectionKind::Certificate);
    if !certs.is_empty() {
        return Ok(certs.into_iter().map(|(_, der)| der.into()).collect());
    }
    let skipped: Vec<SectionKind> = skipped.into_iter().map(|(k, _)| k).collect();
    Err(match skipped.as_slice() {
        [] => "tls: failed to find any PEM data in certificate input".into(),
        [k] if is_private_key(*k) => "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched".into(),
        _ => format!(
            "tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: {}",
            skipped_list(&skipped)
        ),
    })
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let mut skipped = Vec::new();
    for (kind, der) in pem_blocks(pem) {
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            other => {
                skipped.push(other);
                continue;
            }
        };
        return Ok(key);
    }
    Err(match skipped.as_slice() {
        [] => "tls: failed to find any PEM data in key input".into(),
        [SectionKind::Certificate] => {
            "tls: found a certificate rather than a key in the PEM for the private key".into()
        }
        _ => format!(
            "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: {}",
            skipped_list(&skipped)
        ),
    })
}

/// What `tls.X509KeyPair` says where rustls refused the pair.
fn key_pair_error(e: &TlsError) -> String {
    match e {
        TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "tls: private key does not match public key".into()
        }
        TlsError::InvalidCertificate(_) => "x509: malformed certificate".into(),
        _ => "tls: failed to parse private key".into(),
    }
}

/// etcd's `tlsutil.NewCertPool`: every PEM block of the file must be a
/// certificate; a file without any makes an empty pool (every handshake
/// then fails, as in Go).
fn ca_pool(path: &str) -> Result<RootCertStore, String> {
    let pem = read_file(path)?;
    let mut roots = RootCertStore::empty();
    for (kind, der) in pem_blocks(&pem) {
        // Go parses whatever block it finds as a certificate; its asn1
        // error text is not reproduced
        if kind != SectionKind::Certificate || roots.add(der.into()).is_err() {
            return Err("x509: malformed certificate".into());
        }
    }
    Ok(roots)
}

/// Go's `InsecureSkipVerify`: any certificate chain and name, but the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TCP connection then a TLS handshake, for tonic's
/// `Endpoint::connect_with_connector`; the certificate is checked
/// against `server_name` (the endpoint's host, as gRPC-Go does).
#[derive(Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl Connector {
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Connector, String> {
        let host = unbracket(host);
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("bad server name {host:?}: {e}"))?;
        Ok(Connector {
            config,
            server_name,
        })
    }
}

/// An IPv6 host without the brackets of its URL form.
fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let tls = tokio_rustls::TlsConnector::from(self.config.clone());
        let name = self.server_name.clone();
        Box::pin(async move {
            let host = unbracket(uri.host().unwrap_or_default());
            // gRPC-Go's default port
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            Ok(TokioIo::new(tls.connect(name, tcp).await?))
        })
    }
}
