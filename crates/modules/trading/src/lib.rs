//! The trading module: an internal venue (matching engine with a journal),
//! order management, market data, pre-trade risk, compliance surveillance and
//! portfolio risk, reached by an assistant through MCP tools that never
//! bypass risk and compliance.
//!
//! Engines (plain Rust, no MCP types):
//! - [`engine`]: limit order books with price-time priority, one writer per symbol;
//! - [`journal`]: the append-only command journal the venue writes before it
//!   acknowledges, and its replay;
//! - [`pretrade`]: pre-trade risk checks in the spirit of SEC Rule 15c3-5;
//! - [`surveillance`]: wash trades, spoofing/layering, order-to-trade ratios;
//! - [`feeds`]: external market-data feed handlers (Binance- and Coinbase-style
//!   WebSocket streams) with reconnects, staleness and gap detection;
//! - [`analytics`]: portfolio risk (VaR, expected shortfall, beta, Sharpe,
//!   drawdown, stress tests).

pub mod analytics;
pub mod cluster;
pub mod desk;
pub mod engine;
pub mod feeds;
pub mod history;
pub mod journal;
pub mod oms;
pub mod pretrade;
pub mod settings;
pub mod simulator;
pub mod surveillance;
pub mod tools;
pub mod types;

pub use tools::{NAME, Trading};
