//! Restricted users for permission tests: a ServiceAccount bound to a Role
//! with exactly the given rules, and a kubeconfig that authenticates as it.
//! Works against any cluster (not only the local plane).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::TestBed;
use crate::kubeconfig::{self, Credentials};

impl TestBed {
    /// Create ServiceAccount + Role + RoleBinding `name` in `ns` with `rules`
    /// and write a kubeconfig authenticating as that ServiceAccount (token
    /// from its token Secret on < 1.24, else from the TokenRequest API).
    /// Returns once the API server's authorizer sees the binding.
    pub async fn restricted_kubeconfig(
        &self,
        ns: &str,
        name: &str,
        rules: Vec<PolicyRule>,
    ) -> Result<PathBuf> {
        let client = self.client().await?;
        let pp = PostParams::default();
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        create_or_keep(sas.create(&pp, &sa).await).context("create ServiceAccount")?;
        let role: Role = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        let role = Role {
            rules: Some(rules.clone()),
            ..role
        };
        create_or_keep(
            Api::<Role>::namespaced(client.clone(), ns)
                .create(&pp, &role)
                .await,
        )
        .context("create Role")?;
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }))?;
        create_or_keep(
            Api::<RoleBinding>::namespaced(client.clone(), ns)
                .create(&pp, &rb)
                .await,
        )
        .context("create RoleBinding")?;

        let token = if self.server_minor() < 24 {
            token_from_secret(&client, ns, name).await?
        } else {
            let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"expirationSeconds": 7200}});
            let resp: Value = sas
                .create_subresource("token", name, &pp, &req)
                .await
                .context("TokenRequest")?;
            resp["status"]["token"]
                .as_str()
                .context("TokenRequest returned no token")?
                .to_string()
        };

        let cluster = kubeconfig::cluster_of(self.admin_kubeconfig())?;
        let path = self
            .scratch_dir()
            .join("kubeconfigs")
            .join(format!("{ns}-{name}.kubeconfig"));
        kubeconfig::write_for_cluster(&path, &cluster, Credentials::Token(&token), Some(ns))?;
        wait_authorized(&client, ns, name, &rules).await?;
        Ok(path)
    }
}

fn create_or_keep<T>(r: kube::Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Pre-1.24: the token controller writes a `kubernetes.io/service-account-token`
/// Secret for the ServiceAccount shortly after it is created.
async fn token_from_secret(client: &kube::Client, ns: &str, sa: &str) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    crate::eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "ServiceAccount token Secret",
        || {
            let secrets = secrets.clone();
            async move {
                let list = secrets
                    .list(
                        &kube::api::ListParams::default().fields("type=kubernetes.io/service-account-token"),
                    )
                    .await
                    .ok()?;
                list.items.into_iter().find_map(|s| {
                    let owner = s
                        .metadata
                        .annotations
                        .as_ref()?
                        .get("kubernetes.io/service-account.name")?
                        .clone();
                    if owner != sa {
                        return None;
                    }
                    let t = s.data.as_ref()?.get("token")?;
                    String::from_utf8(t.0.clone()).ok()
                })
            }
        },
    )
    .await
}

/// RBAC changes reach the authorizer through an informer; wait until the
/// first granted verb is allowed so a test's very first request sees it.
async fn wait_authorized(client: &kube::Client, ns: &str, sa: &str, rules: &[PolicyRule]) -> Result<()> {
    let Some(rule) = rules.first() else { return Ok(()) };
    let (Some(verb), Some(resource)) = (
        rule.verbs.first(),
        rule.resources.as_ref().and_then(|r| r.first()),
    ) else {
        return Ok(());
    };
    let group = rule
        .api_groups
        .as_ref()
        .and_then(|g| g.first())
        .cloned()
        .unwrap_or_default();
    let (resource, sub) = match resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (resource.clone(), None),
    };
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": format!("system:serviceaccount:{ns}:{sa}"),
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
            "resourceAttributes": {"namespace": ns, "verb": verb, "group": if group == "*" { "" } else { group.as_str() },
                                   "resource": if resource == "*" { "pods" } else { resource.as_str() },
                                   "subresource": sub.unwrap_or_default()},
        },
    }))?;
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    crate::eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "RoleBinding to take effect",
        || {
            let api = api.clone();
            let sar = sar.clone();
            async move {
                let r = api.create(&PostParams::default(), &sar).await.ok()?;
                r.status.filter(|s| s.allowed).map(|_| ())
            }
        },
    )
    .await
}
