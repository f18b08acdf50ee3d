//! Build stage: the gateway's own settings (`[gateway]`, defaults when absent), parsed once into
//! [`GatewaySettings`]. Its listeners must be loopback socket addresses.

use super::{Builder, Entry};
use crate::finding::FindingCode;
use crate::settings::GatewaySettings;

impl Builder<'_> {
    /// The typed gateway settings, with a finding for each listener that is not loopback.
    pub(super) fn gateway(&mut self) -> GatewaySettings {
        let file = self.fx.gateway.clone().unwrap_or_default();
        let (settings, invalid) = GatewaySettings::from_file(&file);
        for (key, v) in invalid {
            self.push(
                FindingCode::GatewayListenInvalid,
                &Entry::new("gateway", format!("/gateway/{key}")),
                format!("{key} `{v}` must be a loopback socket address such as 127.0.0.1:0"),
            );
        }
        settings
    }
}
