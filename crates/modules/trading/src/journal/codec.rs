//! The compact binary encoding of [`Command`]s: a tag byte per variant,
//! then fixed-width little-endian fields.
//!
//! | tag | command         | fields                                                                          |
//! |-----|-----------------|---------------------------------------------------------------------------------|
//! | 1   | `AddInstrument` | name length u8, name (UTF-8), price decimals u8, qty decimals u8, tick i64, lot u64 |
//! | 2   | `New`           | id u64, symbol u32, account u32, owner u32, side u8, type u8, tif u8, flags u8 (bit 0: post-only), stp u8, price i64, qty u64 |
//! | 3   | `Cancel`        | symbol u32, id u64                                                              |
//! | 4   | `Replace`       | symbol u32, id u64, price i64, qty u64                                          |
//! | 5   | `ClientOrderId` | order id u64, account u32, length u8, the client's id (UTF-8)                   |
//! | 6   | `Refused`       | account u32, symbol u32, side u8, length u8, the reason code (ASCII)            |
//!
//! A variant's layout never changes once written: a new field means a new
//! tag (e.g. a `New` v2 under tag 5), so old files stay readable. A reader
//! that meets a tag it does not know fails loudly rather than skipping it.

use crate::engine::{Cancel, ClientOrderId, Command, NewOrder, Refused, Replace, StpMode};
use crate::types::{Instrument, OrderType, Side, TimeInForce};

const TAG_ADD_INSTRUMENT: u8 = 1;
const TAG_NEW: u8 = 2;
const TAG_CANCEL: u8 = 3;
const TAG_REPLACE: u8 = 4;
const TAG_CLIENT_ORDER_ID: u8 = 5;
const TAG_REFUSED: u8 = 6;

/// Why a record's payload (whose checksum is fine) is not a command this
/// build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A tag from a newer build, or garbage.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// The payload ends inside a field.
    #[error("the payload ends inside the command")]
    Truncated,
    /// Bytes left after the command.
    #[error("{0} bytes follow the command")]
    TrailingBytes(usize),
    /// An enum field out of range.
    #[error("invalid {field} value {value}")]
    InvalidValue {
        /// Which field.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A symbol name that is not UTF-8.
    #[error("the symbol name is not utf-8")]
    InvalidUtf8,
}

/// Appends the encoding of `cmd` to `buf`.
pub(super) fn encode(cmd: &Command, buf: &mut Vec<u8>) {
    match cmd {
        Command::AddInstrument(i) => {
            buf.push(TAG_ADD_INSTRUMENT);
            // The venue refuses names over 64 bytes; clamp anyway so the
            // length byte always tells the truth.
            let name = &i.symbol.as_bytes()[..i.symbol.len().min(usize::from(u8::MAX))];
            buf.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            buf.extend_from_slice(name);
            buf.push(i.price_decimals);
            buf.push(i.qty_decimals);
            buf.extend_from_slice(&i.tick.to_le_bytes());
            buf.extend_from_slice(&i.lot.to_le_bytes());
        }
        Command::New(o) => {
            buf.push(TAG_NEW);
            buf.extend_from_slice(&o.id.to_le_bytes());
            buf.extend_from_slice(&o.symbol.to_le_bytes());
            buf.extend_from_slice(&o.account.to_le_bytes());
            buf.extend_from_slice(&o.owner.to_le_bytes());
            buf.push(side_byte(o.side));
            buf.push(match o.order_type {
                OrderType::Limit => 0,
                OrderType::Market => 1,
            });
            buf.push(match o.tif {
                TimeInForce::Gtc => 0,
                TimeInForce::Ioc => 1,
                TimeInForce::Fok => 2,
            });
            buf.push(u8::from(o.post_only));
            buf.push(match o.stp {
                StpMode::CancelNewest => 0,
                StpMode::CancelOldest => 1,
                StpMode::CancelBoth => 2,
                StpMode::DecrementAndCancel => 3,
            });
            buf.extend_from_slice(&o.price.to_le_bytes());
            buf.extend_from_slice(&o.qty.to_le_bytes());
        }
        Command::Cancel(c) => {
            buf.push(TAG_CANCEL);
            buf.extend_from_slice(&c.symbol.to_le_bytes());
            buf.extend_from_slice(&c.id.to_le_bytes());
        }
        Command::Replace(r) => {
            buf.push(TAG_REPLACE);
            buf.extend_from_slice(&r.symbol.to_le_bytes());
            buf.extend_from_slice(&r.id.to_le_bytes());
            buf.extend_from_slice(&r.price.to_le_bytes());
            buf.extend_from_slice(&r.qty.to_le_bytes());
        }
        Command::ClientOrderId(c) => {
            buf.push(TAG_CLIENT_ORDER_ID);
            buf.extend_from_slice(&c.order_id.to_le_bytes());
            buf.extend_from_slice(&c.account.to_le_bytes());
            // The venue refuses ids over 64 bytes; clamp anyway so the length
            // byte always tells the truth.
            let id = &c.client_order_id.as_bytes()[..c.client_order_id.len().min(usize::from(u8::MAX))];
            buf.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
            buf.extend_from_slice(id);
        }
        Command::Refused(r) => {
            buf.push(TAG_REFUSED);
            buf.extend_from_slice(&r.account.to_le_bytes());
            buf.extend_from_slice(&r.symbol.to_le_bytes());
            buf.push(side_byte(r.side));
            let reason = &r.reason.as_bytes()[..r.reason.len().min(usize::from(u8::MAX))];
            buf.push(u8::try_from(reason.len()).unwrap_or(u8::MAX));
            buf.extend_from_slice(reason);
        }
    }
}

const fn side_byte(side: Side) -> u8 {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn side_of(value: u8) -> Result<Side, DecodeError> {
    match value {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        value => Err(DecodeError::InvalidValue { field: "side", value }),
    }
}

/// Decodes one command that must fill `bytes` exactly.
///
/// # Errors
/// What is wrong with the payload.
pub(super) fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
    let mut r = Reader(bytes);
    let cmd = match r.u8()? {
        TAG_ADD_INSTRUMENT => {
            let len = usize::from(r.u8()?);
            let name = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?.to_owned();
            Command::AddInstrument(Instrument {
                symbol: name,
                price_decimals: r.u8()?,
                qty_decimals: r.u8()?,
                tick: r.i64()?,
                lot: r.u64()?,
            })
        }
        TAG_NEW => {
            let id = r.u64()?;
            let symbol = r.u32()?;
            let account = r.u32()?;
            let owner = r.u32()?;
            let side = side_of(r.u8()?)?;
            let order_type = match r.u8()? {
                0 => OrderType::Limit,
                1 => OrderType::Market,
                value => return Err(DecodeError::InvalidValue { field: "order type", value }),
            };
            let tif = match r.u8()? {
                0 => TimeInForce::Gtc,
                1 => TimeInForce::Ioc,
                2 => TimeInForce::Fok,
                value => return Err(DecodeError::InvalidValue { field: "time in force", value }),
            };
            let post_only = match r.u8()? {
                0 => false,
                1 => true,
                value => return Err(DecodeError::InvalidValue { field: "flags", value }),
            };
            let stp = match r.u8()? {
                0 => StpMode::CancelNewest,
                1 => StpMode::CancelOldest,
                2 => StpMode::CancelBoth,
                3 => StpMode::DecrementAndCancel,
                value => return Err(DecodeError::InvalidValue { field: "self-trade prevention", value }),
            };
            Command::New(NewOrder {
                id,
                symbol,
                account,
                owner,
                side,
                order_type,
                tif,
                price: r.i64()?,
                qty: r.u64()?,
                post_only,
                stp,
            })
        }
        TAG_CANCEL => Command::Cancel(Cancel { symbol: r.u32()?, id: r.u64()? }),
        TAG_REPLACE => Command::Replace(Replace { symbol: r.u32()?, id: r.u64()?, price: r.i64()?, qty: r.u64()? }),
        TAG_CLIENT_ORDER_ID => {
            let (order_id, account) = (r.u64()?, r.u32()?);
            let len = usize::from(r.u8()?);
            let id = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?.to_owned();
            Command::ClientOrderId(ClientOrderId { order_id, account, client_order_id: id })
        }
        TAG_REFUSED => {
            let (account, symbol) = (r.u32()?, r.u32()?);
            let side = side_of(r.u8()?)?;
            let len = usize::from(r.u8()?);
            let reason = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::InvalidUtf8)?.to_owned();
            Command::Refused(Refused { account, symbol, side, reason })
        }
        tag => return Err(DecodeError::UnknownTag(tag)),
    };
    if r.0.is_empty() { Ok(cmd) } else { Err(DecodeError::TrailingBytes(r.0.len())) }
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_and_damage_is_refused() {
        let cmds = [
            Command::AddInstrument(Instrument {
                symbol: "BTC-USD".into(),
                price_decimals: 2,
                qty_decimals: 8,
                tick: 50,
                lot: 1000,
            }),
            Command::New(
                NewOrder::limit(u64::MAX, 3, Side::Sell, i64::MAX, u64::MAX)
                    .by(7, 9)
                    .tif(TimeInForce::Fok)
                    .stp(StpMode::DecrementAndCancel),
            ),
            Command::New(NewOrder::market(5, 0, Side::Buy, 10).post_only()),
            Command::Cancel(Cancel { symbol: 1, id: 2 }),
            Command::Replace(Replace { symbol: 1, id: 2, price: -3, qty: 4 }),
            Command::ClientOrderId(ClientOrderId { order_id: 9, account: 3, client_order_id: "注文-7".into() }),
            Command::Refused(Refused { account: 4, symbol: 2, side: Side::Sell, reason: "price_collar".into() }),
        ];
        for cmd in &cmds {
            let mut buf = Vec::new();
            encode(cmd, &mut buf);
            assert_eq!(decode(&buf).as_ref(), Ok(cmd));
            for cut in 0..buf.len() {
                assert!(decode(&buf[..cut]).is_err(), "{cmd:?} cut at {cut}");
            }
            buf.push(0);
            assert_eq!(decode(&buf), Err(DecodeError::TrailingBytes(1)));
        }
        assert_eq!(decode(&[9]), Err(DecodeError::UnknownTag(9)));
        let mut buf = Vec::new();
        encode(&Command::New(NewOrder::limit(1, 0, Side::Buy, 1, 1)), &mut buf);
        buf[21] = 7; // the side byte
        assert_eq!(decode(&buf), Err(DecodeError::InvalidValue { field: "side", value: 7 }));
    }
}
