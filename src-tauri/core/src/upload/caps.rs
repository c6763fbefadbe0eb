//! What each server offers (OPTIONS), asked once per endpoint and run and kept in the
//! journal, with what a server refused (parts).

use super::*;

/// OPTIONS answers, fetched once per endpoint per engine run.
#[derive(Debug, Default, Clone)]
pub struct CapsCache {
    cells: Arc<Mutex<HashMap<String, Arc<OnceCell<ServerCaps>>>>>,
    /// Endpoints that refused parts although OPTIONS listed concatenation.
    no_parts: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl CapsCache {
    /// The server's capabilities, asking it at most once (concurrent callers share one request).
    pub async fn get(
        &self,
        client: &TusClient,
        store: &Store,
        endpoint: &str,
        grant: &Grant,
    ) -> Result<ServerCaps> {
        let cell = {
            let mut map = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(endpoint.to_string()).or_default().clone()
        };
        let caps = cell
            .get_or_try_init(|| async {
                let caps = match client.options(endpoint, grant).await {
                    Ok(caps) => caps,
                    Err(Error::NotTusServer { reason, .. }) => {
                        tracing::info!(endpoint = %crate::redact::strip_userinfo(endpoint), %reason, "OPTIONS told nothing; going ahead with tus core");
                        ServerCaps::core_only(reason)
                    }
                    Err(e) => return Err(e),
                };
                tracing::info!(endpoint = %crate::redact::strip_userinfo(endpoint), versions = ?caps.versions, extensions = ?caps.extensions, max_size = ?caps.max_size, "discovered server");
                store.save_caps(endpoint, &caps)?;
                Ok::<_, Error>(caps)
            })
            .await?;
        Ok(caps.clone())
    }

    /// What OPTIONS said, if it was asked in this run (never waits).
    pub fn known(&self, endpoint: &str) -> Option<ServerCaps> {
        let map = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        map.get(endpoint).and_then(|c| c.get().cloned())
    }

    /// Whether uploads to this endpoint would go as parts by what is known now: `None`
    /// before OPTIONS was asked.
    pub fn offers_parts(&self, endpoint: &str) -> Option<bool> {
        let caps = self.known(endpoint)?;
        Some(caps.has("concatenation") && !self.refuses_parts(endpoint))
    }

    /// The endpoint refused parts (501 to a partial, no `Upload-Concat` kept): one stream
    /// from now on, in this run.
    pub fn refuse_parts(&self, endpoint: &str) {
        self.no_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.to_string());
    }

    pub fn refuses_parts(&self, endpoint: &str) -> bool {
        self.no_parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(endpoint)
    }

    /// Forgets an endpoint's answer (after the server changed under us).
    pub fn invalidate(&self, endpoint: &str) {
        self.cells
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(endpoint);
    }
}
