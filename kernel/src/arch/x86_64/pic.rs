//! The legacy 8259 PICs: remapped away from the exception vectors, then fully
//! masked. Interrupts come from the I/O APIC and local APICs instead.

use x86_64::instructions::port::Port;

/// First vector the (masked) PICs would use; spurious IRQ 7/15 land here + 7/15.
pub const PIC_VECTOR_BASE: u8 = 0xE0;

/// Remaps both PICs to [`PIC_VECTOR_BASE`] and masks every line.
pub fn disable() {
    let mut m_cmd: Port<u8> = Port::new(0x20);
    let mut m_data: Port<u8> = Port::new(0x21);
    let mut s_cmd: Port<u8> = Port::new(0xA0);
    let mut s_data: Port<u8> = Port::new(0xA1);
    // SAFETY: standard PC PIC ports, programmed once at boot before
    // interrupts are enabled.
    unsafe {
        m_cmd.write(0x11);
        s_cmd.write(0x11);
        m_data.write(PIC_VECTOR_BASE);
        s_data.write(PIC_VECTOR_BASE + 8);
        m_data.write(4);
        s_data.write(2);
        m_data.write(1);
        s_data.write(1);
        m_data.write(0xff);
        s_data.write(0xff);
    }
}
