// Benchmark peer: the official MCP TypeScript SDK (1.x) in its documented
// *stateless* Streamable HTTP mode (see the SDK's
// src/examples/server/simpleStatelessStreamableHttp.ts and docs/server.md):
// a fresh McpServer + StreamableHTTPServerTransport with
// `sessionIdGenerator: undefined` per POST, `enableJsonResponse: true` so every
// answer is a single application/json body (no SSE framing).
//
// One tool, `echo` ({"text": string}) -> text content with that text.
//
//   PORT=8081 node server.mjs          # POST http://127.0.0.1:8081/mcp
//   HOST=0.0.0.0 PORT=8081 node server.mjs
//
// GET /healthz answers 200 "ok" for readiness polling by the load harness.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import * as z from 'zod/v4';

const PORT = Number.parseInt(process.env.PORT ?? '8081', 10);
const HOST = process.env.HOST ?? '127.0.0.1';

function buildServer() {
  const server = new McpServer({ name: 'bench-peer-ts', version: '1.0.0' });
  server.registerTool(
    'echo',
    {
      description: 'Echo the given text back as text content',
      inputSchema: { text: z.string().describe('Text to echo') },
    },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  );
  return server;
}

// createMcpExpressApp() = express() + express.json() + DNS-rebinding host
// validation when bound to a loopback host.
const app = createMcpExpressApp({ host: HOST });

app.get('/healthz', (_req, res) => {
  res.status(200).type('text/plain').send('ok');
});

app.post('/mcp', async (req, res) => {
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined, // stateless: no Mcp-Session-Id, no initialize required
    enableJsonResponse: true,
  });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  } catch (error) {
    console.error('Error handling MCP request:', error);
    if (!res.headersSent) {
      res.status(500).json({
        jsonrpc: '2.0',
        error: { code: -32603, message: 'Internal server error' },
        id: null,
      });
    }
  }
});

// Stateless mode has no standalone SSE stream and no sessions to delete.
const methodNotAllowed = (_req, res) => {
  res.status(405).set('Allow', 'POST').json({
    jsonrpc: '2.0',
    error: { code: -32000, message: 'Method not allowed.' },
    id: null,
  });
};
app.get('/mcp', methodNotAllowed);
app.delete('/mcp', methodNotAllowed);

const httpServer = app.listen(PORT, HOST, (error) => {
  if (error) {
    console.error('Failed to start server:', error);
    process.exit(1);
  }
  console.log(`bench-peer-ts listening on http://${HOST}:${PORT}/mcp`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
