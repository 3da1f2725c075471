//! Configuration of the memory backend.

/// Configuration of a [`MemoryBroker`](super::MemoryBroker).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// The most messages (ready, delayed and unsettled) one group of a topic
    /// holds; a send waits while any group is full. Default 10 000.
    pub capacity: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self { capacity: 10_000 }
    }
}

impl MemoryConfig {
    /// Set the capacity (at least 1).
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Read `memory://[?capacity=N]`.
    pub fn from_url(url: &str) -> crate::Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| crate::Error::invalid_input(format!("memory URL: {e}")))?;
        let mut config = Self::default();
        for (name, value) in parsed.query_pairs() {
            match &*name {
                "capacity" => {
                    let n: usize = value.parse().map_err(|_| {
                        crate::Error::invalid_input(format!(
                            "memory URL: capacity `{value}` is not a number"
                        ))
                    })?;
                    config = config.with_capacity(n);
                }
                other => {
                    return Err(crate::Error::invalid_input(format!(
                        "memory URL: unknown parameter `{other}`"
                    )));
                }
            }
        }
        Ok(config)
    }
}
