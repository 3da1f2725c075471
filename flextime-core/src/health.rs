//! health (work in progress in this commit).
/// placeholder
pub trait HealthCheck {}
/// placeholder
pub struct HealthRegistry;
/// placeholder
pub struct HealthReport;
/// placeholder
pub enum HealthStatus {}
