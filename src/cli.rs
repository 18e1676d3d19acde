//! Command-line grammar. Parsing only: no I/O happens here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::ConnectOptions;
use crate::cluster::connect::parse_request_timeout;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-milvus",
    bin_name = "kubectl milvus",
    version = crate::version::SHORT,
    about = "See and safely scale Milvus clusters (Helm releases and Milvus Operator clusters)",
    long_about = "See and safely scale Milvus clusters: Helm releases, Milvus Operator clusters, \
        and releases Flux or Argo CD own.\n\n\
        `status` shows each component's desired replicas (the Helm values or the `Milvus` resource) \
        against the live Deployments, and the pods as `kubectl get pods` prints them. `plan` shows \
        what a change would do; `scale` does it: worker components only, scale-in one replica at a \
        time, and the record kept in step (Helm's release record, or the `Milvus` resource) so the \
        next `helm upgrade --reuse-values`, or the operator, keeps it.",
    after_help = "Examples:\n  kubectl milvus status my-release -n milvus\n  kubectl milvus plan my-release queryNode=3\n  kubectl milvus scale my-release queryNode=3 dataNode=+1\n  kubectl milvus scale my-release querynode --replicas 1\n  kubectl milvus scale my-release queryNode --min 2 --max 10\n  kubectl milvus status my-release -w"
)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's connection flags (`kubectl options`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Kubernetes options")]
pub struct KubeFlags {
    /// Path to the kubeconfig file to use (only this file; KUBECONFIG is ignored)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace of the release (default: the context's namespace)
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Time to wait for each API request: 30s, 1m, 0 = no limit
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_request_timeout, default_value = "0")]
    pub request_timeout: Duration,
    /// Username to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable)
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
}

impl KubeFlags {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            as_user: self.as_user.clone(),
            as_groups: self.as_group.clone(),
            request_timeout: Some(self.request_timeout),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show Milvus releases: components (values vs live), HPAs, and pods
    Status(StatusArgs),
    /// Show what a scale change would do, without changing anything
    Plan(PlanArgs),
    /// Scale worker components safely, keeping Helm's values in step
    Scale(ScaleArgs),
    /// Print the version, git commit and target
    Version,
    /// Print a shell completion script (bash, zsh, fish, powershell)
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Completion protocol used by kubectl (via kubectl_complete-milvus, which passes
    /// `-- WORDS…` so that flags among the words reach `words` untouched)
    #[command(name = "__complete", hide = true, disable_help_flag = true)]
    Complete {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    Table,
    Wide,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    Table,
    Json,
    Yaml,
}

/// Which manager's instance a name means, when it names both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManagerFlag {
    /// The Helm release of the `milvus` chart
    Helm,
    /// The `Milvus` resource of the Milvus Operator
    #[value(name = "milvus-operator", alias = "operator")]
    MilvusOperator,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Helm release or `Milvus` resource (default: every Milvus instance in the namespace)
    pub release: Option<String>,
    /// Every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: StatusOutput,
    /// Keep watching: show the status again each time it changes (Ctrl-C ends)
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// New bounds for the HorizontalPodAutoscaler managing a single COMPONENT,
/// instead of a replica count (as `kubectl autoscale` names them).
#[derive(Debug, Args, Default, Clone)]
pub struct BoundsFlags {
    /// The HPA's new minReplicas (at least 1)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub min: Option<String>,
    /// The HPA's new maxReplicas
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The Helm release, or the Milvus Operator's `Milvus` resource
    pub release: String,
    /// Changes: COMPONENT=N, COMPONENT=+N or COMPONENT=-N (values key or pod label),
    /// or COMPONENT with --min/--max
    #[arg(required = true, value_name = "COMPONENT=N")]
    pub changes: Vec<String>,
    #[command(flatten)]
    pub bounds: BoundsFlags,
    /// Allow scaling a serving component to 0
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scale_in: ScaleInFlags,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: PlanOutput,
    /// Which instance RELEASE means when a Helm release and a `Milvus` resource share the name
    #[arg(long, value_enum, value_name = "MANAGER")]
    pub managed_by: Option<ManagerFlag>,
}

/// How pods leave on the way in (plan and scale).
#[derive(Debug, Args, Clone)]
pub struct ScaleInFlags {
    /// Remove this pod first (repeatable; needs Kubernetes v1.22+, which honours pod-deletion-cost)
    #[arg(long = "remove", value_name = "POD")]
    pub remove: Vec<String>,
    /// Scale in even when pods get less than 30s to stop while Milvus's graceful stop needs more
    #[arg(long)]
    pub accept_short_grace: bool,
    /// Do not empty leaving query nodes in Milvus first, nor ask Milvus's health between steps
    #[arg(long)]
    pub no_drain: bool,
    /// How long each leaving query node may take to empty in Milvus
    #[arg(long, value_name = "DURATION", value_parser = parse_request_timeout, default_value = "10m")]
    pub drain_timeout: Duration,
}

impl Default for ScaleInFlags {
    fn default() -> Self {
        ScaleInFlags {
            remove: Vec::new(),
            accept_short_grace: false,
            no_drain: false,
            drain_timeout: crate::core::milvus::drain::DEFAULT_TIMEOUT,
        }
    }
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The Helm release, or the Milvus Operator's `Milvus` resource
    pub release: String,
    /// Changes: COMPONENT=N, COMPONENT=+N, COMPONENT=-N, or COMPONENT with --replicas
    /// or --min/--max
    #[arg(required = true, value_name = "COMPONENT=N")]
    pub changes: Vec<String>,
    /// Target replicas for a single COMPONENT (as `kubectl scale` users type it)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub replicas: Option<String>,
    #[command(flatten)]
    pub bounds: BoundsFlags,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Allow scaling a serving component to 0
    #[arg(long)]
    pub force: bool,
    /// Scale a release a GitOps tool owns (Flux HelmRelease), for an emergency:
    /// the owner reverts it at its next reconcile unless Git is changed too
    #[arg(long)]
    pub force_gitops: bool,
    /// How long to wait for each step to become ready (e.g. 5m, 90s; 0 = no limit)
    #[arg(long, value_name = "DURATION", value_parser = parse_request_timeout, default_value = "10m")]
    pub timeout: Duration,
    #[command(flatten)]
    pub scale_in: ScaleInFlags,
    /// Wait this long after each scale-in step has settled before the next (e.g. 30s, 5m)
    #[arg(long, value_name = "DURATION", value_parser = parse_request_timeout, default_value = "0")]
    pub pause: Duration,
    /// Shell command run after each scale-in step has settled; a non-zero exit stops the run (resumable)
    #[arg(long, value_name = "COMMAND")]
    pub check: Option<String>,
    /// Revisions of Helm history to keep (Helm's default is 10; 0 = no limit)
    #[arg(long, value_name = "N", default_value_t = 10, env = "HELM_MAX_HISTORY")]
    pub history_max: usize,
    /// Which instance RELEASE means when a Helm release and a `Milvus` resource share the name
    #[arg(long, value_enum, value_name = "MANAGER")]
    pub managed_by: Option<ManagerFlag>,
}
