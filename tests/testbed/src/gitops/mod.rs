//! Milvus releases owned by GitOps tools, seeded with exactly the markers
//! those tools leave (per the project's GitOps notes; sources:
//! fluxcd/helm-controller, argoproj/argo-cd):
//!
//! * [`seed_flux_release`]: a Helm release (record + objects, as
//!   [`crate::seed`] seeds it) installed *through Flux helm-controller*: its
//!   post-renderer labels every rendered object with
//!   `helm.toolkit.fluxcd.io/{name,namespace}` (the HelmRelease's name and
//!   namespace; also in the stored manifest), objects are written by field
//!   manager `helm-controller`, the record carries Helm's defaults only
//!   (Flux adds nothing there), plus the `HelmRelease` object
//!   (`helm.toolkit.fluxcd.io/v2`) with `spec.releaseName`, `spec.values`
//!   (= the record's `config`) and `status.history`/`storageNamespace` as v2
//!   writes them.
//! * [`seed_argocd_app`]: the chart's rendered objects as Argo CD applies
//!   them (`helm template`): **no** Helm record, no `meta.helm.sh/*`
//!   annotations, with Argo CD's tracking markers (`annotation`,
//!   `label`, or `annotation+label`), plus an `Application` in a per-test
//!   "argocd" namespace with `spec.source.helm` values and
//!   `syncPolicy.automated.selfHeal`.
//!
//! Neither tool runs: nothing reverts drift or reconciles values.

mod argocd;
mod crds;
mod flux;

pub use argocd::{ArgoOptions, ArgoValues, SeededArgoApp, Tracking, seed_argocd_app, tracking_id};
pub use crds::{APPLICATION_CRD, HELMRELEASE_CRD, install_crds};
pub use flux::{FLUX_NAME_LABEL, FLUX_NAMESPACE_LABEL, FluxOptions, SeededFluxRelease, seed_flux_release};
