//! Shell completion: static scripts (`completion SHELL`) and the dynamic
//! protocol kubectl speaks to `kubectl_complete-milvus`.
//!
//! kubectl (>= 1.26) completes `kubectl milvus …` by running
//! `kubectl_complete-milvus` from PATH with the words typed after
//! `kubectl milvus` plus the word being completed (empty for a new word). It
//! reads one candidate per line (`candidate<TAB>description` is allowed: Cobra
//! shows or strips descriptions per shell) and an optional last line
//! `:<directive>`, a Cobra `ShellCompDirective`. The shim runs
//! `kubectl-milvus __complete -- WORDS…`, answered here. Anything read from the
//! cluster is best effort: on any error only the directive is printed, and
//! nothing ever goes to stderr (kubectl passes it through to the terminal).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Arg, Command, CommandFactory};

use crate::cli::{Cli, KubeFlags};
use crate::cluster::connect::{load_kubeconfig, parse_request_timeout};
use crate::cluster::operator::{self as operator_api, Found};
use crate::cluster::{Cluster, ConnectOptions, connect};
use crate::core::chart::Chart;
use crate::core::{components, manifest, operator, plan};
use crate::engine::releases::{self, current_records};

/// The plugin's executable name, which the static scripts complete.
const BIN: &str = "kubectl-milvus";

/// `completion SHELL`: a static script completing the `kubectl-milvus`
/// command (for `kubectl milvus …` kubectl itself asks
/// `kubectl_complete-milvus`, see [`candidates`]).
pub fn script(shell: clap_complete::Shell) -> String {
    // clap_complete's bash script names its states after the bin name and
    // turns `-` into `__` in some places only, so subcommands would never
    // match: generate under a dash-free name and register it for BIN.
    let name = match shell {
        clap_complete::Shell::Bash => "kubectl_milvus",
        _ => BIN,
    };
    // The grammar under the executable's own name (the CLI's `bin_name` is
    // `kubectl milvus`, for help texts), without hidden subcommands (bash's
    // script would offer them).
    let root = Cli::command();
    let visible: Vec<Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut cmd = Command::new(name)
        .bin_name(name)
        .version(crate::version::SHORT)
        .args(root.get_arguments().cloned())
        .subcommands(visible);
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        clap_complete::Shell::Bash => {
            text.replace(" -o default kubectl_milvus\n", " -o default kubectl-milvus\n")
        }
        _ => text,
    }
}

/// Cobra's `ShellCompDirective` bits.
pub mod directive {
    /// Let the shell complete file names.
    pub const DEFAULT: u32 = 0;
    /// No space after the completion (`queryNode=` then the number).
    pub const NO_SPACE: u32 = 2;
    /// No file names when nothing matches.
    pub const NO_FILE_COMP: u32 = 4;
}

/// The time allowed to reach the cluster when the user gave no
/// `--request-timeout`: completion must not hang the shell.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Candidates (value, description) and the directive for the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completions {
    pub items: Vec<(String, String)>,
    pub directive: u32,
}

impl Completions {
    fn none() -> Self {
        Self {
            items: Vec::new(),
            directive: directive::NO_FILE_COMP,
        }
    }

    fn of(items: Vec<(String, String)>, partial: &str) -> Self {
        Self {
            items: items
                .into_iter()
                .filter(|(v, _)| v.starts_with(partial))
                .collect(),
            directive: directive::NO_FILE_COMP,
        }
    }

    /// The protocol's text: one candidate per line, then `:<directive>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (value, help) in &self.items {
            out.push_str(value);
            if !help.is_empty() {
                out.push('\t');
                out.push_str(help);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }
}

/// `__complete WORDS…`: `words` are the words after `kubectl milvus`, the
/// last being the one to complete. `flags` are connection flags clap already
/// took (only when the shim's `--` was missing); those in `words` win.
pub async fn candidates(flags: &KubeFlags, words: &[String]) -> Result<String> {
    Ok(complete(flags, words).await.render())
}

/// Computes the completions for `words` (see [`candidates`]).
pub async fn complete(flags: &KubeFlags, words: &[String]) -> Completions {
    let mut root = Cli::command();
    root.build();
    let (current, before) = match words.split_last() {
        Some((current, before)) => (current.as_str(), before),
        None => ("", &[][..]),
    };
    let parsed = Parsed::new(&root, before);
    let cmd = parsed
        .subcommand
        .as_deref()
        .and_then(|name| root.find_subcommand(name))
        .unwrap_or(&root);
    let ctx = Context {
        flags,
        parsed: &parsed,
    };

    if let Some(arg) = &parsed.pending {
        return flag_values(&ctx, arg, "", current).await;
    }
    if !parsed.escaped && current.starts_with('-') {
        if let Some((name, value)) = current.strip_prefix("--").and_then(|rest| rest.split_once('=')) {
            return match long_flag(cmd, name) {
                Some(arg) if takes_value(arg) => flag_values(&ctx, arg, &format!("--{name}="), value).await,
                _ => Completions::none(),
            };
        }
        return flag_names(cmd, &parsed, current);
    }
    positional(&ctx, &root, cmd, current).await
}

/// What the words before the current one say.
#[derive(Debug, Default)]
struct Parsed {
    subcommand: Option<String>,
    positionals: Vec<String>,
    /// Flag values by clap id, in order.
    values: Vec<(String, String)>,
    /// Ids of flags given without a value.
    switches: Vec<String>,
    /// A flag that still waits for its value (the current word).
    pending: Option<Arg>,
    /// `--` was seen: everything after it is positional.
    escaped: bool,
}

impl Parsed {
    fn new(root: &Command, words: &[String]) -> Self {
        let mut p = Parsed::default();
        for word in words {
            let cmd = p
                .subcommand
                .as_deref()
                .and_then(|name| root.find_subcommand(name))
                .unwrap_or(root);
            if let Some(arg) = p.pending.take() {
                p.values.push((arg.get_id().to_string(), word.clone()));
            } else if p.escaped || word == "-" || !word.starts_with('-') {
                if p.subcommand.is_none() && root.find_subcommand(word).is_some() && p.positionals.is_empty()
                {
                    p.subcommand = Some(word.clone());
                } else {
                    p.positionals.push(word.clone());
                }
            } else if word == "--" {
                p.escaped = true;
            } else if let Some(rest) = word.strip_prefix("--") {
                let (name, value) = match rest.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (rest, None),
                };
                let Some(arg) = long_flag(cmd, name) else { continue };
                p.take_flag(arg, value.map(str::to_string));
            } else {
                // `-A`, `-n NS`, `-nNS`, `-Ao json`, …
                let shorts = &word[1..];
                for (i, c) in shorts.char_indices() {
                    let Some(arg) = cmd.get_arguments().find(|a| a.get_short() == Some(c)) else {
                        break;
                    };
                    if takes_value(arg) {
                        let rest = &shorts[i + c.len_utf8()..];
                        let rest = rest.strip_prefix('=').unwrap_or(rest);
                        p.take_flag(arg, (!rest.is_empty()).then(|| rest.to_string()));
                        break;
                    }
                    p.take_flag(arg, None);
                }
            }
        }
        p
    }

    fn take_flag(&mut self, arg: &Arg, value: Option<String>) {
        let id = arg.get_id().to_string();
        match value {
            Some(v) => self.values.push((id, v)),
            None if takes_value(arg) => self.pending = Some(arg.clone()),
            None => self.switches.push(id),
        }
    }

    #[cfg(test)]
    fn value(&self, id: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, id: &str) -> bool {
        self.switches.iter().any(|s| s == id) || self.values.iter().any(|(k, _)| k == id)
    }

    fn all_namespaces(&self) -> bool {
        self.subcommand.as_deref() == Some("status") && self.has("all_namespaces")
    }
}

struct Context<'a> {
    flags: &'a KubeFlags,
    parsed: &'a Parsed,
}

impl Context<'_> {
    /// How to connect: the connection flags in the words, over clap's.
    fn connect_options(&self) -> ConnectOptions {
        let mut opts = self.flags.connect_options();
        let p = self.parsed;
        for (id, value) in &p.values {
            match id.as_str() {
                "kubeconfig" => opts.kubeconfig = Some(PathBuf::from(value)),
                "context" => opts.context = Some(value.clone()),
                "cluster" => opts.cluster = Some(value.clone()),
                "user" => opts.user = Some(value.clone()),
                "namespace" => opts.namespace = Some(value.clone()),
                "as_user" => opts.as_user = Some(value.clone()),
                "as_group" => opts.as_groups.push(value.clone()),
                "request_timeout" => opts.request_timeout = parse_request_timeout(value).ok(),
                _ => {}
            }
        }
        if opts.request_timeout.is_none_or(|t| t.is_zero()) {
            opts.request_timeout = Some(CLUSTER_TIMEOUT);
        }
        opts
    }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn long_flag<'c>(cmd: &'c Command, name: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name))
}

fn help_of(arg: &Arg) -> String {
    arg.get_help().map(|h| h.to_string()).unwrap_or_default()
}

/// `-…`: the flags of the current subcommand (its own and the global ones),
/// long and short forms, leaving out those already given once.
fn flag_names(cmd: &Command, parsed: &Parsed, partial: &str) -> Completions {
    let mut items = Vec::new();
    for arg in cmd.get_arguments() {
        if arg.is_positional() || arg.is_hide_set() {
            continue;
        }
        let repeatable = matches!(arg.get_action(), clap::ArgAction::Append | clap::ArgAction::Count);
        if parsed.has(arg.get_id().as_str()) && !repeatable {
            continue;
        }
        let help = help_of(arg);
        if let Some(long) = arg.get_long() {
            items.push((format!("--{long}"), help.clone()));
        }
        if let Some(short) = arg.get_short() {
            items.push((format!("-{short}"), help));
        }
    }
    Completions::of(items, partial)
}

/// The value of a flag (`-n <TAB>` or `--namespace=<TAB>`); `prefix` is put
/// before each candidate.
async fn flag_values(ctx: &Context<'_>, arg: &Arg, prefix: &str, partial: &str) -> Completions {
    let mut names: Vec<(String, String)> = possible_values(arg);
    if names.is_empty() {
        names = match arg.get_id().as_str() {
            "namespace" => namespaces(ctx).await,
            "context" | "cluster" | "user" => kubeconfig_names(ctx, arg.get_id().as_str()),
            // A file name.
            "kubeconfig" => {
                return Completions {
                    items: Vec::new(),
                    directive: directive::DEFAULT,
                };
            }
            _ => Vec::new(),
        };
    }
    let items = names
        .into_iter()
        .map(|(v, h)| (format!("{prefix}{v}"), h))
        .collect();
    Completions::of(items, &format!("{prefix}{partial}"))
}

fn possible_values(arg: &Arg) -> Vec<(String, String)> {
    arg.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| {
            (
                v.get_name().to_string(),
                v.get_help().map(|h| h.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// A word that is not a flag: a subcommand, a release, a change, a shell.
async fn positional(ctx: &Context<'_>, root: &Command, cmd: &Command, partial: &str) -> Completions {
    let p = ctx.parsed;
    let Some(sub) = p.subcommand.as_deref() else {
        if !p.positionals.is_empty() {
            return Completions::none();
        }
        let items = root
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| {
                let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
                (s.get_name().to_string(), about)
            })
            .collect();
        return Completions::of(items, partial);
    };
    let index = p.positionals.len();
    let args: Vec<&Arg> = cmd.get_positionals().collect();
    let arg = args.get(index).copied().or_else(|| {
        args.last()
            .copied()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
    });
    let Some(arg) = arg else {
        return Completions::none();
    };
    match (sub, arg.get_id().as_str()) {
        ("status" | "plan" | "scale", "release") => Completions::of(releases(ctx).await, partial),
        ("plan" | "scale", "changes") => {
            if partial.contains('=') {
                return Completions::none();
            }
            let mut done = Completions::of(changes(ctx).await, partial);
            done.directive = directive::NO_SPACE | directive::NO_FILE_COMP;
            done
        }
        _ => Completions::of(possible_values(arg), partial),
    }
}

/// Runs a cluster call under the completion's time limit; `None` on error.
async fn bounded<T>(ctx: &Context<'_>, fut: impl Future<Output = Option<T>>) -> Option<T> {
    let limit = ctx.connect_options().request_timeout.unwrap_or(CLUSTER_TIMEOUT);
    tokio::time::timeout(limit + Duration::from_secs(1), fut)
        .await
        .ok()
        .flatten()
}

/// Milvus release names and `Milvus` resource names in the namespace in
/// scope (every namespace with `status -A`), described by chart or mode and
/// namespace.
async fn releases(ctx: &Context<'_>) -> Vec<(String, String)> {
    let all = ctx.parsed.all_namespaces();
    let found = bounded(ctx, async {
        let cluster = Cluster::new(connect(&ctx.connect_options()).await.ok()?);
        let namespace = cluster.namespace().to_string();
        let scope = (!all).then_some(namespace.as_str());
        let (records, resources) = tokio::join!(
            current_records(&cluster, scope, None),
            operator_api::list(&cluster, scope)
        );
        let resources = match resources {
            Ok(Found::Resources(crs)) => crs,
            _ => Vec::new(),
        };
        Some((records.map(|l| l.records).unwrap_or_default(), resources))
    })
    .await
    .unwrap_or_default();
    let (records, resources) = found;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for r in records.iter().filter(|r| r.release.is_milvus()) {
        let help = format!(
            "{}-{} in {}",
            r.release.chart_name(),
            r.release.chart_version(),
            r.namespace
        );
        names.entry(r.release.name().to_string()).or_insert(help);
    }
    for cr in &resources {
        let help = format!("Milvus {} (Milvus Operator) in {}", cr.mode(), cr.namespace());
        names.entry(cr.name().to_string()).or_insert(help);
    }
    names.into_iter().collect()
}

/// `COMPONENT=` for each worker component of the release (or `Milvus`
/// resource) named by the first positional, leaving out those already
/// changed.
async fn changes(ctx: &Context<'_>) -> Vec<(String, String)> {
    let Some(release) = ctx.parsed.positionals.first() else {
        return Vec::new();
    };
    let keys = bounded(ctx, async {
        let cluster = Cluster::new(connect(&ctx.connect_options()).await.ok()?);
        let namespace = cluster.namespace().to_string();
        if let Some(record) = releases::one(&cluster, &namespace, release)
            .await
            .ok()
            .and_then(|current| current.record().cloned())
        {
            let objects = manifest::parse(record.release.manifest()).ok()?;
            return Some(plan::scalable_components(
                &Chart::of_record(&record.release),
                &objects,
            ));
        }
        let cr = operator_api::get(&cluster, &namespace, release).await.ok()??;
        let deployments = operator_api::deployments(&cluster, Some(&namespace), &Default::default())
            .await
            .ok()?;
        Some(operator::scalable_components(&operator::workloads(
            &cr,
            &deployments,
        )))
    })
    .await
    .unwrap_or_default();
    // A component is known by its label, whichever name (Helm values key,
    // resource spec key, label) was typed for it.
    let label = |name: &str| {
        components::by_user_name(name)
            .or_else(|| operator::by_user_name(name))
            .map(|c| c.label)
    };
    let given: Vec<&str> = ctx.parsed.positionals[1..]
        .iter()
        .filter_map(|change| label(change.split('=').next().unwrap_or_default()))
        .collect();
    keys.into_iter()
        .filter(|key| label(key).is_none_or(|l| !given.contains(&l)))
        .map(|key| (format!("{key}="), String::new()))
        .collect()
}

/// Namespace names, for `-n`; none if they cannot be listed.
async fn namespaces(ctx: &Context<'_>) -> Vec<(String, String)> {
    let mut opts = ctx.connect_options();
    opts.namespace = None;
    bounded(ctx, async {
        let cluster = Cluster::new(connect(&opts).await.ok()?);
        let names = cluster.namespace_names().await.ok()?;
        Some(names.into_iter().map(|name| (name, String::new())).collect())
    })
    .await
    .unwrap_or_default()
}

/// Context, cluster or user names from the kubeconfig in use (kubectl's
/// loading rules, as for connecting).
fn kubeconfig_names(ctx: &Context<'_>, id: &str) -> Vec<(String, String)> {
    let opts = ctx.connect_options();
    let Ok(config) = load_kubeconfig(opts.kubeconfig.as_deref()) else {
        return Vec::new();
    };
    let names: Vec<String> = match id {
        "context" => config.contexts.into_iter().map(|c| c.name).collect(),
        "cluster" => config.clusters.into_iter().map(|c| c.name).collect(),
        _ => config.auth_infos.into_iter().map(|u| u.name).collect(),
    };
    names.into_iter().map(|n| (n, String::new())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn values(c: &Completions) -> Vec<&str> {
        c.items.iter().map(|(v, _)| v.as_str()).collect()
    }

    fn run(w: &[&str]) -> Completions {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // No cluster behind this kubeconfig path: cluster lookups yield nothing.
        let flags = KubeFlags {
            kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
            ..Default::default()
        };
        rt.block_on(complete(&flags, &words(w)))
    }

    #[test]
    fn first_word_is_a_subcommand() {
        let c = run(&[""]);
        assert_eq!(values(&c), ["status", "plan", "scale", "version", "completion"]);
        assert_eq!(c.directive, directive::NO_FILE_COMP);
        assert_eq!(values(&run(&["s"])), ["status", "scale"]);
        // Flags before the subcommand do not count as a positional.
        assert_eq!(values(&run(&["-n", "x", "p"])), ["plan"]);
    }

    #[test]
    fn flags_of_the_subcommand_long_and_short() {
        let c = run(&["status", "-"]);
        let v = values(&c);
        for f in [
            "--all-namespaces",
            "-A",
            "--output",
            "-o",
            "--namespace",
            "-n",
            "--kubeconfig",
            "--help",
        ] {
            assert!(v.contains(&f), "{f} missing from {v:?}");
        }
        assert!(!v.contains(&"--replicas"), "{v:?}");
        let scale = run(&["scale", "r", "--d"]);
        assert_eq!(values(&scale), ["--dry-run", "--drain-timeout"]);
        // Already given: not offered again.
        assert!(!values(&run(&["status", "-A", "-"])).contains(&"-A"));
    }

    #[test]
    fn flag_values_from_possible_values() {
        assert_eq!(
            values(&run(&["status", "-o", ""])),
            ["table", "wide", "json", "yaml"]
        );
        assert_eq!(values(&run(&["plan", "r", "--output", "j"])), ["json"]);
        assert_eq!(values(&run(&["status", "--output=y"])), ["--output=yaml"]);
        assert_eq!(
            values(&run(&["completion", ""])),
            ["bash", "elvish", "fish", "powershell", "zsh"]
        );
    }

    #[test]
    fn cluster_errors_give_only_the_directive() {
        assert_eq!(run(&["status", ""]).render(), ":4\n");
        assert_eq!(run(&["-n", ""]).render(), ":4\n");
        assert_eq!(run(&["scale", "my-release", ""]).render(), ":6\n");
        assert_eq!(run(&["scale", "my-release", "queryNode="]).render(), ":4\n");
        assert_eq!(run(&["--kubeconfig", ""]).render(), ":0\n");
        assert_eq!(run(&["version", ""]).render(), ":4\n");
    }

    #[test]
    fn words_are_parsed_like_the_cli() {
        let mut root = Cli::command();
        root.build();
        let p = Parsed::new(
            &root,
            &words(&["-nfoo", "scale", "--context=c", "rel", "queryNode=2", "-A"]),
        );
        assert_eq!(p.subcommand.as_deref(), Some("scale"));
        assert_eq!(p.positionals, ["rel", "queryNode=2"]);
        assert_eq!(p.value("namespace"), Some("foo"));
        assert_eq!(p.value("context"), Some("c"));
        let p = Parsed::new(&root, &words(&["status", "-Ao"]));
        assert!(p.has("all_namespaces"));
        assert_eq!(
            p.pending.as_ref().map(|a| a.get_id().to_string()).as_deref(),
            Some("output")
        );
    }

    #[test]
    fn render_has_descriptions_and_directive() {
        let c = Completions {
            items: vec![("a".into(), "first".into()), ("b".into(), String::new())],
            directive: 6,
        };
        assert_eq!(c.render(), "a\tfirst\nb\n:6\n");
    }
}
