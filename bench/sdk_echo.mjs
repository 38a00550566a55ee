// The MCP project's TypeScript SDK client calling a server's echo tool over Streamable HTTP, one call at a
// time: the baseline bench/remote_mcp.sh measures xcore's url: client against. Prints one JSON line.
//   node sdk_echo.mjs URL CALLS
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, calls] = [process.argv[2], Number(process.argv[3] ?? 2000)];
const client = new Client({ name: "bench", version: "1" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const call = () => client.callTool({ name: "echo", arguments: { message: "hello from the bench" } });
for (let i = 0; i < 100; i++) await call();  // warm up
const times = [];
const start = process.hrtime.bigint();
for (let i = 0; i < calls; i++) {
  const t0 = process.hrtime.bigint();
  await call();
  times.push(Number(process.hrtime.bigint() - t0) / 1000);
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
times.sort((a, b) => a - b);
console.log(JSON.stringify({ calls_per_s: calls / seconds, p50_us: times[Math.floor(calls / 2)], p99_us: times[Math.floor(calls * 0.99)] }));
await client.close();
