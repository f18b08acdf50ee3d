//! Build stage: the gateway's own settings (`[gateway]`, defaults when absent). Its listeners
//! must be loopback socket addresses; everything else is the gateway's to interpret.

use std::net::SocketAddr;

use super::{Builder, Entry};
use crate::finding::FindingCode;
use crate::fixture::GatewayFile;

impl Builder<'_> {
    /// The gateway settings, with a finding for each listener that is not loopback.
    pub(super) fn gateway(&mut self) -> GatewayFile {
        let gateway = self.fx.gateway.clone().unwrap_or_default();
        for (key, value) in [
            ("listen", &gateway.listen),
            ("admin_listen", &gateway.admin_listen),
        ] {
            if let Some(v) = value {
                match v.trim().parse::<SocketAddr>() {
                    Ok(sa) if sa.ip().is_loopback() => {}
                    _ => self.push(
                        FindingCode::GatewayListenInvalid,
                        &Entry::new("gateway", format!("/gateway/{key}")),
                        format!(
                            "{key} `{v}` must be a loopback socket address such as 127.0.0.1:0"
                        ),
                    ),
                }
            }
        }
        gateway
    }
}
