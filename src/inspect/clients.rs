//! This machine as the NUT server of the LAN: add a client (a secondary account, LISTEN on the
//! LAN address, MODE=netserver), remove one, list them with what upsd says is logged in. One
//! path for the CLI and the page: the edit is [`crate::nut::edit`]'s (pure), the change
//! [`crate::manage`]'s (validated, previewed, written with a backup, applied and verified, or
//! handed to the root side), as [`super::adopt`] makes them. After an applied change the new
//! account logs in at the LAN address, or the change is undone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::adopt::{new_password, proposal, read_files, ChangeError, Make};
use super::plan::Plan;
use crate::manage::{self, Mode, Outcome};
use crate::nut::edit::{self, ClientAccount, ClientRequest, Preset};
use crate::nut::target::Target;
use crate::nut::upsd_conf::DEFAULT_PORT;
use crate::nut::{UPSD_CONF, UPSMON_CONF, UPS_CONF};
use crate::upsd::client::{Client, Options};
use crate::upsd::proto::LoggedIn;
use crate::upsd::tls::{TlsMode, TlsOptions};

/// UniFi's NUT client is reported to restart when more than this many clients are connected
/// to the upsd it watches (issue 15; no public source was found for it).
pub const UNIFI_MAX_CLIENTS: usize = 3;

/// How long the new account has to log in after the change was applied and verified.
const LOGIN_WITHIN: Duration = Duration::from_secs(15);

/// What a client was given, and what to enter on it.
#[derive(Debug)]
pub struct Added {
    pub outcome: Outcome,
    pub name: String,
    pub preset: Preset,
    /// Where the client connects: the LAN address and upsd's port there.
    pub host: String,
    pub port: u16,
    pub ups: String,
    pub user: String,
    /// The account's password: shown once to the person who added the client, never logged.
    pub password: String,
    pub warnings: Vec<String>,
    /// What the live login saw (after an applied change).
    pub login: Option<String>,
}

impl Added {
    /// `MONITOR ups@HOST:PORT 1 user pass secondary`, for upsmon.conf on the client.
    pub fn monitor_line(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let port = if self.port == DEFAULT_PORT {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        format!(
            "MONITOR {}@{host}{port} 1 {} {} secondary",
            self.ups, self.user, self.password
        )
    }

    /// What to enter on the client, field by field, in the client's own words.
    pub fn instructions(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("where", where_on(self.preset).to_string()),
            ("host", self.host.clone()),
            ("port", self.port.to_string()),
            ("UPS name", self.ups.clone()),
            ("user", self.user.clone()),
            ("password", self.password.clone()),
        ];
        if matches!(
            self.preset,
            Preset::Upsmon | Preset::Proxmox | Preset::Truenas
        ) {
            out.push(("MONITOR line", self.monitor_line()));
        }
        out
    }
}

/// Where on the client the settings go.
fn where_on(p: Preset) -> &'static str {
    match p {
        Preset::Synology => {
            "DSM: Control Panel > Hardware & Power > UPS: enable UPS support, UPS type \"Synology UPS server\", the network UPS server's IP address (DSM sends monuser/secret and asks for the UPS named `ups` by itself)"
        }
        Preset::Truenas => {
            "TrueNAS: System Settings > Services > UPS: UPS mode secondary (slave), remote host, remote port, identifier (the UPS name), monitor user and password"
        }
        Preset::Proxmox => {
            "on the Proxmox VE host: `apt install nut-client`, MODE=netclient in /etc/nut/nut.conf, the MONITOR line in /etc/nut/upsmon.conf, then `systemctl restart nut-monitor`"
        }
        Preset::HomeAssistant => {
            "Home Assistant: Settings > Devices & services > Add integration > Network UPS Tools (NUT): host, port, username, password"
        }
        Preset::Upsmon => {
            "any NUT upsmon: MODE=netclient in nut.conf, the MONITOR line in upsmon.conf"
        }
    }
}

/// This machine's LAN address from `/proc/net/fib_trie` and `/proc/net/if_inet6` text: the
/// first local IPv4 address that is neither loopback nor link-local, else the first global
/// IPv6 address.
pub fn lan_address(fib_trie: &str, if_inet6: &str) -> Option<IpAddr> {
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last
                .take()
                .filter(|a| !a.is_loopback() && !a.is_link_local())
            {
                return Some(IpAddr::V4(a));
            }
        }
    }
    if_inet6.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(scope)) = (f.first(), f.get(3)) else {
            return None;
        };
        let bits = u128::from_str_radix(hex, 16)
            .ok()
            .filter(|_| hex.len() == 32)?;
        (*scope == "00").then(|| IpAddr::V6(Ipv6Addr::from(bits)))
    })
}

/// **The edge**: this machine's LAN address, from `/proc/net`.
pub fn this_machines_address() -> Option<IpAddr> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    lan_address(&read("/proc/net/fib_trie"), &read("/proc/net/if_inet6"))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start the upsd client: {e}"))
}

fn options(allow_plaintext: bool) -> Options {
    Options {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        retry_count: 0,
        retry_delay: Duration::from_millis(200),
        tls: TlsOptions {
            mode: TlsMode::Off,
            // The password goes to one of this machine's own addresses.
            allow_plaintext_password: allow_plaintext,
            ..TlsOptions::default()
        },
    }
}

/// Logs in as the new account at the LAN address, within [`LOGIN_WITHIN`].
fn login(host: &str, port: u16, ups: &str, user: &str, password: &str) -> Result<String, String> {
    let rt = runtime()?;
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + LOGIN_WITHIN;
        let target = Target {
            ups: None,
            host: host.to_string(),
            port,
        };
        let mut client = Client::new(target, options(true));
        client.set_deadline(Some(deadline));
        loop {
            match crate::upsd::diagnose::credentials(&mut client, ups, user, password, true).await {
                Ok(_) => return Ok(format!("`{user}` logs in to [{ups}] at {host}:{port}")),
                Err(e) if tokio::time::Instant::now() + Duration::from_millis(300) < deadline => {
                    log::debug!("{e}; trying again");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "the new account `{user}` cannot log in to [{ups}] at {host}:{port}: {}",
                        e.message()
                    ))
                }
            }
        }
    })
}

/// Adds a client: the recipe's change made through `make`, then the login checked live (an
/// applied change whose account cannot log in is undone). `listen`: the LAN address, else this
/// machine's.
pub fn add(
    plan: &Plan,
    name: &str,
    preset: Preset,
    ups: Option<&str>,
    listen: Option<&str>,
    mode: Mode,
    make: &mut Make,
) -> Result<Added, ChangeError> {
    let listen = match listen {
        Some(l) => l
            .parse::<IpAddr>()
            .map_err(|_| ChangeError::Usage(format!("{l}: not an IP address of this machine")))?
            .to_string(),
        None => this_machines_address()
            .ok_or_else(|| {
                ChangeError::Usage(
                    "this machine has no LAN address (none in /proc/net): give --listen ADDRESS"
                        .into(),
                )
            })?
            .to_string(),
    };
    let version = plan.installed.version;
    let (files, base) = read_files(&plan.nut_dir)?;
    let password = match preset.fixed_login() {
        Some(_) => String::new(),
        None => new_password()?,
    };
    let added = edit::client_add(
        &files,
        &ClientRequest {
            name: name.to_string(),
            preset,
            ups: ups.map(str::to_string),
            listen: listen.clone(),
            password: if password.is_empty() {
                "unused".into()
            } else {
                password
            },
            version,
        },
    )?;
    let mut warnings = added.warnings.clone();
    let after: edit::Files = files
        .iter()
        .map(|(k, v)| (*k, added.changes.get(k).unwrap_or(v).clone()))
        .chain(
            added
                .changes
                .iter()
                .filter(|(k, _)| !files.contains_key(*k))
                .map(|(k, v)| (*k, v.clone())),
        )
        .collect();
    let secondaries = edit::client_accounts(&after, version)
        .iter()
        .filter(|c| c.secondary)
        .count();
    if secondaries > UNIFI_MAX_CLIENTS {
        warnings.push(unifi_notice(secondaries, "client accounts"));
    }
    if preset == Preset::Synology && added.port != DEFAULT_PORT {
        warnings.push(format!(
            "upsd listens on port {}, and DSM asks for no port: it connects to NUT's 3493",
            added.port
        ));
    }
    let outcome = make(proposal(
        added.changes.clone(),
        base,
        format!("client add {name} ({})", preset.as_str()),
    ))?;
    let login = if mode == Mode::Apply {
        match login(
            &listen,
            added.port,
            &added.ups,
            &added.account,
            &added.password,
        ) {
            Ok(seen) => Some(seen),
            Err(e) => {
                let undone = make(manage::undo_request());
                return Err(ChangeError::Io(match undone {
                    Ok(_) => format!("{e}; the change was undone"),
                    Err(u) => format!("{e}; undoing it failed too: {u}"),
                }));
            }
        }
    } else {
        None
    };
    Ok(Added {
        outcome,
        name: name.to_string(),
        preset,
        host: listen,
        port: added.port,
        ups: added.ups,
        user: added.account,
        password: added.password,
        warnings,
        login,
    })
}

/// Removes a client: its account; the LAN's LISTEN and MODE back when it was the last.
pub fn remove(plan: &Plan, name: &str, make: &mut Make) -> Result<Outcome, ChangeError> {
    let (files, base) = read_files(&plan.nut_dir)?;
    let changes = edit::client_remove(&files, name, plan.installed.version)?;
    Ok(make(proposal(
        changes,
        base,
        format!("client remove {name}"),
    ))?)
}

/// The notice when more clients are connected than UniFi's NUT client tolerates.
pub fn unifi_notice(n: usize, what: &str) -> String {
    format!(
        "{n} {what}: UniFi's NUT client is reported to restart when more than {UNIFI_MAX_CLIENTS} clients are connected to the upsd it watches; keep to {UNIFI_MAX_CLIENTS} if one is on this UPS"
    )
}

/// A login upsd counts, with what can be said of its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub ups: String,
    pub address: String,
    /// Which account: upsd does not say. A loopback address is this machine's upsmon, whose
    /// MONITOR line names the account; for another address, the client accounts it may be.
    pub account: String,
}

/// The clients: the accounts in upsd.users, and what upsd says is logged in now.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub accounts: Vec<ClientAccount>,
    /// Per UPS: upsd's `LIST CLIENT`, with the account each may be.
    pub connected: Vec<Connection>,
    /// Per UPS: `GET NUMLOGINS`.
    pub logins: Vec<(String, u32)>,
    /// Where upsd was asked.
    pub upsd: String,
    /// upsd could not be asked (not running, an old upsd without LIST CLIENT).
    pub error: Option<String>,
    pub notices: Vec<String>,
}

/// Lists the clients: upsd.users' client accounts, then upsd's word (on its loopback address)
/// on who is logged in to each UPS.
pub fn list(plan: &Plan) -> Result<Listing, ChangeError> {
    use crate::nut::edit::{UpsConfDoc, UpsmonDoc};
    let version = plan.installed.version;
    let (files, _) = read_files(&plan.nut_dir)?;
    let get = |n: &str| files.get(n).map(Vec::as_slice).unwrap_or_default();
    let accounts = edit::client_accounts(&files, version);
    let sections = UpsConfDoc::parse(get(UPS_CONF), version).section_names();
    let monitors = UpsmonDoc::parse(get(UPSMON_CONF), version).monitors();
    let listeners = listeners(get(UPSD_CONF), version);
    let (host, port) = listeners
        .iter()
        .find(|(a, _)| a.starts_with("127.") || a == "::1" || a == "localhost")
        .cloned()
        .or_else(|| listeners.first().cloned())
        .map(|(a, p)| match a.as_str() {
            "0.0.0.0" | "*" => ("127.0.0.1".to_string(), p),
            "::" => ("::1".to_string(), p),
            _ => (a, p),
        })
        .unwrap_or(("127.0.0.1".into(), DEFAULT_PORT));
    let mut out = Listing {
        accounts,
        upsd: format!("{host}:{port}"),
        ..Listing::default()
    };
    let asked: Result<Vec<(String, Vec<LoggedIn>, u32)>, String> = runtime().and_then(|rt| {
        rt.block_on(async {
            let target = Target {
                ups: None,
                host: host.clone(),
                port,
            };
            let mut client = Client::new(target, options(false));
            client.set_deadline(Some(tokio::time::Instant::now() + Duration::from_secs(5)));
            let mut all = Vec::new();
            for ups in &sections {
                let who = client.list_clients(ups).await.map_err(|e| e.message())?;
                let n = client.num_logins(ups).await.map_err(|e| e.message())?;
                all.push((ups.clone(), who, n));
            }
            Ok(all)
        })
    });
    match asked {
        Ok(all) => {
            let secondary: Vec<&str> = out
                .accounts
                .iter()
                .filter(|c| c.secondary)
                .map(|c| c.account.as_str())
                .collect();
            for (ups, who, n) in all {
                if who.len() > UNIFI_MAX_CLIENTS {
                    out.notices.push(unifi_notice(
                        who.len(),
                        &format!("clients are logged in to [{ups}]"),
                    ));
                }
                for w in who {
                    // A connection to any loopback address comes from 127.0.0.1 (or ::1).
                    let account = if is_loopback(&w.address) {
                        let local: Vec<String> = monitors
                            .iter()
                            .filter(|m| m.ups == ups && edit::same_host(&m.host, "localhost"))
                            .map(|m| format!("`{}`", m.user))
                            .collect();
                        if local.is_empty() {
                            "from this machine: not told by upsd".into()
                        } else {
                            format!(
                                "from this machine: its upsmon ({}) or another program here; not told by upsd",
                                local.join(", ")
                            )
                        }
                    } else if secondary.is_empty() {
                        "not told by upsd".into()
                    } else {
                        format!(
                            "not told by upsd; one of the secondary accounts: {}",
                            secondary.join(", ")
                        )
                    };
                    out.connected.push(Connection {
                        ups: w.ups,
                        address: w.address,
                        account,
                    });
                }
                out.logins.push((ups, n));
            }
        }
        Err(e) => out.error = Some(format!("upsd at {host}:{port} was not asked: {e}")),
    }
    Ok(out)
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn listeners(text: &[u8], version: crate::nut::version::NutVersion) -> Vec<(String, u16)> {
    use crate::nut::{conf, diag::Sink, drivers::DriverDb, upsd_conf, Context};
    let cx = Context {
        version,
        drivers: DriverDb::builtin(),
        host_drivers: None,
    };
    let mut sink = Sink::new(UPSD_CONF);
    let lines = conf::read_lines(text, version.dialect(), &mut sink);
    upsd_conf::parse(&lines, &cx, &mut sink).listeners()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lan_address_is_the_first_that_is_not_loopback_nor_link_local() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 169.254.3.4\n        /32 host LOCAL\n     |-- 192.168.1.20\n        /32 link BROADCAST\n        /32 host LOCAL\n";
        assert_eq!(
            lan_address(fib, ""),
            Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)))
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n20010db8000000000000000000000007 02 40 00 80     eth0\n";
        assert_eq!(lan_address("", v6), Some("2001:db8::7".parse().unwrap()));
        assert_eq!(lan_address("", ""), None);
        assert_eq!(
            lan_address("|-- 127.0.0.1\n/32 host LOCAL\n", "garbage\n"),
            None
        );
    }

    #[test]
    fn what_to_enter_on_each_client() {
        let mut a = Added {
            outcome: Outcome::default(),
            name: "pve".into(),
            preset: Preset::Proxmox,
            host: "192.168.1.20".into(),
            port: 3493,
            ups: "ups".into(),
            user: "pve".into(),
            password: "pw".into(),
            warnings: vec![],
            login: None,
        };
        assert_eq!(
            a.monitor_line(),
            "MONITOR ups@192.168.1.20 1 pve pw secondary"
        );
        assert!(a.instructions().iter().any(|(k, _)| *k == "MONITOR line"));
        a.port = 3555;
        a.host = "2001:db8::7".into();
        assert_eq!(
            a.monitor_line(),
            "MONITOR ups@[2001:db8::7]:3555 1 pve pw secondary"
        );
        a.preset = Preset::HomeAssistant;
        let i = a.instructions();
        assert!(i.iter().all(|(k, _)| *k != "MONITOR line"));
        assert!(i.iter().any(|(k, v)| *k == "port" && v == "3555"));
        assert!(i[0].1.contains("Network UPS Tools (NUT)"));
    }
}
