// A scripted session of the MCP project's TypeScript SDK client against xcore-server's /mcp: initialize,
// list, a call with progress, a cancelled call, resources, prompts, a completion, and the session's end.
// Exits 0 and prints "sdk session: ok" when every step held; otherwise throws, naming the step.
//   node sdk_session.mjs URL TOKEN
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = [process.argv[2], process.argv[3]];
const check = (ok, step, seen) => {
  if (!ok) throw new Error(`${step}: ${JSON.stringify(seen)}`);
};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
const client = new Client({ name: "sdk-session", version: "1" });
await client.connect(transport);
check(transport.sessionId, "initialize gives a session", transport.sessionId);
check(client.getServerCapabilities()?.resources?.subscribe === true, "capabilities", client.getServerCapabilities());

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
check(names.includes("test_tool_with_progress") && names.includes("hold"), "tools/list", names);

// Progress reaches the SDK's onprogress while the call runs.
const progress = [];
const done = await client.callTool({ name: "test_tool_with_progress", arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress) });
check(!done.isError && progress.join(",") === "0,50,100", "progress", { done, progress });

// A call the client gives up on: the SDK sends notifications/cancelled, the server stops the call.
const abort = new AbortController();
const held = client.callTool({ name: "hold", arguments: {} }, undefined, { signal: abort.signal });
setTimeout(() => abort.abort("the test gave up"), 200);
let cancelled = false;
try {
  await held;
} catch (e) {
  cancelled = true;
}
check(cancelled, "cancel", "the held call answered instead of being cancelled");
await client.ping();  // the session goes on

const { resources } = await client.listResources();
check(resources.some((r) => r.uri === "test://static-text"), "resources/list", resources);
const read = await client.readResource({ uri: "test://template/7/data" });
check(JSON.parse(read.contents[0].text).id === "7", "resources/read (template)", read);
const { resourceTemplates } = await client.listResourceTemplates();
check(resourceTemplates.some((t) => t.uriTemplate === "test://template/{id}/data"), "resources/templates/list", resourceTemplates);

const { prompts } = await client.listPrompts();
check(prompts.some((p) => p.name === "test_prompt_with_arguments"), "prompts/list", prompts);
const prompt = await client.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "a", arg2: "b" } });
check(prompt.messages[0].content.text === "Prompt with arguments: arg1='a', arg2='b'", "prompts/get", prompt);
const completed = await client.complete({ ref: { type: "ref/prompt", name: "test_prompt_with_arguments" }, argument: { name: "arg1", value: "pa" } });
check(completed.completion.values.join(",") === "paris,park,party", "completion/complete", completed);

// The session ends (DELETE); its id opens nothing afterwards.
const ended = transport.sessionId;
await transport.terminateSession();
const after = await fetch(url, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json, text/event-stream", "Mcp-Session-Id": ended,
             "MCP-Protocol-Version": "2025-11-25" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "ping" }),
});
check(after.status === 404, "the ended session is gone", after.status);
await client.close();
console.log("sdk session: ok");
