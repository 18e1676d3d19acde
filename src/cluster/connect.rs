//! Building a client the way kubectl does: kubeconfig loading rules,
//! context/cluster/user overrides, namespace, impersonation, timeouts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// kubectl's global connection flags, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub as_user: Option<String>,
    pub as_groups: Vec<String>,
    /// `None` or zero: no timeout (kubectl's `--request-timeout=0`).
    pub request_timeout: Option<Duration>,
}

/// A connected client and what error messages need to name.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    /// The namespace to work in (flag, else context, else `default`).
    pub namespace: String,
    /// The kubeconfig context in use, for messages.
    pub context: String,
    /// The API server URL, for messages.
    pub server: String,
    pub request_timeout: Option<Duration>,
}

/// Connects as kubectl would with the same flags and environment.
pub async fn connect(opts: &ConnectOptions) -> Result<Connection> {
    let (mut config, context) = match load_kubeconfig(opts.kubeconfig.as_deref()) {
        Ok(kubeconfig) => from_kubeconfig(kubeconfig, opts).await?,
        // Inside a pod with no kubeconfig, use the pod's ServiceAccount, as
        // kubectl does.
        Err(e) if opts.kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            let config =
                kube::Config::incluster().map_err(|ic| e.context(format!("in-cluster config: {ic}")))?;
            (config, "in-cluster".to_string())
        }
        Err(e) => return Err(e),
    };
    if let Some(ns) = &opts.namespace {
        config.default_namespace = ns.clone();
    }
    if let Some(user) = &opts.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !opts.as_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(opts.as_groups.clone());
    }
    let request_timeout = opts.request_timeout.filter(|d| !d.is_zero());
    if let Some(t) = request_timeout {
        // Bounds connect and each read; whole calls are also bounded by
        // `cluster::api` so a trickling server cannot hold us forever.
        config.connect_timeout = Some(t);
        config.read_timeout = Some(t);
    }
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).context("cannot build an HTTP client for the API server")?;
    Ok(Connection {
        client,
        namespace,
        context,
        server,
        request_timeout,
    })
}

async fn from_kubeconfig(kubeconfig: Kubeconfig, opts: &ConnectOptions) -> Result<(kube::Config, String)> {
    let kube_opts = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: opts.cluster.clone(),
        user: opts.user.clone(),
    };
    let context = opts
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube_opts)
        .await
        .with_context(|| match &opts.context {
            Some(c) => format!("cannot use context {c:?} from the kubeconfig"),
            None => "cannot build a client from the kubeconfig".to_string(),
        })?;
    Ok((config, context))
}

/// kubectl's loading rules: `--kubeconfig` alone if given (a missing file is
/// an error); else every `KUBECONFIG` path that exists, merged first-wins
/// (missing ones are skipped, unlike `Kubeconfig::from_env`); else
/// `~/.kube/config`.
pub fn load_kubeconfig(explicit: Option<&Path>) -> Result<Kubeconfig> {
    if let Some(path) = explicit {
        return Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        let mut seen = Vec::new();
        for path in std::env::split_paths(&list) {
            if path.as_os_str().is_empty() || seen.contains(&path) {
                continue;
            }
            seen.push(path);
        }
        let existing: Vec<&PathBuf> = seen.iter().filter(|p| p.exists()).collect();
        if !seen.is_empty() {
            anyhow::ensure!(
                !existing.is_empty(),
                "none of the files in KUBECONFIG exist: {}",
                std::env::join_paths(&seen)
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            let mut merged = Kubeconfig::default();
            for path in existing {
                let next = Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                merged = merged
                    .merge(next)
                    .with_context(|| format!("cannot merge kubeconfig {}", path.display()))?;
            }
            return Ok(merged);
        }
    }
    Kubeconfig::read().context("no kubeconfig found: set KUBECONFIG or pass --kubeconfig")
}

/// Parses kubectl's `--request-timeout`: a bare number of seconds or a Go
/// duration (`1s`, `2m`, `1h30m`, `500ms`); `0` disables it.
pub fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    // jiff's "friendly" durations read Go's `1h30m`, `2m`, `500ms`, `1.5h`.
    s.parse::<jiff::SignedDuration>()
        .ok()
        .filter(|d| !d.is_negative())
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| format!("invalid duration {s:?}: use e.g. 30s, 2m or 1h30m (0 = no timeout)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubectl() {
        assert_eq!(parse_request_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_request_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_request_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_request_timeout("0"), Ok(Duration::ZERO));
        assert!(parse_request_timeout("soon").is_err());
        assert!(parse_request_timeout("5x").is_err());
        assert_eq!(parse_request_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_request_timeout("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_request_timeout("-5s").is_err());
        // Out of range is an error, not a panic.
        assert!(parse_request_timeout("99999999999999999999999s").is_err());
        assert!(parse_request_timeout("9999999999999999h").is_err());
    }
}
