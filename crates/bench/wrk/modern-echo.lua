-- wrk script: a stateless 2026-07-28 tools/call of `echo`.
-- usage: [PLEXUS_KEY=pk_...] wrk -t2 -c16 -d10s -s crates/bench/wrk/modern-echo.lua http://127.0.0.1:PORT/mcp
-- With PLEXUS_KEY set, every request carries it as X-API-Key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "echo"
local key = os.getenv("PLEXUS_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},' ..
  '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

-- Each wrk thread runs its own Lua state: count there, sum in done().
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"text":"hello"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (t:get("bad") or 0)
  end
  io.write(string.format("bad responses: %d\n", total))
end
