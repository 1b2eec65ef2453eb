use proptest::prelude::*;

use super::caps::id;
use super::*;

/// A function's configuration space in memory.
struct Mem(Vec<u8>);

impl Mem {
    fn new(vendor: u16, device: u16) -> Mem {
        let mut m = Mem(vec![0; 4096]);
        m.set16(reg::VENDOR_ID, vendor);
        m.set16(reg::DEVICE_ID, device);
        m
    }

    fn set8(&mut self, off: u16, v: u8) {
        self.0[off as usize] = v;
    }

    fn set16(&mut self, off: u16, v: u16) {
        self.0[off as usize..off as usize + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, off: u16, v: u32) {
        self.0[off as usize..off as usize + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the capability-list status bit and the list's first pointer.
    fn cap_list(&mut self, first: u8) {
        self.set16(reg::STATUS, STATUS_CAP_LIST);
        self.set8(reg::CAP_PTR, first);
    }

    /// Writes one capability head at `at`.
    fn cap(&mut self, at: u8, cap_id: u8, next: u8, control: u16) {
        self.set8(at as u16, cap_id);
        self.set8(at as u16 + 1, next);
        self.set16(at as u16 + 2, control);
    }

    /// A virtio vendor capability (`virtio_pci_cap`, 16 bytes, or 20 for
    /// notify).
    fn virtio_cap(&mut self, at: u8, next: u8, cfg_type: u8, bar: u8, off: u32, len: u32) {
        let cap_len = if cfg_type == 2 { 20 } else { 16 };
        self.cap(at, id::VENDOR, next, cap_len | (cfg_type as u16) << 8);
        self.set8(at as u16 + 4, bar);
        self.set32(at as u16 + 8, off);
        self.set32(at as u16 + 12, len);
        if cfg_type == 2 {
            self.set32(at as u16 + 16, 4);
        }
    }
}

impl ConfigSpace for Mem {
    fn read32(&self, offset: u16) -> u32 {
        let o = offset as usize & !3;
        match self.0.get(o..o + 4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            None => u32::MAX,
        }
    }
}

fn walk(m: &Mem) -> Vec<Result<Capability, CapError>> {
    let h = Header::read(m).expect("function present");
    capabilities(m, &h).collect()
}

#[test]
fn endpoint_header() {
    let mut m = Mem::new(0x1b36, 0x0010);
    m.set16(reg::COMMAND, command::MEMORY | command::BUS_MASTER);
    m.set32(reg::CLASS_REVISION, 0x0108_0202);
    m.set8(reg::HEADER_TYPE, 0x80);
    m.set32(reg::SUBSYSTEM, 0x1100_1af4);
    m.set16(reg::INTERRUPT, 0x010b);
    let h = Header::read(&m).unwrap();
    assert_eq!((h.vendor_id, h.device_id), (0x1b36, 0x0010));
    assert_eq!(h.command, command::MEMORY | command::BUS_MASTER);
    assert_eq!((h.class, h.subclass, h.prog_if, h.revision), (0x01, 0x08, 0x02, 0x02));
    assert_eq!(h.class_code(), 0x010802);
    assert_eq!(h.header_type, 0);
    assert!(h.multifunction);
    assert_eq!(h.kind, HeaderKind::Endpoint { subsystem_vendor: 0x1af4, subsystem: 0x1100 });
    assert_eq!((h.interrupt_pin, h.interrupt_line), (1, 0x0b));
    assert_eq!(h.bar_count(), 6);
    assert_eq!(h.bridge(), None);
    assert!(!h.is_virtio());
    assert_eq!(h.capability_pointer_offset(), None);
}

#[test]
fn no_function_answers() {
    assert_eq!(Header::read(&Mem::new(0xffff, 0xffff)), None);
    assert_eq!(Header::read(&Mem::new(0x0000, 0x1234)), None);
    struct Absent;
    impl ConfigSpace for Absent {
        fn read32(&self, _: u16) -> u32 {
            u32::MAX
        }
    }
    assert_eq!(Header::read(&Absent), None);
}

#[test]
fn bridge_header() {
    let mut m = Mem::new(0x1b36, 0x000c);
    m.set32(reg::CLASS_REVISION, 0x0604_0000);
    m.set8(reg::HEADER_TYPE, 0x01);
    m.set32(reg::BRIDGE_BUSES, 0x0003_0100);
    m.cap_list(0x40);
    m.cap(0x40, id::PCI_EXPRESS, 0, 0x0042);
    let h = Header::read(&m).unwrap();
    let b = h.bridge().unwrap();
    assert_eq!(b, BridgeBuses { primary: 0, secondary: 1, subordinate: 3 });
    assert!(b.is_configured());
    assert_eq!(b.to_string(), "buses 00 -> 01..03");
    assert!(!h.multifunction);
    assert_eq!(h.bar_count(), 2);
    assert_eq!(h.capability_pointer_offset(), Some(reg::CAP_PTR));
    let caps = walk(&m);
    assert_eq!(
        caps,
        [Ok(Capability::PciExpress { offset: 0x40, version: 2, port_type: PortType(4) })]
    );
    assert_eq!(caps[0].unwrap().to_string(), "pcie(v2 root-port)");
    // Firmware left the bridge unnumbered.
    assert!(!BridgeBuses { primary: 0, secondary: 0, subordinate: 0 }.is_configured());
    assert!(!BridgeBuses { primary: 2, secondary: 1, subordinate: 1 }.is_configured());
    assert!(!BridgeBuses { primary: 0, secondary: 3, subordinate: 2 }.is_configured());
}

#[test]
fn cardbus_and_unknown_header_types() {
    let mut m = Mem::new(0x104c, 0xac56);
    m.set8(reg::HEADER_TYPE, 0x02);
    m.set16(reg::STATUS, STATUS_CAP_LIST);
    m.set8(reg::CARDBUS_CAP_PTR, 0x80);
    m.cap(0x80, id::POWER_MANAGEMENT, 0, 0x0002);
    let h = Header::read(&m).unwrap();
    assert_eq!(h.kind, HeaderKind::CardBus);
    assert_eq!(h.bar_count(), 0);
    assert_eq!(walk(&m), [Ok(Capability::PowerManagement { offset: 0x80, version: 2 })]);

    m.set8(reg::HEADER_TYPE, 0x7f);
    let h = Header::read(&m).unwrap();
    assert_eq!(h.kind, HeaderKind::Unknown(0x7f));
    assert_eq!(h.capability_pointer_offset(), None);
    assert!(walk(&m).is_empty());
}

#[test]
fn addresses() {
    let a = Address::new(0, 0x12, 3, 1).unwrap();
    assert_eq!(a.to_string(), "12:03.1");
    assert_eq!(Address::new(1, 0, 0x1f, 7).unwrap().to_string(), "0001:00:1f.7");
    assert_eq!(Address::new(0, 0, 32, 0), None);
    assert_eq!(Address::new(0, 0, 0, 8), None);
    assert_eq!(a.ecam_offset(0), Some(0x12 << 20 | 3 << 15 | 1 << 12));
    assert_eq!(a.ecam_offset(0x10), Some(2 << 20 | 3 << 15 | 1 << 12));
    assert_eq!(a.ecam_offset(0x13), None);
    assert_eq!(a.legacy_port_address(0x3d), Some(0x8012_193c));
    assert_eq!(a.legacy_port_address(0x100), None);
    assert_eq!(Address::new(1, 0, 0, 0).unwrap().legacy_port_address(0), None);
}

#[test]
fn read_widths() {
    let mut m = Mem::new(0x8086, 0x29c0);
    m.set32(0x40, 0x4433_2211);
    assert_eq!(m.read16(0x42), 0x4433);
    assert_eq!(m.read16(0x40), 0x2211);
    assert_eq!(m.read8(0x43), 0x44);
    assert_eq!(m.read8(0x41), 0x22);
}

fn bar(index: u8, kind: BarKind, prefetchable: bool, address: u64, size: u64) -> BarSlot {
    BarSlot::Bar(Bar { index, kind, prefetchable, address, size })
}

#[test]
fn bars_of_a_transitional_virtio_device() {
    let raw = [0xc041, 0xfebd_1000, 0, 0, 0xfe00_000c, 0];
    let probe = [0xffff_ffe1, 0xffff_f000, 0, 0, 0xffff_c00c, 0xffff_ffff];
    let slots = decode_bars(&raw, &probe);
    assert_eq!(
        slots,
        [
            bar(0, BarKind::Io, false, 0xc040, 0x20),
            bar(1, BarKind::Mem32, false, 0xfebd_1000, 0x1000),
            BarSlot::Unused,
            BarSlot::Unused,
            bar(4, BarKind::Mem64, true, 0xfe00_0000, 0x4000),
            BarSlot::Upper,
        ]
    );
    let text: Vec<String> = slots
        .iter()
        .filter_map(|s| match s {
            BarSlot::Bar(b) => Some(b.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        text,
        ["0:io 0x20 at 0xc040", "1:mem32 0x1000 at 0xfebd1000", "4:mem64 pf 0x4000 at 0xfe000000"]
    );
}

#[test]
fn bar_kinds_and_sizes() {
    // An I/O BAR whose upper 16 bits are not implemented.
    assert_eq!(
        decode_bars(&[0x1001], &[0x0000_ff01])[0],
        bar(0, BarKind::Io, false, 0x1000, 0x100)
    );
    // 32-bit prefetchable memory; the old "below 1 MiB" type reads as 32-bit.
    assert_eq!(
        decode_bars(&[0xe000_0008], &[0xf000_0008])[0],
        bar(0, BarKind::Mem32, true, 0xe000_0000, 0x1000_0000)
    );
    assert_eq!(
        decode_bars(&[0x000d_0002], &[0xffff_0002])[0],
        bar(0, BarKind::Mem32, false, 0xd_0000, 0x1_0000)
    );
    // A 64-bit BAR above 4 GiB, 8 GiB large.
    let s = decode_bars(&[0x0000_0004, 0x0000_0008], &[0x0000_0004, 0xffff_fffe]);
    assert_eq!(s[0], bar(0, BarKind::Mem64, false, 0x8_0000_0000, 0x2_0000_0000));
    assert_eq!(s[1], BarSlot::Upper);
    // The whole 32-bit space.
    assert_eq!(decode_bars(&[0], &[0x8000_0000])[0], bar(0, BarKind::Mem32, false, 0, 1 << 31));
}

#[test]
fn unimplemented_and_broken_bars() {
    assert_eq!(decode_bars(&[0; 6], &[0; 6]), [BarSlot::Unused; 6]);
    // A 64-bit BAR reading back no address bits still owns its upper half.
    assert_eq!(
        decode_bars(&[4, 0], &[4, 0]),
        [
            BarSlot::Unused,
            BarSlot::Upper,
            BarSlot::Unused,
            BarSlot::Unused,
            BarSlot::Unused,
            BarSlot::Unused
        ]
    );
    let s = decode_bars(&[0, 0, 0, 0, 0, 0xfe00_0004], &[0, 0, 0, 0, 0, 0xffff_c004]);
    assert_eq!(s[5], BarSlot::Invalid(BarError::Mem64InLastSlot { index: 5 }));
    // A bridge has two registers: a 64-bit BAR in the second is broken.
    let s = decode_bars(&[0, 0xfe00_0004], &[0, 0xffff_c004]);
    assert_eq!(s[1], BarSlot::Invalid(BarError::Mem64InLastSlot { index: 1 }));
    let s = decode_bars(&[6], &[0xffff_f006]);
    assert_eq!(s[0], BarSlot::Invalid(BarError::ReservedType { index: 0 }));
    assert_eq!(BarError::ReservedType { index: 0 }.to_string(), "0:reserved memory type 11");
    // Mismatched lengths and more than six registers.
    assert_eq!(decode_bars(&[0xc001, 0xc101], &[0xffff_fff1])[1], BarSlot::Unused);
    assert_eq!(decode_bars(&[1; 8], &[0xffff_fff1; 8])[5], bar(5, BarKind::Io, false, 0, 0x10));
}

/// The capability list of a transitional virtio-net device on QEMU.
fn virtio_net() -> Mem {
    let mut m = Mem::new(VIRTIO_VENDOR, 0x1000);
    m.set32(reg::CLASS_REVISION, 0x0200_0000);
    m.cap_list(0x98);
    m.cap(0x98, id::MSIX, 0x84, 0x0002);
    m.set32(0x98 + 4, 0x0000_0001);
    m.set32(0x98 + 8, 0x0000_0801);
    m.virtio_cap(0x84, 0x70, 5, 0, 0, 0);
    m.virtio_cap(0x70, 0x60, 2, 4, 0x3000, 0x1000);
    m.virtio_cap(0x60, 0x50, 4, 4, 0x2000, 0x1000);
    m.virtio_cap(0x50, 0x40, 3, 4, 0x1000, 0x1000);
    m.virtio_cap(0x40, 0x00, 1, 4, 0x0000, 0x1000);
    m
}

#[test]
fn virtio_capabilities() {
    let m = virtio_net();
    let h = Header::read(&m).unwrap();
    assert!(h.is_virtio());
    let caps: Vec<Capability> = walk(&m).into_iter().map(Result::unwrap).collect();
    assert_eq!(caps.len(), 6);
    assert_eq!(
        caps[0],
        Capability::MsiX {
            offset: 0x98,
            table_size: 3,
            table: BarOffset { bar: 1, offset: 0 },
            pba: BarOffset { bar: 1, offset: 0x800 },
            enabled: false,
        }
    );
    assert_eq!(
        caps[2],
        Capability::Vendor {
            offset: 0x70,
            len: 20,
            virtio: Some(VirtioCap {
                cfg_type: VirtioCfgType::Notify,
                bar: 4,
                id: 0,
                offset: 0x3000,
                length: 0x1000,
                notify_off_multiplier: Some(4),
            }),
        }
    );
    let text: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        text,
        [
            "msix(3 table 1+0x0 pba 1+0x800)",
            "virtio(pci-cfg 0:0x0+0x0)",
            "virtio(notify 4:0x3000+0x1000 x4)",
            "virtio(device 4:0x2000+0x1000)",
            "virtio(isr 4:0x1000+0x1000)",
            "virtio(common 4:0x0+0x1000)",
        ]
    );
    assert_eq!(
        caps.iter().map(Capability::offset).collect::<Vec<_>>(),
        [0x98, 0x84, 0x70, 0x60, 0x50, 0x40]
    );
}

#[test]
fn vendor_capabilities_of_other_devices_are_not_virtio() {
    let mut m = virtio_net();
    m.set16(reg::VENDOR_ID, 0x8086);
    let caps = walk(&m);
    assert_eq!(caps[1], Ok(Capability::Vendor { offset: 0x84, len: 16, virtio: None }));
    assert_eq!(caps[1].unwrap().to_string(), "vendor(16)");
    // virtio ids outside 0x1000..=0x107f are not virtio devices either.
    let mut m = virtio_net();
    m.set16(reg::DEVICE_ID, 0x1100);
    assert_eq!(walk(&m)[1], Ok(Capability::Vendor { offset: 0x84, len: 16, virtio: None }));
}

#[test]
fn virtio_shared_memory_and_short_vendor_entries() {
    let mut m = Mem::new(VIRTIO_VENDOR, 0x105a);
    m.cap_list(0x40);
    m.cap(0x40, id::VENDOR, 0x60, 24 | 8 << 8);
    m.set8(0x44, 2);
    m.set8(0x45, 1);
    m.set32(0x48, 0x1000);
    m.set32(0x4c, 0);
    m.set32(0x50, 0x1);
    m.set32(0x54, 0x2);
    // A notify structure with the length of a plain one.
    m.cap(0x60, id::VENDOR, 0x70, 16 | 2 << 8);
    // A vendor entry whose length cannot even hold its head.
    m.cap(0x70, id::VENDOR, 0x80, 2);
    // One running past the end of the space.
    m.cap(0x80, id::VENDOR, 0xfc, 0x90);
    m.cap(0xfc, id::VENDOR, 0, 16 | 1 << 8);
    let caps = walk(&m);
    let shm = VirtioCap {
        cfg_type: VirtioCfgType::SharedMemory,
        bar: 2,
        id: 1,
        offset: 0x1_0000_1000,
        length: 0x2_0000_0000,
        notify_off_multiplier: None,
    };
    assert_eq!(
        caps,
        [
            Ok(Capability::Vendor { offset: 0x40, len: 24, virtio: Some(shm) }),
            Err(CapError::Truncated { offset: 0x60, id: id::VENDOR, needs: 20 }),
            Err(CapError::Truncated { offset: 0x70, id: id::VENDOR, needs: 3 }),
            Err(CapError::Truncated { offset: 0x80, id: id::VENDOR, needs: 0x90 }),
            Err(CapError::Truncated { offset: 0xfc, id: id::VENDOR, needs: 16 }),
        ]
    );
    assert_eq!(caps[0].unwrap().to_string(), "virtio(shm 1 2:0x100001000+0x200000000)");
    assert_eq!(caps[1].unwrap_err().to_string(), "entry 0x09 at 0x60 needs 20 bytes");
    assert!(!caps[1].unwrap_err().ends_walk());
}

#[test]
fn msi_and_pcie_capabilities() {
    let mut m = Mem::new(0x8086, 0x10d3);
    m.cap_list(0xc8);
    m.cap(0xc8, id::POWER_MANAGEMENT, 0xd0, 0x0023);
    m.cap(0xd0, id::MSI, 0xe0, 0x0081 | 2 << 1);
    m.cap(0xe0, id::PCI_EXPRESS, 0xa0, 0x0092);
    m.cap(0xa0, id::MSI, 0xb8, 0x0100 | 7 << 1);
    m.cap(0xb8, 0x0d, 0, 0);
    let caps: Vec<Capability> = walk(&m).into_iter().map(Result::unwrap).collect();
    assert_eq!(
        caps,
        [
            Capability::PowerManagement { offset: 0xc8, version: 3 },
            Capability::Msi {
                offset: 0xd0,
                vectors: 4,
                addr64: true,
                per_vector_mask: false,
                enabled: true
            },
            Capability::PciExpress { offset: 0xe0, version: 2, port_type: PortType(9) },
            // A reserved multiple-message value is read as the most (32).
            Capability::Msi {
                offset: 0xa0,
                vectors: 32,
                addr64: false,
                per_vector_mask: true,
                enabled: false
            },
            Capability::Other { offset: 0xb8, id: 0x0d },
        ]
    );
    let text: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    assert_eq!(text, ["pm", "msi(4 64bit on)", "pcie(v2 integrated)", "msi(32 mask)", "cap(0x0d)"]);
}

#[test]
fn entries_near_the_end_of_the_space() {
    let mut m = Mem::new(0x8086, 0x10d3);
    m.cap_list(0xf8);
    // MSI-X needs 12 bytes, 8 are left; the walk goes on to the next entry.
    m.cap(0xf8, id::MSIX, 0xf0, 0);
    // 64-bit MSI with masking needs 24 bytes, 16 are left.
    m.cap(0xf0, id::MSI, 0xfc, 0x0180);
    m.cap(0xfc, id::PCI_EXPRESS, 0, 0x0002);
    assert_eq!(
        walk(&m),
        [
            Err(CapError::Truncated { offset: 0xf8, id: id::MSIX, needs: 12 }),
            Err(CapError::Truncated { offset: 0xf0, id: id::MSI, needs: 24 }),
            Ok(Capability::PciExpress { offset: 0xfc, version: 2, port_type: PortType(0) }),
        ]
    );
}

#[test]
fn malformed_lists_end_with_a_named_error() {
    // A list pointing at itself.
    let mut m = Mem::new(0x8086, 0x1234);
    m.cap_list(0x40);
    m.cap(0x40, 0x0d, 0x40, 0);
    assert_eq!(
        walk(&m),
        [Ok(Capability::Other { offset: 0x40, id: 0x0d }), Err(CapError::Loop { ptr: 0x40 })]
    );
    // A longer loop.
    m.cap(0x40, 0x0d, 0x80, 0);
    m.cap(0x80, 0x0d, 0x60, 0);
    m.cap(0x60, 0x0d, 0x80, 0);
    let caps = walk(&m);
    assert_eq!(caps.len(), 4);
    assert_eq!(caps[3], Err(CapError::Loop { ptr: 0x80 }));
    assert_eq!(caps[3].unwrap_err().to_string(), "loop back to 0x80");
    // Into the header, from the start and from an entry.
    m.cap_list(0x20);
    assert_eq!(walk(&m), [Err(CapError::BelowHeader { ptr: 0x20 })]);
    m.cap_list(0x40);
    m.cap(0x40, 0x0d, 0x3c, 0);
    assert_eq!(walk(&m)[1], Err(CapError::BelowHeader { ptr: 0x3c }));
    // Unaligned.
    m.cap(0x40, 0x0d, 0x41, 0);
    assert_eq!(walk(&m)[1], Err(CapError::Unaligned { ptr: 0x41 }));
    m.cap_list(0xff);
    assert_eq!(walk(&m), [Err(CapError::Unaligned { ptr: 0xff })]);
    assert!(CapError::Unaligned { ptr: 0xff }.ends_walk());
    // The status bit off: no list, whatever the pointer says.
    m.set16(reg::STATUS, 0);
    assert!(walk(&m).is_empty());
}

#[test]
fn a_full_list_is_48_entries() {
    let mut m = Mem::new(0x8086, 0x1234);
    m.cap_list(0x40);
    for at in (0x40..0x100).step_by(4) {
        let next = if at == 0xfc { 0 } else { at as u8 + 4 };
        m.cap(at as u8, 0x0d, next, 0);
    }
    let caps = walk(&m);
    assert_eq!(caps.len(), MAX_CAPABILITIES);
    assert!(caps.iter().all(Result::is_ok));
    // And the last one pointing back to the first is a loop, not a 49th.
    m.cap(0xfc, 0x0d, 0x40, 0);
    let caps = walk(&m);
    assert_eq!(caps.len(), MAX_CAPABILITIES + 1);
    assert_eq!(caps[MAX_CAPABILITIES], Err(CapError::Loop { ptr: 0x40 }));
}

proptest! {
    #[test]
    fn any_config_space_walks_to_an_end(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let mut m = Mem(bytes);
        m.0.resize(4096, 0);
        if let Some(h) = Header::read(&m) {
            let caps: Vec<_> = capabilities(&m, &h).collect();
            prop_assert!(caps.len() <= MAX_CAPABILITIES + 1);
            for (i, c) in caps.iter().enumerate() {
                if let Err(e) = c {
                    if e.ends_walk() {
                        prop_assert_eq!(i, caps.len() - 1);
                    }
                }
                let _ = c.map(|c| c.to_string()).map_err(|e| e.to_string());
            }
        }
    }

    #[test]
    fn bars_decode_to_powers_of_two(raw in any::<[u32; 6]>(), probe in any::<[u32; 6]>()) {
        let slots = decode_bars(&raw, &probe);
        let mut i = 0;
        while i < MAX_BARS {
            match slots[i] {
                BarSlot::Bar(b) => {
                    prop_assert_eq!(b.index as usize, i);
                    prop_assert!(b.size.is_power_of_two());
                    let least = if b.kind == BarKind::Io { 4 } else { 16 };
                    prop_assert!(b.size >= least);
                    if b.kind == BarKind::Mem64 {
                        prop_assert_eq!(slots[i + 1], BarSlot::Upper);
                        i += 1;
                    }
                }
                BarSlot::Upper => prop_assert!(i > 0 && raw[i - 1] & 0b111 == 0b100),
                BarSlot::Unused | BarSlot::Invalid(_) => {}
            }
            i += 1;
        }
    }
}

#[test]
fn summary_lines() {
    let m = virtio_net();
    let h = Header::read(&m).unwrap();
    let bars = decode_bars(
        &[0xc041, 0xfebd_1000, 0, 0, 0xfe00_000c, 0],
        &[0xffff_ffe1, 0xffff_f000, 0, 0, 0xffff_c00c, 0xffff_ffff],
    );
    let caps: Vec<_> = capabilities(&m, &h).take(2).collect();
    let addr = Address::new(0, 0, 4, 0).unwrap();
    assert_eq!(
        Summary { addr, header: &h, bars: &bars, caps: &caps }.to_string(),
        "00:04.0 1af4:1000 class 020000 bars [0:io 0x20 at 0xc040, 1:mem32 0x1000 at 0xfebd1000, \
         4:mem64 pf 0x4000 at 0xfe000000] caps [msix(3 table 1+0x0 pba 1+0x800) virtio(pci-cfg 0:0x0+0x0)]"
    );

    let mut m = Mem::new(0x1b36, 0x000c);
    m.set32(reg::CLASS_REVISION, 0x0604_0000);
    m.set8(reg::HEADER_TYPE, 0x01);
    m.set32(reg::BRIDGE_BUSES, 0x0001_0100);
    m.cap_list(0x40);
    m.cap(0x40, id::PCI_EXPRESS, 0x40, 0x0042);
    let h = Header::read(&m).unwrap();
    let caps: Vec<_> = capabilities(&m, &h).collect();
    let bars = decode_bars(&[0, 0xfe00_0004], &[0, 0xffff_c004]);
    let addr = Address::new(0, 0, 7, 0).unwrap();
    assert_eq!(
        Summary { addr, header: &h, bars: &bars, caps: &caps }.to_string(),
        "00:07.0 1b36:000c class 060400 buses 00 -> 01..01 bars [error(1:64-bit BAR in the last \
         register)] caps [pcie(v2 root-port) error(loop back to 0x40)]"
    );
    let none: [BarSlot; 0] = [];
    assert_eq!(
        Summary {
            addr,
            header: &Header::read(&Mem::new(0x8086, 0x29c0)).unwrap(),
            bars: &none,
            caps: &[]
        }
        .to_string(),
        "00:07.0 8086:29c0 class 000000 bars [] caps []"
    );
}
