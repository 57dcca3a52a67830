// TEMPORARY STUB
#![allow(dead_code, unused_variables, missing_docs)]
use crate::secret::Secret;
pub struct RelayConfig {
    pub access_code: Secret,
}
impl RelayConfig {
    pub fn new(access_code: Secret) -> Self {
        RelayConfig { access_code }
    }
}
pub async fn run(
    listener: tokio::net::TcpListener,
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    todo!()
}
