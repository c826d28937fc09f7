//! Coinbase-style streams (the Exchange WebSocket feed): `snapshot` and
//! `l2update` on the level-2 channel, `match`/`last_match` on `matches`,
//! `heartbeat` once a second per product.
//!
//! `l2update` carries no sequence number, so gaps are found on the matches
//! and heartbeats of each product: trade ids are consecutive per product, a
//! heartbeat's `last_trade_id` ahead of the last match seen means matches
//! were missed, and `sequence` never goes back. With
//! [`CoinbaseConfig::contiguous_sequence`] every numbered message must also
//! carry the previous sequence + 1 (a stream that numbers only what this
//! subscription receives). A gap marks the product resyncing and
//! resubscribes its level-2 channel, which answers with a fresh snapshot;
//! updates that arrive before it are dropped.

use super::conn::{Io, Protocol};
use super::parse::{self, Fields, MessageError};
use super::state::{FeedStatus, Trade, bump};
use crate::types::Side;

/// Coinbase-style settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoinbaseConfig {
    /// The level-2 channel: `level2_batch` (public) or `level2` (authenticated on Coinbase Exchange).
    pub level2_channel: String,
    /// Require `sequence` to go up by exactly one between numbered messages
    /// (matches, and heartbeats after them) of a product. Coinbase's own
    /// sequence counts every event of the product's full feed, so leave it
    /// off there: trade ids and `last_trade_id` find the gaps.
    pub contiguous_sequence: bool,
}

impl Default for CoinbaseConfig {
    fn default() -> Self {
        Self { level2_channel: "level2_batch".to_owned(), contiguous_sequence: false }
    }
}

#[derive(Debug, Default, Clone)]
struct Product {
    /// No snapshot yet on this connection, or a resync waits for one.
    awaiting_snapshot: bool,
    /// The snapshot awaited completes a resync.
    resync: bool,
    last_sequence: Option<u64>,
    last_trade_id: Option<u64>,
    /// Book messages applied (Coinbase's level 2 has no update ids).
    book_id: u64,
}

pub(crate) struct CoinbaseProtocol {
    config: CoinbaseConfig,
    products: Vec<Product>,
}

/// What a numbered message says about continuity.
enum Continuity {
    InOrder,
    Gap,
    Behind,
}

impl CoinbaseProtocol {
    pub(crate) fn new(config: CoinbaseConfig, symbols: usize) -> Self {
        Self { config, products: vec![Product::default(); symbols] }
    }

    fn index(fields: &Fields, io: &Io<'_>) -> Result<usize, MessageError> {
        let product = parse::str_field(fields, "product_id")?;
        io.shared.index_of(product).ok_or_else(|| MessageError::UnknownSymbol(product.to_owned()))
    }

    fn snapshot(&mut self, fields: &Fields, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let bids = parse::levels(parse::array_field(fields, "bids")?, "bids")?;
        let asks = parse::levels(parse::array_field(fields, "asks")?, "asks")?;
        let product = &mut self.products[index];
        product.book_id += 1;
        product.awaiting_snapshot = false;
        let was_resync = std::mem::take(&mut product.resync);
        io.shared.symbol_message(index);
        io.shared.update_book(index, product.book_id, None, |book| book.replace(&bids, &asks));
        bump(&io.shared.counters.snapshots);
        if was_resync {
            bump(&io.shared.counters.resyncs);
        }
        io.shared.set_symbol_status(index, FeedStatus::Live);
        Ok(())
    }

    fn l2update(&mut self, fields: &Fields, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let changes = parse::array_field(fields, "changes")?
            .iter()
            .map(|change| match change.as_array().map(Vec::as_slice) {
                Some([side, price, size, ..]) => {
                    let side = match side.as_str() {
                        Some("buy") => Side::Buy,
                        Some("sell") => Side::Sell,
                        _ => return Err(MessageError::Field { field: "changes", problem: "side is not buy or sell" }),
                    };
                    Ok((side, parse::price_value(price, "changes")?, parse::qty_value(size, "changes")?))
                }
                _ => Err(MessageError::Field { field: "changes", problem: "a change is not [side, price, size]" }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = fields.get("time").and_then(|t| t.as_str()).and_then(parse::rfc3339_millis);
        io.shared.symbol_message(index);
        let product = &mut self.products[index];
        if product.awaiting_snapshot {
            bump(&io.shared.counters.stale_events_dropped);
            return Ok(());
        }
        product.book_id += 1;
        io.shared.update_book(index, product.book_id, time, |book| {
            for (side, price, size) in &changes {
                book.set(*side, *price, *size);
            }
        });
        Ok(())
    }

    fn matched(&mut self, fields: &Fields, last_match: bool, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let trade_id = parse::u64_field(fields, "trade_id")?;
        let sequence = parse::u64_field(fields, "sequence")?;
        // `side` is the maker's: a "sell" maker was lifted by a buying taker.
        let maker = match parse::str_field(fields, "side")? {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err(MessageError::Field { field: "side", problem: "not buy or sell" }),
        };
        let price = parse::price_field(fields, "price")?;
        let qty = parse::qty_field(fields, "size")?;
        if qty == 0.0 {
            return Err(MessageError::Field { field: "size", problem: "trade size is zero" });
        }
        let venue_time_ms = fields.get("time").and_then(|t| t.as_str()).and_then(parse::rfc3339_millis);
        io.shared.symbol_message(index);
        let symbol = io.shared.symbol_names()[index].clone();
        let trade = Trade { symbol, price, qty, aggressor: maker.opposite(), trade_id, venue_time_ms };

        let product = &mut self.products[index];
        let continuity = if last_match {
            // The last trade before the subscription: a baseline, not news.
            Continuity::InOrder
        } else {
            match (product.last_trade_id, product.last_sequence) {
                (Some(tid), Some(seq)) if trade_id <= tid || sequence <= seq => Continuity::Behind,
                (Some(tid), Some(seq)) => {
                    let jump = trade_id != tid + 1 || (self.config.contiguous_sequence && sequence != seq + 1);
                    if jump { Continuity::Gap } else { Continuity::InOrder }
                }
                _ => Continuity::InOrder,
            }
        };
        if matches!(continuity, Continuity::Behind) {
            bump(&io.shared.counters.out_of_order);
            return Ok(());
        }
        product.last_trade_id = Some(trade_id);
        product.last_sequence = Some(sequence);
        if matches!(continuity, Continuity::Gap) {
            self.gap(index, "match", io);
        }
        io.shared.trade(index, trade, !last_match);
        Ok(())
    }

    fn heartbeat(&mut self, fields: &Fields, io: &mut Io<'_>) -> Result<(), MessageError> {
        let index = Self::index(fields, io)?;
        let sequence = parse::u64_field(fields, "sequence")?;
        let last_trade_id = parse::u64_field(fields, "last_trade_id")?;
        io.shared.symbol_message(index);
        let product = &mut self.products[index];
        let continuity = match (product.last_trade_id, product.last_sequence) {
            (Some(tid), Some(seq)) if last_trade_id < tid || sequence < seq => Continuity::Behind,
            (Some(tid), Some(seq)) => {
                let jump = last_trade_id > tid || (self.config.contiguous_sequence && sequence > seq);
                if jump { Continuity::Gap } else { Continuity::InOrder }
            }
            _ => Continuity::InOrder,
        };
        match continuity {
            Continuity::Behind => bump(&io.shared.counters.out_of_order),
            Continuity::InOrder | Continuity::Gap => {
                product.last_trade_id = Some(last_trade_id);
                product.last_sequence = Some(sequence);
                if matches!(continuity, Continuity::Gap) {
                    self.gap(index, "heartbeat", io);
                }
            }
        }
        Ok(())
    }

    /// Missed messages: the book waits for a fresh snapshot, asked for by
    /// resubscribing the product's level-2 channel.
    fn gap(&mut self, index: usize, found_in: &'static str, io: &mut Io<'_>) {
        bump(&io.shared.counters.gaps);
        let product = &mut self.products[index];
        let symbol = io.shared.symbol_names()[index].clone();
        tracing::warn!(feed = %io.shared.name, %symbol, found_in, "sequence gap, resubscribing for a fresh snapshot");
        product.resync = true;
        if product.awaiting_snapshot {
            // A resubscription is already on its way.
            return;
        }
        product.awaiting_snapshot = true;
        io.shared.set_symbol_status(index, FeedStatus::Resyncing);
        let channel = &self.config.level2_channel;
        for kind in ["unsubscribe", "subscribe"] {
            io.send(serde_json::json!({ "type": kind, "product_ids": [&symbol], "channels": [channel] }).to_string());
        }
    }
}

impl Protocol for CoinbaseProtocol {
    fn on_connect(&mut self, io: &mut Io<'_>) {
        for product in &mut self.products {
            *product = Product { awaiting_snapshot: true, ..Product::default() };
        }
        io.shared.set_all_symbols(&FeedStatus::Connecting);
        let subscribe = serde_json::json!({
            "type": "subscribe",
            "product_ids": io.shared.symbol_names(),
            "channels": [&self.config.level2_channel, "matches", "heartbeat"],
        });
        io.send(subscribe.to_string());
    }

    fn on_text(&mut self, text: &str, io: &mut Io<'_>) -> Result<(), MessageError> {
        let fields = parse::object(text)?;
        match parse::str_field(&fields, "type")? {
            "subscriptions" => Ok(()),
            "error" => {
                let message = fields.get("message").and_then(|m| m.as_str()).unwrap_or("unspecified");
                let reason = fields.get("reason").and_then(|m| m.as_str()).unwrap_or("");
                Err(MessageError::Venue(format!("{message} {reason}").trim_end().to_owned()))
            }
            "snapshot" => self.snapshot(&fields, io),
            "l2update" => self.l2update(&fields, io),
            "match" => self.matched(&fields, false, io),
            "last_match" => self.matched(&fields, true, io),
            "heartbeat" => self.heartbeat(&fields, io),
            other => Err(MessageError::UnknownType(other.to_owned())),
        }
    }
}
