//! Test PKI for the local control plane: one CA, the API server's serving
//! certificate, client certificates and the ServiceAccount signing key.
//!
//! Everything is ECDSA P-256 (fast to generate; Go and rustls accept it) and
//! written as PEM files into `<state>/pki/`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, date_time_ymd,
};

/// A client identity: certificate + key PEM files.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Paths of every PKI file the control plane and kubeconfigs need.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// ServiceAccount token signing key (private, PKCS#8) and its public half.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    /// `CN=kubernetes-admin, O=system:masters`.
    pub admin: ClientCert,
    /// `CN=system:kube-controller-manager` (bound by the bootstrap RBAC policy).
    pub controller_manager: ClientCert,
    /// `CN=restricted` with no group and no bindings: every request is a 403
    /// until a test grants it something.
    pub restricted: ClientCert,
}

impl Pki {
    /// The fixed file layout under `dir`.
    pub fn layout(dir: &Path) -> Pki {
        let client = |n: &str| ClientCert {
            cert: dir.join(format!("{n}.crt")),
            key: dir.join(format!("{n}.key")),
        };
        Pki {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            admin: client("admin"),
            controller_manager: client("controller-manager"),
            restricted: client("restricted"),
        }
    }

    /// Generate a fresh PKI into `dir` (overwriting).
    pub fn generate(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let pki = Pki::layout(dir);

        let ca_key = KeyPair::generate().context("generate CA key")?;
        let mut ca_params = base_params("kubectl-milvus-testbed-ca")?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem_key = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("self-sign CA")?;
        write(&pki.ca_cert, &ca.pem())?;
        write(&pki.ca_key, &ca_pem_key)?;

        // Serving certificate: every name a client may use to reach the API
        // server, including the in-cluster service IP of `kubernetes`.
        let mut serving = base_params("kube-apiserver")?;
        serving.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))),
            dns("localhost")?,
            dns("kubernetes")?,
            dns("kubernetes.default")?,
            dns("kubernetes.default.svc")?,
            dns("kubernetes.default.svc.cluster.local")?,
        ];
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        issue(&ca, serving, &pki.serving_cert, &pki.serving_key)?;

        for (cn, org, out) in [
            ("kubernetes-admin", Some("system:masters"), &pki.admin),
            ("system:kube-controller-manager", None, &pki.controller_manager),
            ("restricted", None, &pki.restricted),
        ] {
            let mut p = base_params(cn)?;
            if let Some(o) = org {
                p.distinguished_name.push(DnType::OrganizationName, o);
            }
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            issue(&ca, p, &out.cert, &out.key)?;
        }

        let sa = KeyPair::generate().context("generate ServiceAccount signing key")?;
        write(&pki.sa_key, &sa.serialize_pem())?;
        write(&pki.sa_pub, &sa.public_key_pem())?;
        Ok(pki)
    }
}

fn base_params(cn: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).context("certificate params")?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    // Fixed, generous validity: the bed is recreated far more often than this.
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(2099, 1, 1);
    Ok(p)
}

fn dns(name: &str) -> Result<SanType> {
    Ok(SanType::DnsName(
        name.try_into().with_context(|| format!("DNS SAN {name}"))?,
    ))
}

fn issue(
    ca: &CertifiedIssuer<'_, KeyPair>,
    params: CertificateParams,
    cert_path: &Path,
    key_path: &Path,
) -> Result<()> {
    let key = KeyPair::generate().context("generate key")?;
    let cert = params.signed_by(&key, ca).context("sign certificate")?;
    write(cert_path, &cert.pem())?;
    write(key_path, &key.serialize_pem())?;
    Ok(())
}

fn write(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).with_context(|| format!("write {}", path.display()))
}
