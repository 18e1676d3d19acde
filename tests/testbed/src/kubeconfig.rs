//! Writing kubeconfig files (the one format kubectl, helm and kube-rs all read).

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How a kubeconfig user authenticates.
pub enum Credentials<'a> {
    /// Client certificate + key, PEM text.
    Cert { cert_pem: &'a str, key_pem: &'a str },
    /// Bearer token (ServiceAccount tokens).
    Token(&'a str),
    /// No credentials (e.g. the fault proxy, which authenticates upstream itself).
    None,
}

/// Write a single-context kubeconfig. `ca_pem` is embedded when given.
pub fn write(
    path: &Path,
    server: &str,
    ca_pem: Option<&str>,
    creds: Credentials<'_>,
    namespace: Option<&str>,
) -> Result<()> {
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = ca_pem {
        cluster.push_str(&format!(
            "    certificate-authority-data: {}\n",
            STANDARD.encode(ca)
        ));
    }
    let user = match creds {
        Credentials::Cert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert_pem),
            STANDARD.encode(key_pem)
        ),
        // JSON string quoting is valid YAML and safe for any token text.
        Credentials::Token(t) => format!("    token: {}\n", serde_json::to_string(t)?),
        Credentials::None => String::new(),
    };
    let user_block = if user.is_empty() {
        "  user: {}\n".to_string()
    } else {
        format!("  user:\n{user}")
    };
    let ns = namespace
        .map(|n| format!("    namespace: {n}\n"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n{cluster}\
users:\n- name: testbed\n{user_block}\
contexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: testbed\n{ns}\
current-context: testbed\npreferences: {{}}\n"
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write kubeconfig {}", path.display()))
}

/// Server URL and CA (PEM) of the current context of an existing kubeconfig,
/// so derived kubeconfigs (restricted users) reach the same cluster the same way.
pub struct ClusterRef {
    pub server: String,
    pub ca_pem: Option<String>,
    pub insecure: bool,
}

pub fn cluster_of(path: &Path) -> Result<ClusterRef> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("read kubeconfig {}", path.display()))?;
    let ctx_name = kc
        .current_context
        .clone()
        .context("kubeconfig has no current-context")?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .context("current context not found")?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .context("cluster of current context not found")?;
    let ca_pem = if let Some(data) = &cluster.certificate_authority_data {
        Some(
            String::from_utf8(STANDARD.decode(data.trim()).context("decode CA data")?)
                .context("CA is not UTF-8 PEM")?,
        )
    } else if let Some(file) = &cluster.certificate_authority {
        let p = Path::new(file);
        let p = if p.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(p)
        } else {
            p.to_path_buf()
        };
        Some(std::fs::read_to_string(&p).with_context(|| format!("read CA {}", p.display()))?)
    } else {
        None
    };
    Ok(ClusterRef {
        server: cluster.server.clone().context("cluster has no server")?,
        ca_pem,
        insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
    })
}

/// Like [`write`] but for a cluster taken from [`cluster_of`].
pub fn write_for_cluster(
    path: &Path,
    cluster: &ClusterRef,
    creds: Credentials<'_>,
    namespace: Option<&str>,
) -> Result<()> {
    write(path, &cluster.server, cluster.ca_pem.as_deref(), creds, namespace)?;
    if cluster.insecure {
        // Rare for test clusters; keep the original's choice.
        let text = std::fs::read_to_string(path)?;
        let text = text.replacen(
            "  cluster:\n",
            "  cluster:\n    insecure-skip-tls-verify: true\n",
            1,
        );
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// A kube client for a kubeconfig file (current context), with kube's
/// default retries of 429/503/504.
pub async fn client_for(path: &Path) -> Result<kube::Client> {
    client_for_opts(path, true).await
}

/// [`client_for`], choosing whether kube retries 429/503/504 itself
/// (kube 5 does by default, up to 15 times honouring `Retry-After`).
pub async fn client_for_opts(path: &Path, retry: bool) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("read kubeconfig {}", path.display()))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("load kubeconfig {}", path.display()))?;
    // Watches in tests are short-lived; keep failures fast and visible.
    cfg.connect_timeout = Some(std::time::Duration::from_secs(10));
    cfg.default_retry = retry;
    kube::Client::try_from(cfg).context("build kube client")
}
