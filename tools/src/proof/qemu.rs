//! The QEMU command line and the QEMU process.

use std::path::{Path, PathBuf};
use std::process::Child;

use super::cli::{Firmware, ProofConfig};
use super::status::QemuStatus;

/// The QEMU binary, looked up in `PATH`.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// Where OVMF is looked for, in order (Debian's `ovmf` package, then QEMU's own copy).
pub const OVMF_PATHS: [&str; 2] = ["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// The firmware file to pass with `-bios`: `None` for SeaBIOS, QEMU's default.
pub fn firmware_path(firmware: Firmware) -> Result<Option<PathBuf>, String> {
    match firmware {
        Firmware::Bios => Ok(None),
        Firmware::Uefi => {
            OVMF_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()).map(Some).ok_or_else(|| {
                format!(
                    "UEFI firmware not found (looked for {}; install Debian's ovmf package)",
                    OVMF_PATHS.join(", ")
                )
            })
        }
    }
}

/// Whether the image boots as a CD-ROM (`*.iso`) rather than a raw disk.
pub fn is_iso(image: &Path) -> bool {
    image.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("iso"))
}

/// A path inside a QEMU option string (`key=value,...`), where a comma is written `,,`.
fn option_path(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// The QEMU arguments (without the binary) for `config`, with COM1 served by QEMU (telnet)
/// on the Unix socket `com1` and COM2 connected as a client to `com2`.
pub fn qemu_args(
    config: &ProofConfig,
    com1: &Path,
    com2: &Path,
    firmware: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&["-machine", config.machine.qemu_name(), "-accel", "tcg"]);
    if !config.qemu_args.iter().any(|a| a == "-cpu") {
        push(&["-cpu", "qemu64"]);
    }
    push(&["-smp", &config.smp.to_string(), "-m", &config.mem]);
    push(&["-display", "none", "-no-reboot", "-monitor", "none"]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    // COM1 is a telnet server QEMU starts the guest only once the harness is connected
    // to, so that a proof can send a break on the line (`IAC BRK`, the `\B` escape of
    // `--send`). COM2 connects to the harness.
    for (id, path, mode) in [("com1", com1, ",server=on,wait=on,telnet=on"), ("com2", com2, "")] {
        let chardev = format!("socket,id={id},path={}{mode}", option_path(path));
        push(&["-chardev", &chardev, "-serial", &format!("chardev:{id}")]);
    }
    if let Some(firmware) = firmware {
        push(&["-bios", &firmware.to_string_lossy()]);
    }
    if is_iso(&config.image) {
        push(&["-cdrom", &config.image.to_string_lossy()]);
    } else {
        let drive = format!("file={},format=raw,if=ide", option_path(&config.image));
        push(&["-drive", &drive]);
    }
    args.extend(config.qemu_args.iter().cloned());
    args
}

/// `args` as one shell command line, for the log.
pub fn shell_line(program: &str, args: &[String]) -> String {
    let quote = |arg: &str| {
        let plain = !arg.is_empty()
            && arg.chars().all(|c| c.is_ascii_alphanumeric() || "_-./,:=+@%".contains(c));
        if plain {
            arg.to_string()
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The running QEMU; killed and reaped when dropped.
#[derive(Debug)]
pub struct QemuProcess {
    child: Child,
    status: Option<QemuStatus>,
}

impl QemuProcess {
    /// Takes ownership of a spawned QEMU.
    pub fn new(child: Child) -> QemuProcess {
        QemuProcess { child, status: None }
    }

    /// The exit status, if QEMU has ended (reaps it).
    pub fn try_wait(&mut self) -> Option<QemuStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status.into());
            }
        }
        self.status
    }

    /// Kills QEMU if it still runs and waits for it.
    pub fn stop(&mut self) {
        if self.try_wait().is_none() {
            // Fails only if QEMU ended meanwhile; wait() reaps it in both cases.
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status.into());
            }
        }
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::cli::{parse_args, Command};

    fn config(extra: &[&str]) -> ProofConfig {
        let args = ["--name", "t"].iter().chain(extra).map(|s| s.to_string());
        match parse_args(args) {
            Ok(Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        }
    }

    fn joined(config: &ProofConfig, firmware: Option<&Path>) -> String {
        qemu_args(config, Path::new("out/com1.sock"), Path::new("out/com2.sock"), firmware)
            .join(" ")
    }

    #[test]
    fn bios_iso_command_line() {
        let c = config(&["--image", "capos.iso", "--smp", "2"]);
        assert_eq!(
            joined(&c, None),
            "-machine q35 -accel tcg -cpu qemu64 -smp 2 -m 128M -display none -no-reboot \
             -monitor none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -chardev socket,id=com1,path=out/com1.sock,server=on,wait=on,telnet=on -serial chardev:com1 \
             -chardev socket,id=com2,path=out/com2.sock -serial chardev:com2 \
             -cdrom capos.iso"
        );
    }

    #[test]
    fn uefi_raw_disk_command_line() {
        let c = config(&[
            "--image",
            "disk,1.img",
            "--machine",
            "pc",
            "--mem",
            "1G",
            "--qemu-arg",
            "-cpu",
            "--qemu-arg",
            "max",
        ]);
        let line = joined(&c, Some(Path::new("/fw/OVMF.fd")));
        assert!(line.starts_with("-machine pc -accel tcg -smp 1 -m 1G "), "{line}");
        assert!(!line.contains("qemu64"), "{line}");
        assert!(
            line.ends_with("-bios /fw/OVMF.fd -drive file=disk,,1.img,format=raw,if=ide -cpu max"),
            "{line}"
        );
    }

    #[test]
    fn iso_detection() {
        assert!(is_iso(Path::new("a/capos.iso")));
        assert!(is_iso(Path::new("CAPOS.ISO")));
        assert!(!is_iso(Path::new("capos.img")));
        assert!(!is_iso(Path::new("iso")));
    }

    #[test]
    fn bios_needs_no_firmware_file() {
        assert_eq!(firmware_path(Firmware::Bios), Ok(None));
    }

    #[test]
    fn shell_line_quotes_when_needed() {
        let args = vec!["-m".to_string(), "128M".to_string(), "a b".to_string(), "it's".into()];
        assert_eq!(shell_line("qemu", &args), r"qemu -m 128M 'a b' 'it'\''s'");
    }
}
