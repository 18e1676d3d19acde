//! Real command-line clients (kubectl, helm) wired to the bed's admin kubeconfig.

use std::path::PathBuf;
use std::process::Command;

use crate::TestBed;

/// kubectl binary: `$TESTBED_KUBECTL` or `/usr/bin/kubectl`.
pub fn kubectl_bin() -> PathBuf {
    std::env::var_os("TESTBED_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"))
}

/// helm binary: `$TESTBED_HELM` or the one `provision.sh` caches.
pub fn helm_bin() -> PathBuf {
    std::env::var_os("TESTBED_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::plane::cache_dir().join("helm/bin/helm"))
}

/// Helm 3 binary: `$TESTBED_HELM3` or the one `provision.sh` caches. Most
/// Milvus releases in the field were written by Helm 3.
pub fn helm3_bin() -> PathBuf {
    std::env::var_os("TESTBED_HELM3")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::plane::cache_dir().join("helm3/bin/helm"))
}

impl TestBed {
    /// `kubectl --kubeconfig <admin>`; add your arguments.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(kubectl_bin());
        c.arg("--kubeconfig").arg(self.admin_kubeconfig());
        c
    }

    /// `helm` with `KUBECONFIG=<admin>` and private cache/config/data homes
    /// (so a developer's own helm repos and plugins never leak in). Storage
    /// driver is Helm's default (Secret); set `HELM_DRIVER=configmap` on the
    /// returned command for the ConfigMap driver.
    pub fn helm(&self) -> Command {
        self.helm_client(helm_bin(), "helm")
    }

    /// [`TestBed::helm`] with the Helm 3 client.
    pub fn helm3(&self) -> Command {
        self.helm_client(helm3_bin(), "helm3")
    }

    fn helm_client(&self, bin: PathBuf, home: &str) -> Command {
        let home = self.scratch_dir().join(home);
        let mut c = Command::new(bin);
        c.env("KUBECONFIG", self.admin_kubeconfig())
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("HELM_DRIVER")
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_KUBECONTEXT");
        c
    }
}

/// Run a command, return stdout; on failure an error carrying stderr.
/// Test helper: `run(bed.kubectl().args(["get", "pods"]))`.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("spawn {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{:?} {:?} failed ({}):\n{}{}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
