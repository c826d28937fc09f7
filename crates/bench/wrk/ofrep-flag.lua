-- wrk script: OFREP single-flag evaluation, or (with PLEXUS_MCP=1) the same
-- evaluation as a stateless 2026-07-28 tools/call of `evaluate_feature_flag`.
-- Each request has its own targetingKey (user-<n>), so rollouts are computed, not cached.
-- usage: PLEXUS_KEY=pk_... wrk -t2 -c16 -d10s -s crates/bench/wrk/ofrep-flag.lua http://127.0.0.1:PORT/ofrep/v1/evaluate/flags/ai_assistant
local key = os.getenv("PLEXUS_KEY")
local mcp = os.getenv("PLEXUS_MCP") == "1"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  n = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
  if mcp then
    wrk.headers["Accept"] = "application/json, text/event-stream"
    wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
    wrk.headers["Mcp-Method"] = "tools/call"
    wrk.headers["Mcp-Name"] = "evaluate_feature_flag"
  end
end

function request()
  n = n + 1
  local ctx = '{"targetingKey":"user-' .. n .. '","team":"medical"}'
  local body
  if mcp then
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"evaluate_feature_flag","arguments":{"flag":"ai_assistant","context":' ..
      ctx .. '},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
  else
    body = '{"context":' .. ctx .. '}'
  end
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"reason":"SPLIT"', 1, true) then
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
