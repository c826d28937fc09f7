//! Incidents: the lifecycle, its timeline, and webhook notifications.
