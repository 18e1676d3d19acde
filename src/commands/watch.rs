//! `kubectl milvus status [RELEASE] -w`: the status redrawn as it changes,
//! like `kubectl get -w` for a whole release. Metadata-only watches say
//! that something changed (no polling); a burst of changes is one redraw,
//! at most one per [`DEBOUNCE`], each a fresh consistent read, exactly what
//! `status` shows. Ends on Ctrl-C (or SIGTERM) with exit 0.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use futures::{FutureExt, StreamExt};

use crate::cli::{StatusArgs, StatusOutput};
use crate::cluster::Cluster;
use crate::cluster::changes::changes;
use crate::cluster::operator::{self as operator_api, Found};
use crate::core::operator::Instance;
use crate::core::watch::ageless;
use crate::engine::signals::{self, interrupted};
use crate::engine::status::instances_with_milvus as instances;
use crate::error::{InvalidInput, one_line};
use crate::render;

/// The quiet time that ends a burst of changes before the redraw.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub async fn run(cluster: &Cluster, args: &StatusArgs) -> Result<String> {
    if args.all_namespaces {
        return Err(InvalidInput(
            "--watch follows one namespace: drop -A (pick the namespace with -n)".to_string(),
        )
        .into());
    }
    let namespace = cluster.namespace().to_string();
    let name = args.release.as_deref();
    // Ctrl-C ends the watch the same way from its very start, the first
    // read included.
    signals::install();
    let start = async {
        let first = instances(cluster, name, false).await?;
        // `Milvus` resources are watched only where they can be listed at all.
        let milvuses = matches!(
            operator_api::list(cluster, Some(&namespace)).await,
            Ok(Found::Resources(_))
        );
        Ok::<_, anyhow::Error>((first, milvuses))
    };
    let (first, milvuses) = tokio::select! {
        started = start => started?,
        () = interrupted() => return Ok(String::new()),
    };
    let mut screen = Screen::new(args.output);
    if screen.show(&first).is_err() {
        return Ok(String::new());
    }
    let mut changed = std::pin::pin!(changes(cluster, &namespace, name, milvuses));
    let follow = async {
        let mut last_error: Option<String> = None;
        loop {
            match changed.next().await {
                Some(Ok(())) => {}
                Some(Err(refused)) => return Err(anyhow::Error::new(refused)),
                None => {
                    return Err(anyhow::anyhow!(
                        "the watches on namespace {namespace:?} ended (the API server closed them); run kubectl milvus status -w again"
                    ));
                }
            }
            tokio::time::sleep(DEBOUNCE).await;
            while let Some(Some(more)) = changed.next().now_or_never() {
                more?;
            }
            match instances(cluster, name, false).await {
                Ok(now) => {
                    last_error = None;
                    // A closed stdout (`| head`) ends the watch quietly.
                    if screen.show(&now).is_err() {
                        return Ok(());
                    }
                }
                // Passing trouble (the release deleted, the server away) is
                // told once and watched through.
                Err(e) => {
                    let line = one_line(&e);
                    if last_error.as_ref() != Some(&line) {
                        eprintln!("warning: {line}");
                        last_error = Some(line);
                    }
                }
            }
        }
    };
    tokio::select! {
        r = follow => r.map(|()| String::new()),
        () = interrupted() => Ok(String::new()),
    }
}

/// Where snapshots go: redrawn in place on a terminal (tables), appended
/// otherwise: tables separated by a blank line, YAML documents by `---`,
/// JSON documents one after the other (as `kubectl get -w -o json`).
struct Screen {
    output: StatusOutput,
    terminal: Option<console::Term>,
    shown: usize,
    /// What the last snapshot printed, without its AGE.
    last: Option<String>,
}

impl Screen {
    fn new(output: StatusOutput) -> Screen {
        let table = matches!(output, StatusOutput::Table | StatusOutput::Wide);
        Screen {
            output,
            terminal: (table && std::io::stdout().is_terminal()).then(console::Term::stdout),
            shown: 0,
            last: None,
        }
    }

    fn render(&self, items: &[Instance]) -> Result<String> {
        let doc = render::document::Document {
            api_version: render::document::API_VERSION,
            kind: "MilvusStatusList",
            items,
        };
        Ok(match self.output {
            StatusOutput::Table => render::status::instances(items, false, false),
            StatusOutput::Wide => render::status::instances(items, true, false),
            StatusOutput::Json => render::document::json(&doc)?,
            StatusOutput::Yaml => render::document::yaml(&doc)?,
        })
    }

    /// Prints a snapshot, unless it would print what the last one did but
    /// for the AGE.
    fn show(&mut self, items: &[Instance]) -> Result<()> {
        let key = self.render(&ageless(items))?;
        if self.last.as_ref() == Some(&key) {
            return Ok(());
        }
        self.last = Some(key);
        let text = self.render(items)?;
        let separator = match (self.shown, self.output) {
            (0, _) | (_, StatusOutput::Json) => "",
            (_, StatusOutput::Yaml) => "---\n",
            _ => "\n",
        };
        if let Some(term) = &self.terminal {
            term.clear_screen()?;
        }
        let mut out = std::io::stdout().lock();
        match self.terminal {
            Some(_) => out.write_all(text.as_bytes())?,
            None => out.write_all(format!("{separator}{text}").as_bytes())?,
        }
        out.flush()?;
        self.shown += 1;
        Ok(())
    }
}
