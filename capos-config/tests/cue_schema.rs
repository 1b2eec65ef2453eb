//! schema/system.cue (the CUE schema of system files) states the same rules
//! as this crate: the kernel cap sources, log levels and limits agree.

use std::path::PathBuf;

use capos_config::{
    KERNEL_CAP_SOURCES, LOG_LEVELS, MAX_BACKOFF_MS, MAX_GRANT_NAME_BYTES, MAX_HOSTNAME_LEN,
    MAX_RESOURCE_CAPS, MAX_RESOURCE_FRAMES, MAX_RESOURCE_KERNEL_BYTES, MAX_RESOURCE_OPEN_CALLS,
    MAX_RESOURCE_THREADS, MAX_RESTARTS, MIN_RESOURCE_FRAMES, MIN_RESOURCE_KERNEL_BYTES,
};

fn schema() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema/system.cue");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alternatives of the pattern defining `definition`
/// (`#Name: =~"^(a|b)$"`).
fn enumeration(schema: &str, definition: &str) -> Vec<String> {
    let line = schema
        .lines()
        .find(|line| line.starts_with(&format!("{definition}:")))
        .unwrap_or_else(|| panic!("schema/system.cue has no {definition}"));
    let pattern = line
        .split_once("=~\"^(")
        .and_then(|(_, rest)| rest.strip_suffix(")$\""))
        .unwrap_or_else(|| panic!("{definition} is not a pattern of alternatives: {line}"));
    pattern.split('|').map(String::from).collect()
}

#[test]
fn kernel_sources_agree() {
    assert_eq!(enumeration(&schema(), "#KernelSource"), KERNEL_CAP_SOURCES);
}

#[test]
fn log_levels_agree() {
    assert_eq!(enumeration(&schema(), "#LogLevel"), LOG_LEVELS);
}

#[test]
fn limits_agree() {
    let schema = schema();
    for needle in [
        format!("maxRestarts: int & >=0 & <={MAX_RESTARTS}\n"),
        format!("backoffMs:   int & >=0 & <={MAX_BACKOFF_MS}\n"),
        format!("#CapName: #Name & strings.MaxRunes({MAX_GRANT_NAME_BYTES})\n"),
        format!("strings.MaxRunes({MAX_HOSTNAME_LEN})\n"),
        "version: 1\n".to_string(),
        format!("frames?: int & (0 | >={MIN_RESOURCE_FRAMES} & <={MAX_RESOURCE_FRAMES})\n"),
        format!(
            "kernelBytes?: int & (0 | >={MIN_RESOURCE_KERNEL_BYTES} & \
             <={MAX_RESOURCE_KERNEL_BYTES})\n"
        ),
        format!("threads?: int & >=0 & <={MAX_RESOURCE_THREADS}\n"),
        format!("caps?: int & >=0 & <={MAX_RESOURCE_CAPS}\n"),
        format!("openCalls?: int & >=0 & <={MAX_RESOURCE_OPEN_CALLS}\n"),
    ] {
        assert!(schema.contains(&needle), "schema/system.cue does not say {needle:?}");
    }
}
