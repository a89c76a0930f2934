//! Sandboxes' user namespaces: a range of host ids for each (`crate::ids`), held until `rm`,
//! and the move of a sandbox made without one into one at its next start.

use islo_runtime::{ClassSupport, IdMap, Isolation, SandboxSpec};

use super::sandboxes::runtime_spec;
use super::{App, AppError};
use crate::store::SandboxRow;

/// The classes among `classes` this host can run, comma-separated (`container, gvisor`).
pub fn offered_classes(classes: &[ClassSupport]) -> String {
    classes
        .iter()
        .filter(|c| c.runtime.is_ok())
        .map(|c| c.class.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The class named `name`, if the host runs it; else why not, with what it offers.
pub fn offered_class(classes: &[ClassSupport], name: &str) -> Result<Isolation, String> {
    let offered = offered_classes(classes);
    let class = Isolation::parse(name)
        .ok_or_else(|| format!("unknown isolation class {name:?}; this host offers: {offered}"))?;
    match classes
        .iter()
        .find(|c| c.class == class)
        .map(|c| &c.runtime)
    {
        Some(Ok(_)) => Ok(class),
        Some(Err(why)) => Err(format!(
            "isolation class {name} is not available on this host ({why}); it offers: {offered}"
        )),
        None => Err(format!(
            "isolation class {name} is not available on this host; it offers: {offered}"
        )),
    }
}

impl App {
    /// The class a create asks for (`None`: the server's default), if this host runs it.
    pub(super) fn isolation_class(&self, asked: Option<&str>) -> Result<Isolation, AppError> {
        let Some(name) = asked else {
            return Ok(self.settings.default_isolation);
        };
        offered_class(&self.driver.isolation_classes(), name).map_err(AppError::Validation)
    }

    /// The isolation classes this host offers, the default first (`GET /system/info`).
    pub fn isolation_classes(&self) -> Vec<String> {
        let default = self.settings.default_isolation;
        let mut v: Vec<String> = vec![default.as_str().to_string()];
        v.extend(
            self.driver
                .isolation_classes()
                .into_iter()
                .filter(|c| c.runtime.is_ok() && c.class != default)
                .map(|c| c.class.as_str().to_string()),
        );
        v
    }

    /// A range of host ids for sandbox `id`, recorded with it; `None` when sandboxes run
    /// without user namespaces (`isolation.userns: false`).
    pub(super) fn allocate_ids(&self, id: &str) -> Result<Option<IdMap>, AppError> {
        let Some(pool) = &self.settings.ids else {
            return Ok(None);
        };
        self.driver.user_namespaces().map_err(|e| {
            AppError::Provisioning(format!(
                "{e}. islod runs every sandbox in a user namespace of its own; to run them \
                 without one on this host (reduced isolation: their root is the host's root), \
                 set `isolation: {{userns: false}}` in islod's config"
            ))
        })?;
        let store = &self.store;
        let m = pool.claim(id, &|i| store.id_range_holder(i), &|i| {
            store.set_id_range(id, i)
        })?;
        Ok(Some(m))
    }

    /// Give back the range of a sandbox that is going (or never came to be); before its
    /// record is marked deleted or removed, which drops the range from it.
    pub(super) fn release_ids(&self, id: &str) {
        let Some(pool) = &self.settings.ids else {
            return;
        };
        match self.store.id_range_of(id) {
            Ok(Some(i)) => pool.release(i, id),
            Ok(None) => {}
            Err(e) => tracing::warn!(sandbox = id, error = %e, "reading its id range"),
        }
    }

    /// The spec to start `row` with. A sandbox made without a user namespace gets a range
    /// now and keeps it (the driver re-owns its files before it runs); if none can be had,
    /// it stays stopped and the error says why.
    pub(super) fn spec_to_start(&self, row: &SandboxRow) -> Result<SandboxSpec, AppError> {
        let mut spec = runtime_spec(row)?;
        // A gVisor sandbox runs in runsc's user namespace, never in a host range.
        if spec.ids.is_some() || self.settings.ids.is_none() || spec.isolation == Isolation::Gvisor
        {
            return Ok(spec);
        }
        let why = |e: String| {
            format!(
                "sandbox {} was made without a user namespace and cannot be moved into one: {e}",
                row.name
            )
        };
        spec.ids = self.allocate_ids(&row.id).map_err(|e| match e {
            AppError::HostFull(m) => AppError::HostFull(why(m)),
            AppError::Provisioning(m) => AppError::Provisioning(why(m)),
            e => e,
        })?;
        let mut stored = row.stored.clone();
        stored.spec = Some(spec.clone());
        self.store.set_runtime_spec(&row.id, &stored)?;
        tracing::info!(sandbox = %row.name, first_id = spec.ids.map(|m| m.base),
            "moving a sandbox made without a user namespace into one");
        Ok(spec)
    }

    /// At start-up: the ranges live sandboxes hold are claimed on the host again (in case
    /// the claims directory was lost).
    pub(super) fn reassert_ids(&self, rows: &[SandboxRow]) -> Result<(), AppError> {
        let Some(pool) = &self.settings.ids else {
            return Ok(());
        };
        let held: Vec<(String, IdMap)> = rows
            .iter()
            .filter_map(|r| Some((r.id.clone(), runtime_spec(r).ok()?.ids?)))
            .collect();
        Ok(pool.reassert(&held)?)
    }
}
