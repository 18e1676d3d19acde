//! Shell completion: static scripts (`completion SHELL`) and the dynamic
//! protocol kubectl speaks to `kubectl_complete-milvus`.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, KubeFlags};

pub fn script(shell: clap_complete::Shell) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-milvus", &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

pub async fn candidates(_flags: &KubeFlags, _words: &[String]) -> Result<String> {
    Ok(String::new())
}
