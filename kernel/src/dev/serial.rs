//! 16550 UARTs: COM1 is the operator console, COM2 the full debug log.
//!
//! Output is polled (each byte waits for the transmitter). COM1 input is
//! interrupt driven: [`handle_com1_interrupt`] drains the receiver into a
//! bounded buffer that the console reads.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use uart_16550::SerialPort;
use x86_64::instructions::port::Port;

use crate::sync::IrqLock;

const COM1_BASE: u16 = 0x3F8;
const COM2_BASE: u16 = 0x2F8;

/// A serial port that turns `\n` into `\r\n`, on the `uart_16550` crate.
///
/// The crate programs the UART ([`init`]) and sends COM2's bytes. COM1's
/// bytes are sent by hand: the crate's `send_raw` polls the line status
/// register and drops what it read, and reading LSR clears its break bit,
/// so a break (Ctrl-C on a serial console) arriving while COM1 waits for its
/// transmitter would be lost. The crate offers no way to see LSR.
pub struct Uart {
    port: SerialPort,
    base: u16,
    /// The last byte sent ended a line (or nothing was sent yet).
    at_line_start: bool,
    /// Pid of the program whose `Console.write` left the current line open
    /// (0: none, or the kernel's or the terminal's line).
    line_owner: u64,
}

/// Transmitter holding register empty.
const LSR_THR_EMPTY: u8 = 0x20;

/// A break seen on COM1's line status while sending, not yet turned into
/// input by [`handle_com1_interrupt`].
static COM1_BREAK: AtomicBool = AtomicBool::new(false);

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.send(b'\r');
            }
            self.send(b);
        }
        Ok(())
    }
}

impl Uart {
    const fn new(port: SerialPort, base: u16) -> Self {
        Self { port, base, at_line_start: true, line_owner: 0 }
    }

    /// Whether the next byte starts a new line on this port.
    pub fn at_line_start(&self) -> bool {
        self.at_line_start
    }

    /// The program whose console text left the current line open (0: none).
    pub fn line_owner(&self) -> u64 {
        self.line_owner
    }

    /// Records who left the current line open (0: nobody).
    pub fn set_line_owner(&mut self, pid: u64) {
        self.line_owner = if self.at_line_start { 0 } else { pid };
    }

    /// Ends the current line if a program's console text left it open, so
    /// that what follows starts a line of its own.
    pub fn end_program_line(&mut self) {
        if !self.at_line_start && self.line_owner != 0 {
            self.write_bytes(b"\r\n");
        }
    }

    /// Writes raw bytes with no translation.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.send(b);
        }
    }

    fn send(&mut self, byte: u8) {
        self.at_line_start = byte == b'\n';
        if self.at_line_start {
            self.line_owner = 0;
        }
        if self.base != COM1_BASE {
            self.port.send_raw(byte);
            return;
        }
        let mut lsr: Port<u8> = Port::new(self.base + 5);
        let mut thr: Port<u8> = Port::new(self.base);
        loop {
            // SAFETY: the line status register of this UART, read with its
            // lock held (`&mut self`).
            let status = unsafe { lsr.read() };
            if status & LSR_BREAK != 0 {
                COM1_BREAK.store(true, Ordering::Release);
            }
            if status & LSR_THR_EMPTY != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        // SAFETY: the transmit register of this UART, which is empty.
        unsafe { thr.write(byte) };
    }
}

// SAFETY: the ports are the standard PC COM1/COM2 I/O ranges; nothing else in
// the kernel touches them, and every access goes through these locks.
pub static COM1: IrqLock<Uart> =
    IrqLock::new(Uart::new(unsafe { SerialPort::new(COM1_BASE) }, COM1_BASE));
// SAFETY: as for COM1.
pub static COM2: IrqLock<Uart> =
    IrqLock::new(Uart::new(unsafe { SerialPort::new(COM2_BASE) }, COM2_BASE));

/// Programs both UARTs (115200 8N1, FIFOs on). COM1 receive interrupts are
/// enabled in the UART; they reach the CPU once the I/O APIC routes IRQ 4.
pub fn init() {
    for uart in [&COM1, &COM2] {
        let mut uart = uart.lock();
        // 8N1, FIFOs, DTR/RTS/OUT2 and the receive interrupt, at 38400.
        uart.port.init();
        set_divisor(uart.base, 1);
    }
}

/// Sets the baud rate divisor (115200 / `divisor` bps). The crate fixes
/// 38400 (divisor 3); capOS runs its consoles at 115200.
fn set_divisor(base: u16, divisor: u16) {
    let mut lcr: Port<u8> = Port::new(base + 3);
    let mut dll: Port<u8> = Port::new(base);
    let mut dlm: Port<u8> = Port::new(base + 1);
    // SAFETY: the line control and divisor latch registers of a UART whose
    // lock the caller holds; DLAB is set only for the two divisor writes and
    // the line control (8N1) restored after them.
    unsafe {
        let line = lcr.read();
        lcr.write(line | 0x80);
        dll.write(divisor as u8);
        dlm.write((divisor >> 8) as u8);
        lcr.write(line & !0x80);
    }
}

/// Bounded COM1 receive buffer.
pub struct RxBuffer {
    buf: [u8; 1024],
    head: usize,
    len: usize,
    /// Bytes dropped because the buffer was full.
    pub dropped: u64,
}

impl RxBuffer {
    const fn new() -> Self {
        Self { buf: [0; 1024], head: 0, len: 0, dropped: 0 }
    }

    fn push(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.dropped += 1;
            return;
        }
        let tail = (self.head + self.len) % self.buf.len();
        self.buf[tail] = b;
        self.len += 1;
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(b)
    }
}

/// Bytes received on COM1 and not yet consumed.
pub static COM1_RX: IrqLock<RxBuffer> = IrqLock::new(RxBuffer::new());

/// Line status register bits.
const LSR_DATA_READY: u8 = 0x01;
const LSR_BREAK: u8 = 0x10;

/// COM1 interrupt: move every byte the UART holds into [`COM1_RX`]. A break
/// condition on the line becomes Ctrl-C (0x03), as on a serial console: it
/// cancels the line being typed. A UART reports a break with a NUL byte in
/// its FIFO and the BI status bit; an emulated one may raise BI while older
/// bytes are still queued, so the Ctrl-C takes the place of the first NUL
/// after BI, or follows the bytes read when no NUL comes.
///
/// The receiver is read by hand, not with the crate's `try_receive`, for the
/// same reason as sending: the crate reads LSR and drops its break bit.
pub fn handle_com1_interrupt() {
    let _port = COM1.lock();
    let mut rx = COM1_RX.lock();
    let mut lsr: Port<u8> = Port::new(COM1_BASE + 5);
    let mut rbr: Port<u8> = Port::new(COM1_BASE);
    let mut in_break = COM1_BREAK.swap(false, Ordering::AcqRel);
    loop {
        // SAFETY: the line status and receive registers of COM1, read with
        // the COM1 lock held (nothing else touches the port meanwhile).
        let status = unsafe { lsr.read() };
        in_break |= status & LSR_BREAK != 0;
        if status & LSR_DATA_READY == 0 {
            break;
        }
        // SAFETY: as above; reading RBR takes the byte the UART holds.
        let byte = unsafe { rbr.read() };
        if in_break && byte == 0 {
            rx.push(0x03);
            in_break = false;
        } else {
            rx.push(byte);
        }
    }
    if in_break {
        rx.push(0x03);
    }
}

/// Writes to a port without taking its lock. Only for the panic and fatal
/// exception paths, after the other CPUs were stopped: a lock held by the
/// interrupted code must not stop the report.
pub struct EmergencyWriter(SerialPort);

impl EmergencyWriter {
    /// COM1 (`false`) or COM2 (`true`).
    pub fn new(debug_port: bool) -> Self {
        let base = if debug_port { COM2_BASE } else { COM1_BASE };
        // SAFETY: standard COM port; concurrent writers at worst interleave
        // bytes, which is acceptable on the fatal-error path.
        Self(unsafe { SerialPort::new(base) })
    }
}

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.send_raw(b'\r');
            }
            self.0.send_raw(b);
        }
        Ok(())
    }
}
