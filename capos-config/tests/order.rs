//! `start_order` on random dependency graphs: either an order in which every
//! service comes after the services whose exports it is granted, or a cycle
//! that really is one.

use capos_config::{start_order, Grant, KernelParams, Manifest, Service, ValidationError};
use proptest::prelude::*;

/// Services `s0..sN`, each exporting `e` and granted `e` of the services
/// `edges` names (indices may be out of range: grants of unknown services).
fn manifest(edges: &[Vec<usize>]) -> Manifest {
    let services = edges
        .iter()
        .enumerate()
        .map(|(i, needs)| {
            let mut service = Service::new(format!("s{i}"), "template");
            service.exports = vec!["e".into()];
            service.grants = needs
                .iter()
                .enumerate()
                .map(|(j, &n)| Grant::export(format!("g{j}"), format!("s{n}"), "e"))
                .collect();
            service
        })
        .collect();
    Manifest {
        version: 1,
        kernel: KernelParams {
            hostname: "h".into(),
            log_level: "info".into(),
            motd: String::new(),
        },
        services,
        auth: None,
    }
}

fn needs(manifest: &Manifest, from: &str, to: &str) -> bool {
    manifest
        .service(from)
        .unwrap()
        .grants
        .iter()
        .any(|g| matches!(&g.source, capos_config::GrantSource::Service(r) if r.service == to))
}

proptest! {
    #[test]
    fn orders_respect_dependencies_or_a_real_cycle_is_named(
        edges in (1usize..9).prop_flat_map(|n| {
            proptest::collection::vec(proptest::collection::vec(0..n + 1, 0..3), n)
        })
    ) {
        let manifest = manifest(&edges);
        match start_order(&manifest) {
            Ok(order) => {
                let mut sorted = order.clone();
                sorted.sort_unstable();
                prop_assert_eq!(sorted, (0..edges.len()).collect::<Vec<_>>());
                let position = |i: usize| order.iter().position(|&o| o == i).unwrap();
                for (i, its) in edges.iter().enumerate() {
                    for &n in its {
                        if n < edges.len() && n != i {
                            prop_assert!(position(n) < position(i), "{n} after {i}: {order:?}");
                        }
                    }
                }
            }
            Err(ValidationError::Cycle { path }) => {
                prop_assert!(path.len() >= 2, "{path:?}");
                for (k, from) in path.iter().enumerate() {
                    let to = &path[(k + 1) % path.len()];
                    prop_assert!(needs(&manifest, from, to), "{from} does not need {to}: {path:?}");
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn acyclic_graphs_always_order(
        edges in (1usize..12).prop_flat_map(|n| {
            // Each service needs only services declared before it.
            (0..n).map(|i| proptest::collection::vec(0..i.max(1), 0..3)).collect::<Vec<_>>()
        })
    ) {
        let edges: Vec<Vec<usize>> = edges
            .into_iter()
            .enumerate()
            .map(|(i, needs)| needs.into_iter().filter(|&n| n < i).collect())
            .collect();
        let order = start_order(&manifest(&edges)).unwrap();
        // Declared in dependency order already: the stable order is the identity.
        prop_assert_eq!(order, (0..edges.len()).collect::<Vec<_>>());
    }
}
