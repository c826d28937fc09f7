//! The MCP surface: a thin layer of tools and `market://` resources over
//! the desk. Orders go risk, then compliance, then the venue, always: there
//! is no tool that reaches the venue another way.
//!
//! Who may use which account: an account's `traders` list names subjects or
//! `role:<name>`; a portfolio a caller may not use is reported exactly like
//! one that does not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use plexus_core::content::ResourceContents;
use plexus_core::{CallContext, Module, ResourceTemplateSpec, ToolDef, ToolError, ToolOutput, Toolbox};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::analytics::{self, ConcentrationLimits, Holding, RiskParams, Scenario};
use crate::desk::{Desk, DeskError, MarketSnapshot, OrderRef, OrderReport, OrderRequest};
use crate::feeds::{FeedEvent, FeedHandle, FeedReader, SymbolView};
use crate::history::History;
use crate::types::{OrderType, Side, TimeInForce};

/// The module's name.
pub const NAME: &str = "trading";
/// Market data resources: `market://{symbol}/quote`, `/trades`, `/book`,
/// `/deltas` (the internal venue's L2 changes); `{symbol}@{feed}` for an
/// external feed's data.
pub const MARKET_TEMPLATE: &str = "market://{symbol}/{view}";

/// How many levels per side the market data shows.
const DEPTH: usize = 10;

/// What the tools share.
pub struct Ctx {
    pub desk: Desk,
    /// Account → who may use it.
    pub traders: BTreeMap<String, Vec<String>>,
    pub history: History,
    pub sectors: BTreeMap<String, String>,
    /// Whether the order flow is simulated (labelled in market data).
    pub simulated: bool,
    /// External market-data feeds (read-only), shown beside the internal venue.
    pub feeds: Vec<Arc<FeedHandle>>,
}

/// The module.
pub struct Trading {
    tools: Toolbox,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Trading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trading").finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MarketArgs {
    /// Symbols, e.g. ["7203.T", "AAPL"].
    symbols: Vec<String>,
    /// What to return: quotes, trades, orderbook, analytics (default: quotes).
    #[serde(default)]
    data_types: Vec<DataType>,
}

#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
enum DataType {
    Quotes,
    Trades,
    Orderbook,
    Analytics,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OrderArgs {
    order: OrderSpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OrderSpec {
    /// The portfolio (account) the order is for.
    portfolio_id: String,
    symbol: String,
    side: SideArg,
    /// limit (default) or market.
    #[serde(default, rename = "type")]
    order_type: Option<TypeArg>,
    /// gtc (default), ioc or fok.
    #[serde(default)]
    time_in_force: Option<TifArg>,
    /// The limit price (limit orders).
    #[serde(default)]
    price: Option<f64>,
    quantity: f64,
    /// Your id for the order: sending the same one again returns the same order instead of a new one.
    #[serde(default)]
    client_order_id: Option<String>,
    /// Rest only, never take liquidity.
    #[serde(default)]
    post_only: bool,
}

#[derive(Debug, Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum SideArg {
    Buy,
    Sell,
}

#[derive(Debug, Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TypeArg {
    Limit,
    Market,
}

#[derive(Debug, Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum TifArg {
    Gtc,
    Ioc,
    Fok,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CancelArgs {
    portfolio_id: String,
    /// The order id the venue gave.
    #[serde(default)]
    order_id: Option<u64>,
    /// Or your client order id.
    #[serde(default)]
    client_order_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortfolioArgs {
    portfolio_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RiskArgs {
    portfolio_id: String,
    /// A stress scenario: {"name": "...", "symbolShocks": {"7203.T": -0.15}, "factorShocks": {"market": -0.1}}
    /// (returns as fractions); without one, two standard scenarios are run.
    #[serde(default)]
    scenario: Option<ScenarioArg>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScenarioArg {
    name: String,
    #[serde(default)]
    symbol_shocks: BTreeMap<String, f64>,
    #[serde(default)]
    factor_shocks: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ComplianceArgs {
    /// RFC 3339 start (inclusive).
    from: String,
    /// RFC 3339 end (exclusive).
    to: String,
}

fn failed(msg: impl Into<String>) -> ToolError {
    ToolError::Failed(msg.into())
}

fn desk_error(e: DeskError) -> ToolError {
    match e {
        DeskError::Unknown { .. } => ToolError::Failed(e.to_string()),
        DeskError::Stopped => ToolError::unavailable(e.to_string()),
        other => ToolError::unavailable(other.to_string()),
    }
}

impl Ctx {
    /// The account, if the caller may use it; else "unknown portfolio" exactly like a missing one.
    fn portfolio<'a>(&self, cx: &CallContext, name: &'a str) -> Result<&'a str, ToolError> {
        let p = &cx.principal;
        let allowed = self.traders.get(name).is_some_and(|list| {
            list.iter().any(|t| match t.strip_prefix("role:") {
                Some(role) => p.has_role(role),
                None => *t == p.subject,
            })
        });
        if allowed { Ok(name) } else { Err(failed(format!("unknown portfolio `{name}`"))) }
    }
}

fn order_json(r: &OrderReport) -> Value {
    let mut v = json!({
        "orderId": r.order_id,
        "clientOrderId": r.client_order_id,
        "portfolioId": r.account,
        "symbol": r.symbol,
        "side": r.side.as_str(),
        "type": match r.order_type { OrderType::Limit => "limit", OrderType::Market => "market" },
        "timeInForce": match r.tif { TimeInForce::Gtc => "gtc", TimeInForce::Ioc => "ioc", TimeInForce::Fok => "fok" },
        "price": r.price,
        "quantity": r.qty,
        "status": r.status.as_str(),
        "executedQuantity": r.executed_qty,
        "remainingQuantity": r.remaining_qty,
        "averagePrice": r.avg_price,
        "fills": r.fills.iter().map(|f| json!({
            "tradeId": f.trade_id, "price": f.price, "quantity": f.qty, "liquidity": f.liquidity,
        })).collect::<Vec<_>>(),
        "repeated": r.repeated,
    });
    if let Some((code, message)) = &r.reason {
        v["reason"] = json!({"code": code, "message": message});
    }
    if let Some(m) = &r.risk {
        v["riskMetrics"] = json!({
            "notional": m.notional,
            "priceUsed": m.price_used,
            "referencePrice": m.reference_price,
            "priceCollar": m.collar.map(|(lo, hi)| json!({"low": lo, "high": hi})),
            "positionBefore": m.position,
            "projectedPosition": m.projected_position,
            "positionLimit": m.position_limit,
            "creditUsed": m.credit_used,
            "creditLimit": m.credit_limit,
            "maxOrderQuantity": m.max_order_qty,
            "maxOrderNotional": m.max_order_notional,
        });
    }
    v
}

fn internal_entry(m: &MarketSnapshot, types: &BTreeSet<DataType>) -> Value {
    let mut v = json!({"symbol": m.symbol, "venue": "internal", "bookSequence": m.book_sequence});
    if types.contains(&DataType::Quotes) {
        v["quote"] = quote_json(m.bid, m.ask, m.last);
        v["quote"]["referencePrice"] = json!(m.reference);
    }
    if types.contains(&DataType::Trades) {
        v["trades"] = json!(
            m.trades
                .iter()
                .map(|t| json!({
                    "tradeId": t.trade_id, "price": t.price, "quantity": t.qty,
                    "aggressor": t.aggressor.as_str(), "time": rfc3339_ns(t.ts_ns),
                }))
                .collect::<Vec<_>>()
        );
    }
    if types.contains(&DataType::Orderbook) {
        let level = |l: &(f64, f64, u32)| json!({"price": l.0, "quantity": l.1, "orders": l.2});
        v["orderbook"] = json!({
            "bids": m.bids.iter().map(level).collect::<Vec<_>>(),
            "asks": m.asks.iter().map(level).collect::<Vec<_>>(),
        });
    }
    if types.contains(&DataType::Analytics) {
        v["analytics"] = json!({
            "window": format!("the last {} trades", crate::desk::TRADE_RING),
            "vwap": m.vwap, "volume": m.volume, "high": m.high, "low": m.low,
        });
    }
    v
}

fn quote_json(bid: Option<(f64, f64)>, ask: Option<(f64, f64)>, last: Option<f64>) -> Value {
    let mid = match (bid, ask) {
        (Some(b), Some(a)) => Some((b.0 + a.0) / 2.0),
        _ => None,
    };
    json!({
        "bid": bid.map(|b| b.0), "bidSize": bid.map(|b| b.1),
        "ask": ask.map(|a| a.0), "askSize": ask.map(|a| a.1),
        "mid": mid, "last": last,
        "spreadBps": match (bid, ask, mid) {
            (Some(b), Some(a), Some(mid)) if mid > 0.0 => Some((a.0 - b.0) / mid * 1e4),
            _ => None,
        },
    })
}

/// An external feed's view of a symbol, labelled with the feed, its status
/// and the data's age: stale or resyncing data is shown, never passed off as live.
fn feed_entry(feed: &FeedReader, v: &SymbolView, types: &BTreeSet<DataType>) -> Value {
    let status = &v.status;
    let mut out = json!({
        "symbol": v.symbol,
        "venue": feed.name(),
        "feed": {
            "style": feed.style(),
            "status": status.as_str(),
            "live": status.is_live(),
            "ageMs": v.age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            "updateId": v.update_id,
            "lastError": v.last_error,
            "connection": feed.status().to_string(),
        },
    });
    if types.contains(&DataType::Quotes) {
        let side = |l: Option<&crate::feeds::BookLevel>| l.map(|l| (l.price, l.qty));
        let (bid, ask) = v.quote.as_ref().map_or((None, None), |q| (side(q.bid.as_ref()), side(q.ask.as_ref())));
        out["quote"] = quote_json(bid, ask, v.last_trade.as_ref().map(|t| t.price));
    }
    if types.contains(&DataType::Trades) {
        out["trades"] = json!(v.last_trade.iter().map(|t| json!({
            "tradeId": t.trade_id, "price": t.price, "quantity": t.qty, "aggressor": t.aggressor.as_str(),
            "time": t.venue_time_ms.map(|ms| rfc3339_ns(u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000))),
        })).collect::<Vec<_>>());
    }
    if types.contains(&DataType::Orderbook) {
        let level = |l: &crate::feeds::BookLevel| json!({"price": l.price, "quantity": l.qty});
        out["orderbook"] = json!({
            "bids": v.bids.iter().map(level).collect::<Vec<_>>(),
            "asks": v.asks.iter().map(level).collect::<Vec<_>>(),
        });
    }
    if types.contains(&DataType::Analytics) {
        out["analytics"] = json!({"unavailable": "an external feed's trade history is not kept: only its last trade"});
    }
    out
}

async fn market_tool(ctx: Arc<Ctx>, _cx: CallContext, a: MarketArgs) -> Result<ToolOutput, ToolError> {
    if a.symbols.is_empty() || a.symbols.len() > 50 {
        return Err(ToolError::InvalidArguments("symbols: give 1 to 50 symbols".into()));
    }
    let types: BTreeSet<DataType> =
        if a.data_types.is_empty() { [DataType::Quotes].into() } else { a.data_types.iter().copied().collect() };
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for s in &a.symbols {
        let before = out.len();
        if let Some(m) = ctx.desk.market(s, DEPTH, 50) {
            out.push(internal_entry(&m, &types));
        }
        for feed in &ctx.feeds {
            if let Some(v) = feed.symbol(s, DEPTH) {
                out.push(feed_entry(feed, &v, &types));
            }
        }
        if out.len() == before {
            unknown.push(s.clone());
        }
    }
    if out.is_empty() {
        let mut listed = ctx.desk.symbols();
        for feed in &ctx.feeds {
            listed.extend(feed.view(0).symbols.into_iter().map(|v| format!("{}@{}", v.symbol, feed.name())));
        }
        return Err(failed(format!("unknown symbols: {} (listed: {})", unknown.join(", "), listed.join(", "))));
    }
    let source = if ctx.simulated {
        "Plexus internal venue; order flow SIMULATED by the demo market simulator (not real market data)"
    } else {
        "Plexus internal venue"
    };
    let feeds: Vec<Value> = ctx
        .feeds
        .iter()
        .map(|f| json!({"name": f.name(), "style": f.style(), "status": f.status().to_string()}))
        .collect();
    Ok(ToolOutput::structured(json!({"source": source, "feeds": feeds, "symbols": out, "unknownSymbols": unknown})))
}

async fn place_tool(ctx: Arc<Ctx>, cx: CallContext, a: OrderArgs) -> Result<ToolOutput, ToolError> {
    let o = a.order;
    let account = ctx.portfolio(&cx, &o.portfolio_id)?.to_owned();
    let req = OrderRequest {
        account,
        client_order_id: o.client_order_id,
        symbol: o.symbol,
        side: match o.side {
            SideArg::Buy => Side::Buy,
            SideArg::Sell => Side::Sell,
        },
        order_type: match o.order_type.unwrap_or(TypeArg::Limit) {
            TypeArg::Limit => OrderType::Limit,
            TypeArg::Market => OrderType::Market,
        },
        tif: match o.time_in_force.unwrap_or(TifArg::Gtc) {
            TifArg::Gtc => TimeInForce::Gtc,
            TifArg::Ioc => TimeInForce::Ioc,
            TifArg::Fok => TimeInForce::Fok,
        },
        price: o.price,
        qty: o.quantity,
        post_only: o.post_only,
    };
    let report = ctx.desk.place(req).await.map_err(desk_error)?;
    let v = order_json(&report);
    if report.status == crate::desk::Status::Rejected {
        // Refused: an error result the model reads, with the reason code.
        let (code, msg) = report.reason.clone().unwrap_or_default();
        let mut out = ToolOutput::structured(v);
        out.is_error = true;
        out.content.insert(0, plexus_core::Content::text(format!("order rejected ({code}): {msg}")));
        return Ok(out);
    }
    Ok(ToolOutput::structured(v))
}

async fn cancel_tool(ctx: Arc<Ctx>, cx: CallContext, a: CancelArgs) -> Result<ToolOutput, ToolError> {
    let account = ctx.portfolio(&cx, &a.portfolio_id)?.to_owned();
    let order = match (a.order_id, a.client_order_id) {
        (Some(id), None) => OrderRef::Id(id),
        (None, Some(c)) => OrderRef::Client(c),
        _ => return Err(ToolError::InvalidArguments("give exactly one of orderId and clientOrderId".into())),
    };
    let report = ctx.desk.cancel(&account, order).await.map_err(desk_error)?;
    Ok(ToolOutput::structured(order_json(&report)))
}

async fn positions_tool(ctx: Arc<Ctx>, cx: CallContext, a: PortfolioArgs) -> Result<ToolOutput, ToolError> {
    let account = ctx.portfolio(&cx, &a.portfolio_id)?;
    let positions = ctx.desk.positions(account).map_err(desk_error)?;
    let open = ctx.desk.open_orders(account).map_err(desk_error)?;
    let list: Vec<Value> = positions
        .iter()
        .map(|p| {
            json!({
                "symbol": p.symbol, "quantity": p.qty, "averagePrice": p.avg_price, "markPrice": p.mark,
                "marketValue": p.market_value, "realizedPnl": p.realized_pnl, "unrealizedPnl": p.unrealized_pnl,
            })
        })
        .collect();
    Ok(ToolOutput::structured(json!({
        "portfolioId": account,
        "positions": list,
        "totals": {
            "marketValue": positions.iter().map(|p| p.market_value).sum::<f64>(),
            "grossExposure": positions.iter().map(|p| p.market_value.abs()).sum::<f64>(),
            "realizedPnl": positions.iter().map(|p| p.realized_pnl).sum::<f64>(),
            "unrealizedPnl": positions.iter().map(|p| p.unrealized_pnl).sum::<f64>(),
        },
        "openOrders": open.iter().map(order_json).collect::<Vec<_>>(),
        "marks": "last trade on the internal venue, else the reference price",
    })))
}

async fn risk_tool(ctx: Arc<Ctx>, cx: CallContext, a: RiskArgs) -> Result<ToolOutput, ToolError> {
    let account = ctx.portfolio(&cx, &a.portfolio_id)?;
    let positions: Vec<_> =
        ctx.desk.positions(account).map_err(desk_error)?.into_iter().filter(|p| p.qty != 0.0).collect();
    if positions.is_empty() {
        return Err(failed(format!("portfolio `{account}` holds no positions: there is no risk to measure")));
    }
    let mut holdings = Vec::new();
    let mut stress_positions = Vec::new();
    for p in &positions {
        let mark = p.mark.unwrap_or(p.avg_price);
        let prices = ctx.history.prices(&p.symbol, mark);
        holdings.push(Holding { symbol: p.symbol.clone(), quantity: p.qty, prices });
        stress_positions.push(analytics::Position {
            symbol: p.symbol.clone(),
            quantity: p.qty,
            price: mark,
            sector: ctx.sectors.get(&p.symbol).cloned(),
            factor_betas: [("market".to_owned(), ctx.history.beta(&p.symbol))].into(),
        });
    }
    let returns = analytics::portfolio_returns(&holdings).map_err(|e| failed(e.to_string()))?;
    let benchmark = ctx.history.market_returns();
    let summary = analytics::risk_summary(&returns, Some(&benchmark), &RiskParams::default())
        .map_err(|e| failed(e.to_string()))?;
    let scenarios = match a.scenario {
        Some(s) => {
            for (k, v) in s.symbol_shocks.iter().chain(&s.factor_shocks) {
                if !v.is_finite() || *v < -1.0 || *v > 10.0 {
                    return Err(ToolError::InvalidArguments(format!(
                        "shock `{k}` must be a return in [-1, 10], not {v}"
                    )));
                }
            }
            vec![Scenario { name: s.name, symbol_shocks: s.symbol_shocks, factor_shocks: s.factor_shocks }]
        }
        None => vec![
            Scenario {
                name: "market -10%".into(),
                symbol_shocks: BTreeMap::new(),
                factor_shocks: [("market".to_owned(), -0.10)].into(),
            },
            Scenario {
                name: "market -20%, crypto -40%".into(),
                symbol_shocks: [("BTC-USD".to_owned(), -0.40)].into(),
                factor_shocks: [("market".to_owned(), -0.20)].into(),
            },
        ],
    };
    let mut stress = Vec::new();
    for s in &scenarios {
        stress.push(analytics::stress_test(&stress_positions, s).map_err(|e| failed(e.to_string()))?);
    }
    let warnings = analytics::concentration_warnings(&stress_positions, &ConcentrationLimits::default())
        .map_err(|e| failed(e.to_string()))?;
    let value: f64 = positions.iter().map(|p| p.market_value).sum();
    let to_money = |r: f64| -r * value.abs();
    Ok(ToolOutput::structured(json!({
        "portfolioId": account,
        "history": ctx.history.label(),
        "marketValue": value,
        "metrics": summary,
        "varAmount": {
            "historical95": to_money(summary.tail_95.historical_var),
            "historical99": to_money(summary.tail_99.historical_var),
            "parametric95": to_money(summary.tail_95.parametric_var),
            "parametric99": to_money(summary.tail_99.parametric_var),
            "expectedShortfall95": to_money(summary.tail_95.expected_shortfall),
            "expectedShortfall99": to_money(summary.tail_99.expected_shortfall),
        },
        "stressTests": stress,
        "recommendations": warnings.iter().map(|w| w.recommendation.clone()).collect::<Vec<_>>(),
        "concentration": warnings,
        "conventions": "daily simple returns; VaR and ES as empyrical computes them (returns, negative for losses); amounts = -return x market value; Sharpe and Sortino annualized over 252 days with no risk-free rate; beta against the simulated market factor",
    })))
}

async fn compliance_tool(ctx: Arc<Ctx>, _cx: CallContext, a: ComplianceArgs) -> Result<ToolOutput, ToolError> {
    let parse = |name: &str, t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| ToolError::InvalidArguments(format!("{name}: `{t}` is not an RFC 3339 time ({e})")))
    };
    let (from, to) = (parse("from", &a.from)?, parse("to", &a.to)?);
    if to <= from {
        return Err(ToolError::InvalidArguments("`to` must be after `from`".into()));
    }
    let ns = |t: time::OffsetDateTime| u64::try_from(t.unix_timestamp_nanos()).unwrap_or(0);
    let (report, names) = ctx.desk.compliance(ns(from), ns(to));
    let csv = report.to_csv();
    let mut v = serde_json::to_value(&report).map_err(ToolError::internal)?;
    v["from"] = json!(a.from);
    v["to"] = json!(a.to);
    v["names"] = json!(names.iter().map(|(k, n)| (k.to_string(), n.clone())).collect::<BTreeMap<_, _>>());
    v["csv"] = json!(csv);
    Ok(ToolOutput::structured(v))
}

fn rfc3339_ns(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl Trading {
    /// The module over `ctx`.
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        let ctx = Arc::new(ctx);
        let c = |ctx: &Arc<Ctx>| Arc::clone(ctx);
        let (c1, c2, c3, c4, c5, c6) = (c(&ctx), c(&ctx), c(&ctx), c(&ctx), c(&ctx), c(&ctx));
        let c7 = c(&ctx);
        let tools = Toolbox::new(NAME)
            .typed_args(
                ToolDef::new(
                    "get_market_data",
                    "Quotes, recent trades, the order book and trade analytics (VWAP, volume, high, low) of symbols \
                     on the internal venue, and what the configured external feeds show for them (each entry names \
                     its venue, with the feed's status and the data's age)",
                )
                .title("Get market data")
                .read_only(),
                move |cx: CallContext, a: MarketArgs| market_tool(Arc::clone(&c1), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "place_order",
                    "Place an order for a portfolio: pre-trade risk checks, then compliance, then the venue; the \
                     answer has the order id, status, executed quantity, average price and the risk metrics used. \
                     Idempotent under clientOrderId",
                )
                .title("Place an order")
                .destructive(true)
                .idempotent(),
                move |cx: CallContext, a: OrderArgs| place_tool(Arc::clone(&c2), cx, a),
            )
            .typed_args(
                ToolDef::new("cancel_order", "Cancel an open order of a portfolio by orderId or clientOrderId")
                    .title("Cancel an order")
                    .destructive(true)
                    .idempotent(),
                move |cx: CallContext, a: CancelArgs| cancel_tool(Arc::clone(&c3), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "get_portfolio_positions",
                    "A portfolio's positions with average price, mark, realized and unrealized P&L, and its open orders",
                )
                .title("Portfolio positions")
                .read_only(),
                move |cx: CallContext, a: PortfolioArgs| positions_tool(Arc::clone(&c4), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "calculate_risk",
                    "A portfolio's risk: historical and parametric VaR (95%, 99%), expected shortfall, beta, Sharpe, \
                     Sortino, maximum drawdown, stress tests and concentration warnings",
                )
                .title("Calculate risk")
                .read_only(),
                move |cx: CallContext, a: RiskArgs| risk_tool(Arc::clone(&c5), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "generate_compliance_report",
                    "Orders, fills, rejections by reason and surveillance alerts (wash trades, spoofing, layering, \
                     order-to-trade ratio) with evidence over a time range, as structured data and CSV",
                )
                .title("Compliance report")
                .read_only(),
                move |cx: CallContext, a: ComplianceArgs| compliance_tool(Arc::clone(&c6), cx, a),
            )
            .typed_args(
                ToolDef::new(
                    "list_portfolios",
                    "The portfolios you may trade and the symbols listed on the internal venue and the external feeds",
                )
                .title("List portfolios and markets")
                .read_only()
                .idempotent(),
                move |cx: CallContext, _a: NoArgs| {
                    let ctx = Arc::clone(&c7);
                    async move {
                        let portfolios: Vec<String> =
                            ctx.desk.accounts().into_iter().filter(|a| ctx.portfolio(&cx, a).is_ok()).collect();
                        let feeds: Vec<Value> = ctx
                            .feeds
                            .iter()
                            .map(|f| json!({"name": f.name(), "style": f.style(), "status": f.status().to_string(),
                                "symbols": f.view(0).symbols.into_iter().map(|v| v.symbol).collect::<Vec<_>>()}))
                            .collect();
                        Ok(ToolOutput::structured(json!({
                            "portfolios": portfolios, "symbols": ctx.desk.symbols(), "feeds": feeds,
                            "simulated": ctx.simulated,
                        })))
                    }
                },
            );
        Self { tools, ctx }
    }

    /// The desk.
    #[must_use]
    pub fn desk(&self) -> &Desk {
        &self.ctx.desk
    }
}

/// `market://{symbol}/{view}` → (symbol, feed, view); `{symbol}@{feed}` names an external feed.
#[must_use]
pub fn parse_uri(uri: &str) -> Option<(&str, Option<&str>, &str)> {
    let rest = uri.strip_prefix("market://")?;
    let (symbol, view) = rest.rsplit_once('/')?;
    if !matches!(view, "quote" | "trades" | "book" | "deltas") {
        return None;
    }
    match symbol.rsplit_once('@') {
        Some((symbol, feed)) if !symbol.is_empty() && !feed.is_empty() => Some((symbol, Some(feed), view)),
        Some(_) => None,
        None => Some((symbol, None, view)),
    }
}

impl Trading {
    fn read_internal(&self, symbol: &str, view: &str) -> Option<Value> {
        let desk = &self.ctx.desk;
        if view == "deltas" {
            let d = desk.book_deltas(symbol, 0)?;
            return Some(json!({
                "symbol": d.symbol, "venue": "internal", "sequence": d.sequence,
                "deltas": d.deltas.iter().map(|l| json!({
                    "sequence": l.sequence, "side": l.side.as_str(), "price": l.price, "quantity": l.qty, "orders": l.orders,
                })).collect::<Vec<_>>(),
                "note": format!("the last {} L2 changes, oldest first: apply those with a sequence above a book snapshot's (market://{symbol}/book) to follow the book; quantity 0 removes the level", crate::desk::DELTA_RING),
            }));
        }
        let m = desk.market(symbol, 20, crate::desk::TRADE_RING)?;
        Some(match view {
            "quote" => {
                json!({"symbol": m.symbol, "venue": "internal", "bid": m.bid, "ask": m.ask, "last": m.last, "referencePrice": m.reference})
            }
            "trades" => json!({"symbol": m.symbol, "venue": "internal", "trades": m.trades.iter().map(|t| json!({
                "tradeId": t.trade_id, "price": t.price, "quantity": t.qty, "aggressor": t.aggressor.as_str(), "time": rfc3339_ns(t.ts_ns),
            })).collect::<Vec<_>>()}),
            _ => {
                json!({"symbol": m.symbol, "venue": "internal", "sequence": m.book_sequence, "bids": m.bids, "asks": m.asks})
            }
        })
    }

    fn read_feed(&self, symbol: &str, feed: Option<&str>, view: &str) -> Option<Value> {
        if view == "deltas" {
            return None;
        }
        let (feed, v) = self
            .ctx
            .feeds
            .iter()
            .filter(|f| feed.is_none_or(|name| f.name() == name))
            .find_map(|f| f.symbol(symbol, 20).map(|v| (f, v)))?;
        let types: BTreeSet<DataType> = match view {
            "quote" => [DataType::Quotes].into(),
            "trades" => [DataType::Trades].into(),
            _ => [DataType::Orderbook].into(),
        };
        Some(feed_entry(feed, &v, &types))
    }
}

#[async_trait::async_trait]
impl Module for Trading {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tools(&self) -> Vec<plexus_core::ToolSpec> {
        self.tools.specs()
    }

    fn resource_templates(&self) -> Vec<ResourceTemplateSpec> {
        vec![
            ResourceTemplateSpec::new(MARKET_TEMPLATE, "market data")
                .description(
                    "market://7203.T/quote, market://7203.T/trades (the last 1,000), market://7203.T/book (L2 with \
                     its sequence number), market://7203.T/deltas (the last 1,000 L2 changes); an external \
                     feed's data: market://BTCUSDT@binance/quote, /trades, /book",
                )
                .mime_type("application/json"),
        ]
    }

    async fn call(&self, cx: &CallContext, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        self.tools.call(cx, tool, args).await
    }

    async fn read(&self, _cx: &CallContext, uri: &str) -> Result<ResourceContents, ToolError> {
        let (symbol, feed, view) = parse_uri(uri).ok_or_else(|| ToolError::unknown_resource(uri))?;
        let v = match feed {
            None => self.read_internal(symbol, view).or_else(|| self.read_feed(symbol, None, view)),
            Some(_) => self.read_feed(symbol, feed, view),
        }
        .ok_or_else(|| ToolError::unknown_resource(uri))?;
        Ok(ResourceContents::text(uri, Some("application/json"), v.to_string()))
    }
}

/// Announce market data changes on `bus` as `market://{symbol}/…` updates
/// (the internal venue's, and each feed's as `market://{symbol}@{feed}/…`,
/// plus `market://{symbol}/…` when the internal venue does not list the
/// symbol), at most one per symbol and view every `every` (bursts coalesce).
pub fn notify_on(desk: &Desk, feeds: &[Arc<FeedHandle>], bus: plexus_core::bus::Bus, every: std::time::Duration) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = desk.subscribe();
    let listed: BTreeSet<String> = desk.symbols().into_iter().collect();
    let (feed_tx, mut feed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for feed in feeds {
        let mut events = feed.subscribe();
        let (name, tx) = (feed.name().to_owned(), feed_tx.clone());
        tokio::spawn(async move {
            loop {
                let symbol = match events.recv().await {
                    Ok(FeedEvent::Quote(q)) => q.symbol,
                    Ok(FeedEvent::Trade(t)) => t.symbol,
                    Ok(FeedEvent::Book { symbol, .. } | FeedEvent::SymbolStatus { symbol, .. }) => symbol,
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                if tx.send(format!("{symbol}@{name}")).is_err() {
                    break;
                }
            }
        });
    }
    drop(feed_tx);
    tokio::spawn(async move {
        let mut pending: BTreeSet<String> = BTreeSet::new();
        let mut tick = tokio::time::interval(every);
        let publish = |uri: String| bus.publish(plexus_core::context::Notification::ResourceUpdated(uri));
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(symbol) => { pending.insert(symbol); }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                },
                Some(key) = feed_rx.recv() => { pending.insert(key); }
                _ = tick.tick() => {
                    for key in std::mem::take(&mut pending) {
                        match key.split_once('@') {
                            None => for view in ["quote", "trades", "book", "deltas"] {
                                publish(format!("market://{key}/{view}"));
                            },
                            Some((symbol, _)) => for view in ["quote", "trades", "book"] {
                                publish(format!("market://{key}/{view}"));
                                if !listed.contains(symbol) {
                                    publish(format!("market://{symbol}/{view}"));
                                }
                            },
                        }
                    }
                }
            }
        }
    });
}
