//! The order init starts services in.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;

use crate::model::{GrantSource, Manifest};
use crate::ValidationError;

/// For each service, the services whose exports it is granted (each once, in
/// grant order). A grant naming no service of the manifest, or the service
/// itself, adds no dependency: [`crate::validate`] reports those.
fn dependencies(manifest: &Manifest) -> Vec<Vec<usize>> {
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, service) in manifest.services.iter().enumerate() {
        first.entry(service.name.as_str()).or_insert(index);
    }
    manifest
        .services
        .iter()
        .map(|service| {
            let mut deps = Vec::new();
            for grant in &service.grants {
                if let GrantSource::Service(from) = &grant.source {
                    if from.service == service.name {
                        continue;
                    }
                    if let Some(&provider) = first.get(from.service.as_str()) {
                        if !deps.contains(&provider) {
                            deps.push(provider);
                        }
                    }
                }
            }
            deps
        })
        .collect()
}

/// The indices of `manifest.services` in the order init starts them: every
/// service after the services whose exports it is granted and, among the
/// services that could start next, the one declared first.
///
/// Fails with [`ValidationError::Cycle`] when services are granted each
/// other's exports in a cycle; the cycle named is one reached from the first
/// declared service that cannot start.
pub fn start_order(manifest: &Manifest) -> Result<Vec<usize>, ValidationError> {
    let deps = dependencies(manifest);
    let count = deps.len();
    let mut waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (service, its_deps) in deps.iter().enumerate() {
        for &dep in its_deps {
            dependents[dep].push(service);
        }
    }
    let mut ready: BTreeSet<usize> = (0..count).filter(|&i| waiting_on[i] == 0).collect();
    let mut order = Vec::with_capacity(count);
    let mut started = vec![false; count];
    while let Some(next) = ready.pop_first() {
        order.push(next);
        started[next] = true;
        for &dependent in &dependents[next] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.insert(dependent);
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }

    // Every service that did not start waits on one that did not start
    // either: following those from the first one must come round.
    let Some(mut at) = started.iter().position(|&s| !s) else {
        return Ok(order);
    };
    let mut seen_at: Vec<Option<usize>> = vec![None; count];
    let mut walk = Vec::new();
    let cycle = loop {
        if let Some(from) = seen_at[at] {
            break walk.split_off(from);
        }
        seen_at[at] = Some(walk.len());
        walk.push(at);
        match deps[at].iter().find(|&&dep| !started[dep]) {
            Some(&dep) => at = dep,
            // Cannot happen (a service waits on some dependency that did not
            // start); name what was walked rather than panic.
            None => break walk,
        }
    };
    let lowest = cycle.iter().enumerate().min_by_key(|&(_, &index)| index).map_or(0, |(at, _)| at);
    let path = cycle[lowest..]
        .iter()
        .chain(&cycle[..lowest])
        .map(|&index| manifest.services[index].name.clone())
        .collect();
    Err(ValidationError::Cycle { path })
}
