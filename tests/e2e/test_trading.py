"""The trading module end to end through the binary: orders over MCP HTTP
through the whole pipeline (risk, compliance, the venue, the journal),
positions, market data, risk and the compliance report; then `kill -9`
during a burst of orders and a restart that still holds every order that
was acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import _stop
from helpers import api_keys_toml, modern_call, start

ROLES = {"alice": "trader", "bob": "trader", "carol": "viewer"}
KEYS = {name: "pk_" + hashlib.sha256(b"trading " + name.encode()).hexdigest()[:32] for name in ROLES}
TOOLS = (
    '["get_market_data", "place_order", "cancel_order", "calculate_risk", "get_portfolio_positions", '
    '"generate_compliance_report"]'
)


def config(tmp_path: Path, journal_sync: str = "always") -> Path:
    keys = api_keys_toml([(n, k, "default", ROLES[n]) for n, k in KEYS.items()])
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        f"""
[modules]
enabled = ["system", "trading"]

[trading]
otr_limit = 1000000.0   # the kill -9 burst sends thousands of orders that never trade
sync = "{journal_sync}"

{keys}
[roles.trader]
tools = {TOOLS}
resources = ["market://*"]
[roles.viewer]
tools = {TOOLS}
""",
        encoding="utf-8",
    )
    return cfg


def call(url: str, who: str, tool: str, args: dict) -> dict:
    status, reply = modern_call(url, tool, args, key=KEYS[who], timeout=30)
    assert status == 200 and isinstance(reply, dict) and "result" in reply, reply
    return reply["result"]


def order(portfolio: str, side: str, price: float, qty: float, **extra: object) -> dict:
    return {"order": {"portfolioId": portfolio, "symbol": "7203.T", "side": side, "price": price, "quantity": qty, **extra}}


def test_orders_positions_risk_and_compliance(plexus_bin: str, tmp_path: Path) -> None:
    cfg, data = config(tmp_path), tmp_path / "data"
    proc, port = start([plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)], tmp_path / "log")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        sell = call(url, "bob", "place_order", order("fund-b-global", "sell", 3000.0, 500))
        assert not sell.get("isError") and sell["structuredContent"]["status"] == "new", sell
        risk = sell["structuredContent"]["riskMetrics"]
        assert risk["notional"] == 1_500_000.0 and risk["priceCollar"] == {"low": 2850.0, "high": 3150.0}, risk
        buy = call(url, "alice", "place_order", order("fund-a-tokyo", "buy", 3005.0, 300, clientOrderId="A-1"))["structuredContent"]
        assert (buy["status"], buy["executedQuantity"], buy["averagePrice"]) == ("filled", 300.0, 3000.0), buy
        again = call(url, "alice", "place_order", order("fund-a-tokyo", "buy", 3005.0, 300, clientOrderId="A-1"))["structuredContent"]
        assert again["orderId"] == buy["orderId"] and again["repeated"] is True

        # Refusals say why, and change nothing.
        for args, code in [
            (order("fund-a-tokyo", "buy", 3000.0, -100), "invalid_quantity"),
            (order("fund-a-tokyo", "buy", 3000.2, 100), "off_tick"),
            (order("fund-a-tokyo", "buy", 3500.0, 100), "price_collar"),
            (order("fund-a-tokyo", "buy", 3000.0, 150), "off_lot"),
        ]:
            r = call(url, "alice", "place_order", args)
            assert r["isError"] and r["structuredContent"]["reason"]["code"] == code, (code, r)
        # A portfolio the caller may not use looks like one that does not exist.
        theirs = call(url, "carol", "get_portfolio_positions", {"portfolioId": "fund-a-tokyo"})
        missing = call(url, "carol", "get_portfolio_positions", {"portfolioId": "no-such"})
        assert theirs["isError"] and missing["isError"]
        assert theirs["content"][0]["text"].replace("fund-a-tokyo", "X") == missing["content"][0]["text"].replace("no-such", "X")

        pos = call(url, "alice", "get_portfolio_positions", {"portfolioId": "fund-a-tokyo"})["structuredContent"]
        assert pos["positions"][0]["quantity"] == 300.0 and pos["positions"][0]["averagePrice"] == 3000.0, pos
        md = call(url, "alice", "get_market_data", {"symbols": ["7203.T", "NOPE"], "dataTypes": ["quotes", "trades", "orderbook", "analytics"]})["structuredContent"]
        q = md["symbols"][0]
        assert q["quote"]["ask"] == 3000.0 and q["quote"]["askSize"] == 200.0 and q["quote"]["last"] == 3000.0, q
        assert q["trades"][0]["aggressor"] == "buy" and q["analytics"]["vwap"] == 3000.0
        assert md["unknownSymbols"] == ["NOPE"]

        risk = call(url, "alice", "calculate_risk", {"portfolioId": "fund-a-tokyo"})["structuredContent"]
        assert "SIMULATED" in risk["history"] and risk["metrics"]["observations"] == 252
        assert risk["varAmount"]["historical99"] >= risk["varAmount"]["historical95"] > 0, risk["varAmount"]
        assert [s["scenario"] for s in risk["stressTests"]] == ["market -10%", "market -20%, crypto -40%"]
        assert risk["recommendations"], "one position is 100% of the book: a concentration warning"

        report = call(url, "alice", "generate_compliance_report", {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})["structuredContent"]
        assert report["orders"] == 2 and report["trades"] == 1, report
        assert report["rejections_by_reason"] == {"invalid_quantity": 1, "off_tick": 1, "price_collar": 1, "off_lot": 1}, report
        assert report["csv"].startswith("record,kind,ts_ns,accounts,symbol,order_ids,count,details")
    finally:
        _stop(proc)


def bid(worker: int, i: int) -> tuple[float, int]:
    """Bids inside the price collar (2850-3150) with nobody selling: nothing fills; price and
    size vary so that the duplicate-order check (same price and size within a second) rarely trips."""
    k = worker * 400 + i
    return 2860.0 + (k % 50) * 5.0, 100 * (1 + k % 7)


# "always": a writer thread, fdatasync per batch; "os": callers take turns as the writer (flat
# combining), write(2) per batch, which a killed process cannot undo.
@pytest.mark.parametrize("journal_sync", ["always", "os"])
def test_kill_9_during_a_burst_loses_no_acknowledged_order(plexus_bin: str, tmp_path: Path, journal_sync: str) -> None:
    cfg, data = config(tmp_path, journal_sync), tmp_path / "data"
    cmd = [plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(data)]
    proc, port = start(cmd, tmp_path / "log1")
    url = f"http://127.0.0.1:{port}/mcp"
    acked: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def burst(worker: int) -> None:
        for i in range(400):
            if stop.is_set():
                return
            cid = f"w{worker}-{i}"
            price, qty = bid(worker, i)
            try:
                status, reply = modern_call(url, "place_order", order("fund-a-tokyo", "buy", price, qty, clientOrderId=cid), key=KEYS["alice"], timeout=10)
            except Exception:  # noqa: BLE001 - the server was killed mid-request
                return
            if status == 200 and isinstance(reply, dict) and "result" in reply:
                sc = reply["result"].get("structuredContent") or {}
                if sc.get("status") == "new":
                    with lock:
                        acked[cid] = sc["orderId"]

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    # Kill once a good number of orders are acknowledged.
    for _ in range(6000):
        with lock:
            if len(acked) >= 300:
                break
        threading.Event().wait(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    proc.wait()
    assert len(acked) >= 300

    proc, port = start(cmd, tmp_path / "log2")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        open_orders = call(url, "alice", "get_portfolio_positions", {"portfolioId": "fund-a-tokyo"})["structuredContent"]["openOrders"]
        by_cid = {o["clientOrderId"]: o["orderId"] for o in open_orders}
        lost = {c: i for c, i in acked.items() if by_cid.get(c) != i}
        assert not lost, f"{len(lost)} acknowledged orders lost: {list(lost)[:5]}"
        # And the ids are still idempotent keys after the restart.
        cid, oid = next(iter(acked.items()))
        w, i = cid[1:].split("-")
        price, qty = bid(int(w), int(i))
        again = call(url, "alice", "place_order", order("fund-a-tokyo", "buy", price, qty, clientOrderId=cid))["structuredContent"]
        assert again["orderId"] == oid and again["repeated"] is True
        print(json.dumps({"acknowledged_before_kill": len(acked), "open_after_restart": len(open_orders)}))
    finally:
        _stop(proc)


class CoinbaseStyleVenue:
    """A local Coinbase-style market-data server (`level2_batch`, `matches`,
    `heartbeat`): answers the subscription with a snapshot, then sends what
    the test pushes."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[str] | None = None
        self.port = 0
        self.ready = threading.Event()
        self.subscribed = threading.Event()
        threading.Thread(target=self.loop.run_until_complete, args=(self.main(),), daemon=True).start()
        assert self.ready.wait(10)

    async def main(self) -> None:
        import asyncio

        from websockets.asyncio.server import serve

        self.queue = asyncio.Queue()

        async def handler(ws) -> None:
            request = json.loads(await ws.recv())
            assert request["type"] == "subscribe", request
            await ws.send(json.dumps({"type": "subscriptions", "channels": request["channels"]}))
            await ws.send(json.dumps({"type": "snapshot", "product_id": "BTC-USD",
                                      "bids": [["94990.50", "0.25"], ["94980.00", "1.5"]],
                                      "asks": [["95010.00", "0.4"]]}))
            self.subscribed.set()
            while True:
                await ws.send(await self.queue.get())

        async with serve(handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await asyncio.Future()

    def push(self, message: dict) -> None:
        assert self.queue is not None
        self.loop.call_soon_threadsafe(self.queue.put_nowait, json.dumps(message))


def test_an_external_feed_is_shown_and_announced_beside_the_internal_venue(plexus_bin: str, tmp_path: Path) -> None:
    """`[[trading.feeds]]` through the binary: get_market_data shows the feed's
    book next to the internal venue's, and a legacy subscriber to
    `market://BTC-USD@coinbase/quote` hears the feed's updates."""
    import anyio
    from mcp import Client

    venue = CoinbaseStyleVenue()
    cfg = tmp_path / "plexus.toml"
    cfg.write_text(
        f"""
[modules]
enabled = ["system", "trading"]

[auth]
anonymous_roles = ["admin"]

[[trading.feeds]]
name = "coinbase"
style = "coinbase"
url = "ws://127.0.0.1:{venue.port}"
symbols = ["BTC-USD"]
""",
        encoding="utf-8",
    )
    proc, port = start(
        [plexus_bin, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "data"), "--allow-anonymous"],
        tmp_path / "log",
    )
    url = f"http://127.0.0.1:{port}/mcp"
    uri = "market://BTC-USD@coinbase/quote"
    try:
        assert venue.subscribed.wait(20), "plexus never subscribed to the feed"

        def market() -> dict:
            status, reply = modern_call(url, "get_market_data", {"symbols": ["BTC-USD"], "dataTypes": ["quotes", "orderbook"]}, key=None)
            assert status == 200 and "result" in reply, reply
            return reply["result"]["structuredContent"]

        deadline = time.monotonic() + 20
        while (feed := [s for s in market()["symbols"] if s["venue"] == "coinbase"]) == [] or feed[0]["feed"]["status"] != "live":
            assert time.monotonic() < deadline, market()
            time.sleep(0.05)
        venues = [s["venue"] for s in market()["symbols"]]
        assert venues == ["internal", "coinbase"], venues
        q = feed[0]["quote"]
        assert (q["bid"], q["bidSize"], q["ask"], q["askSize"]) == (94990.5, 0.25, 95010.0, 0.4), q
        assert [lvl["price"] for lvl in feed[0]["orderbook"]["bids"]] == [94990.5, 94980.0]

        async def legacy() -> str:
            got = anyio.Event()
            heard: list[str] = []

            async def handler(message) -> None:
                root = getattr(message, "root", message)
                if getattr(root, "method", "") == "notifications/resources/updated":
                    heard.append(str(root.params.uri))
                    if str(root.params.uri) == uri:
                        got.set()

            with anyio.fail_after(30):
                async with Client(url, mode="legacy", read_timeout_seconds=20, message_handler=handler) as client:
                    await client.subscribe_resource(uri)
                    venue.push({"type": "l2update", "product_id": "BTC-USD", "time": "2026-11-22T00:00:00.000000Z",
                                "changes": [["buy", "95000.00", "2.0"]]})
                    await got.wait()
                    read = await client.read_resource(uri)
                    return read.contents[0].text

        quote = json.loads(anyio.run(legacy))
        assert quote["venue"] == "coinbase" and quote["quote"]["bid"] == 95000.0 and quote["quote"]["bidSize"] == 2.0, quote
        assert quote["feed"]["status"] == "live" and quote["feed"]["style"] == "coinbase", quote
    finally:
        _stop(proc)
