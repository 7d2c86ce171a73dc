//! The `serve` flags of fleet mode.

/// Fleet mode is off unless `--fleet` names a database.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Run as one sidecar of a fleet sharing this PostgreSQL database
    /// (`postgres://user@host:port/db`; a password is better given in
    /// PGPASSWORD-style environment than on the command line). Without it,
    /// the sidecar is on its own with its embedded redb store.
    #[arg(long = "fleet", env = "ETAX_FLEET", value_name = "URL")]
    pub url: Option<String>,
    /// This sidecar's name in the fleet: its row in the fleet's status and
    /// its own decision-log chain. Default: the machine's host name. Two
    /// running sidecars must not share a name.
    #[arg(long = "fleet-host", env = "ETAX_FLEET_HOST", value_name = "NAME")]
    pub host: Option<String>,
    /// How long this sidecar answers from its replica after it last heard
    /// from the fleet database; past it, `/readyz` says so and decisions
    /// fail closed (503) until the database answers again.
    #[arg(
        long = "fleet-max-stale-ms",
        env = "ETAX_FLEET_MAX_STALE_MS",
        value_name = "MS",
        default_value_t = 5000
    )]
    pub max_stale_ms: u64,
}

impl FleetArgs {
    /// The host name to use: the flag, else the kernel's host name.
    pub fn host_name(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into())
        })
    }
}

impl Default for FleetArgs {
    fn default() -> Self {
        Self {
            url: None,
            host: None,
            max_stale_ms: 5000,
        }
    }
}
