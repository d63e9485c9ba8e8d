//! A simulated serial UPS to point NUT (or a VM's serial port) at.
//!
//! ```text
//! cargo run --example ups-sim -- --protocol megatec|apc [--pty-link PATH | --unix-socket PATH]
//! ```
//!
//! On a pseudo-terminal (the default) it prints the slave's path (and the link's); with
//! `--unix-socket` it listens there, one connection at a time (QEMU:
//! `-chardev socket,id=ups,path=PATH -device isa-serial,chardev=ups`). Lines on standard input
//! change the UPS: `battery`, `line`, `low`, `not-low`, `charge N`, `input V`, `load N`,
//! `runtime MIN`, `show`, `quit`. It runs until `quit`, SIGINT or SIGTERM.

#[allow(dead_code)]
#[path = "../tests/common/sim.rs"]
mod sim;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use sim::{Dialogue, Power, Protocol, PtySim, UnixSim, UpsState};

const USAGE: &str = "usage: ups-sim --protocol megatec|apc [--pty-link PATH | --unix-socket PATH]";

/// Where the UPS is served.
enum Port {
    Pty(Option<PathBuf>),
    Unix(PathBuf),
}

struct Args {
    protocol: Protocol,
    port: Port,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut protocol = None;
    let mut port = Port::Pty(None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--protocol" => protocol = Some(value()?.parse()?),
            "--pty-link" => port = Port::Pty(Some(value()?.into())),
            "--unix-socket" => port = Port::Unix(value()?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument `{arg}`\n{USAGE}")),
        }
    }
    Ok(Args {
        protocol: protocol.ok_or(format!("--protocol is missing\n{USAGE}"))?,
        port,
    })
}

/// Applies one control line to the state; the answer to print.
fn control(line: &str, state: &mut UpsState) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |w: Option<&&str>| -> Result<f64, String> {
        w.ok_or("a number is missing")?
            .parse::<f64>()
            .map_err(|e| e.to_string())
    };
    match words.first().copied() {
        Some("battery") => state.power = Power::Battery,
        Some("line") => state.power = Power::Line,
        Some("low") => state.low_battery = true,
        Some("not-low") => state.low_battery = false,
        Some("charge") => state.charge = number(words.get(1))?,
        Some("input") => state.input_voltage = number(words.get(1))?,
        Some("load") => state.load = number(words.get(1))?,
        Some("runtime") => state.runtime_minutes = number(words.get(1))? as u32,
        Some("show") | None => {}
        Some(w) => return Err(format!("unknown command `{w}`")),
    }
    Ok(format!(
        "{:?}{} charge {} input {} load {} runtime {}",
        state.power,
        if state.low_battery { " low" } else { "" },
        state.charge,
        state.input_voltage,
        state.load,
        state.runtime_minutes
    ))
}

fn run(args: Args) -> Result<(), String> {
    // Blocked here, before any thread starts, so every thread leaves them to `wait` below.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block().map_err(|e| e.to_string())?;

    let ups = args.protocol.simulator();
    let (handle, _pty, _unix) = match args.port {
        Port::Pty(link) => {
            let pty = match link {
                Some(link) => PtySim::start_at(ups, &link),
                None => PtySim::start(ups),
            }
            .map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
            println!("{}", pty.pts().display());
            println!("link: {}", pty.link().display());
            (pty.handle(), Some(pty), None)
        }
        Port::Unix(path) => {
            let unix = UnixSim::listen(ups, &path)
                .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            println!("listening on {}", unix.path().display());
            (unix.handle(), None, Some(unix))
        }
    };

    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "quit" {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGTERM);
                return;
            }
            let mut ups = handle.lock().unwrap_or_else(|e| e.into_inner());
            match control(&line, ups.state_mut()) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("{e}"),
            }
        }
        // Standard input ended without `quit` (e.g. /dev/null): keep serving.
    });

    signals.wait().map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ups-sim: {e}");
            ExitCode::from(2)
        }
    }
}
