//! The milvus chart as rendered into an instance: from a Helm record, or
//! from the live objects Argo CD applied without one. What `status` and
//! planning read of it; the two sources differ only in how it is made.

use serde_json::Value;

use crate::core::release::Release;
use crate::core::scale_in::ConfigLayers;

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The release name it was rendered with.
    pub name: String,
    pub chart_name: String,
    pub chart_version: String,
    pub app_version: String,
    /// The values it was rendered from (Helm's effective values), or what
    /// the rendered objects run.
    pub values: Value,
    /// The user's Milvus configuration, lowest precedence first.
    pub config: ConfigLayers,
    /// Helm applies it server-side (Helm 4); `helm upgrade` then fails on a
    /// field another manager owns, where a client-side one writes over it.
    pub server_side: bool,
}

impl Chart {
    /// The chart a Helm record renders, its Milvus configuration from the
    /// record's manifest.
    pub fn of_release(release: &Release) -> Chart {
        Chart {
            config: crate::core::manifest::milvus_config_layers(release.manifest()),
            ..Chart::of_record(release)
        }
    }

    /// The chart a Helm record renders, without reading its manifest.
    pub fn of_record(release: &Release) -> Chart {
        Chart {
            name: release.name().to_string(),
            chart_name: release.chart_name().to_string(),
            chart_version: release.chart_version().to_string(),
            app_version: release.app_version().to_string(),
            values: release.effective_values(),
            config: Vec::new(),
            server_side: release.server_side(),
        }
    }

    /// The `helm.sh/chart` label its objects carry.
    pub fn label(&self) -> String {
        format!("{}-{}", self.chart_name, self.chart_version).replace('+', "_")
    }
}
