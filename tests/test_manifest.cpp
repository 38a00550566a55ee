#include <doctest/doctest.h>
#include <xcore/manifest.hpp>

#include "support/test_support.hpp"

#include <boost/json/parse.hpp>

#include <string>

using xcore::match_route;
using xcore::parse_manifest;
using xcore::PluginRoute;

namespace {

const std::string kValid = R"(id: demo
name: Demo
version: 1.2.3
description: a demo
tags: [a, b]
mode: trusted
entry: libdemo.so
api_version: "^1.0"
requires:
  core: "^1.0"
permissions: ["tools.call:core.*"]
limits: {max_concurrency: 4, timeout_ms: 2500}
config_schema:
  type: object
  properties:
    root: {type: string, default: "/srv"}
tools:
  - name: greet
    description: says hello
    inputSchema: {type: object, properties: {name: {type: string}}}
)";

// Replaces one line of the valid manifest (matched by its prefix) with `line` (or removes it).
std::string with(const std::string& prefix, const std::string& line) {
  std::string out;
  std::size_t pos = 0;
  bool replaced = false;
  while (pos < kValid.size()) {
    auto end = kValid.find('\n', pos);
    std::string l = kValid.substr(pos, end - pos);
    if (!replaced && l.rfind(prefix, 0) == 0) {
      if (!line.empty()) out += line + "\n";
      replaced = true;
      // A top-level key's indented children go with it.
      while (prefix[0] != ' ' && end != std::string::npos && end + 1 < kValid.size() && kValid[end + 1] == ' ') end = kValid.find('\n', end + 1);
    } else {
      out += l + "\n";
    }
    pos = end == std::string::npos ? kValid.size() : end + 1;
  }
  if (!replaced) out += line + "\n";
  return out;
}

// The manifest must be refused with a message naming the file, the field and `expected`.
void refused(const std::string& text, const std::string& field, const std::string& expected) {
  auto r = parse_manifest(text, "plugins/demo/plugin.yaml");
  REQUIRE_MESSAGE(!r.ok(), "accepted although '" << field << "' is broken");
  const auto& msg = r.error().message;
  CHECK(r.error().code == xcore::ErrorCode::invalid_argument);
  CHECK_MESSAGE(msg.find("plugins/demo/plugin.yaml") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find("field '" + field + "'") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find(expected) != std::string::npos, msg);
}

}  // namespace

TEST_CASE("a valid manifest is read completely") {
  auto r = parse_manifest(kValid, "plugins/demo/plugin.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const auto& m = r->manifest;
  CHECK(m.id == "demo");
  CHECK(m.version.to_string() == "1.2.3");
  CHECK(m.tags.size() == 2);
  CHECK(m.mode == xcore::PluginMode::trusted);
  CHECK(m.binary() == "plugins/demo/libdemo.so");
  REQUIRE(m.dependencies.size() == 1);
  CHECK(m.dependencies[0].id == "core");
  CHECK(m.limits.max_concurrency == 4u);
  CHECK(m.limits.timeout->count() == 2500);
  REQUIRE(m.config_schema);
  REQUIRE(m.tools.size() == 1);
  CHECK(m.tools[0].plugin == "demo");
  CHECK(r->warnings.empty());
}

TEST_CASE("the same manifest as JSON") {
  auto r = parse_manifest(R"({"id":"demo","version":"1.0.0","entry":"libdemo.so","requires":[{"id":"core","version":">=1"}]})",
                          "plugin.json");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->manifest.dependencies.at(0).versions.text() == ">=1");
}

TEST_CASE("every broken field is named with what is expected") {
  refused(with("id:", ""), "id", "is required");
  refused(with("id:", "id: Demo!"), "id", "is not a plugin id");
  refused(with("id:", "id: [a]"), "id", "expected a plugin id");
  refused(with("version:", ""), "version", "is required");
  refused(with("version:", "version: 1.2"), "version", "semantic version");
  refused(with("version:", "version: 1.2.3.4"), "version", "semantic version");
  refused(with("mode:", "mode: isolated"), "mode", "expected 'trusted' or 'sandboxed'");
  refused(with("entry:", ""), "entry", "is required");
  refused(with("entry:", "entry: /usr/lib/libevil.so"), "entry", "relative");
  refused(with("entry:", "entry: ../other/libx.so"), "entry", "no '..'");
  refused(with("api_version:", "api_version: \"^^1\""), "api_version", "version range");
  refused(with("tags:", "tags: [a, [b]]"), "tags[1]", "expected a string");
  refused(with("tags:", "tags: nope"), "tags", "expected a list of strings");
  refused(with("requires:", "requires: [\"Bad Id\"]"), "requires[0]", "is not a plugin id");
  refused(with("requires:", "requires: {core: \"^1.q\"}"), "requires.core", "version range");
  refused(with("requires:", "requires: {demo: \"*\"}"), "requires.demo", "cannot require itself");
  refused(with("requires:", "requires: 5"), "requires", "expected a mapping");
  refused(with("permissions:", "permissions: tools"), "permissions", "expected a list of strings");
  refused(with("limits:", "limits: {max_concurrency: -1}"), "limits.max_concurrency", "positive whole number");
  refused(with("limits:", "limits: {timeout_ms: soon}"), "limits.timeout_ms", "positive whole number");
  refused(with("limits:", "limits: 3"), "limits", "expected a mapping");
  const std::string minimal = "id: demo\nversion: 1.0.0\nentry: libdemo.so\n";
  refused(minimal + "config_schema: 12\n", "config_schema", "expected a JSON Schema object");
  // Every problem of a schema, each at its place.
  refused(minimal + "config_schema: {type: object, properties: {a: {type: nonsense}, b: {minimum: one}}, required: b}\n",
          "config_schema.properties.a.type", "not a valid JSON Schema: expected one of \"array\", \"boolean\"");
  refused(minimal + "config_schema: {type: object, properties: {a: {type: nonsense}, b: {minimum: one}}, required: b}\n",
          "config_schema.properties.b.minimum", "expected number, got string \"one\"");
  refused(minimal + "config_schema: {type: object, properties: {a: {type: nonsense}, b: {minimum: one}}, required: b}\n",
          "config_schema.required", "expected array, got string \"b\"");
  // Unknown permissions are refused, with the closest valid one.
  refused(minimal + "permissions: [\"tools.cal:core.echo\"]\n", "permissions[0]", "did you mean 'tools.call:core.echo'?");
  refused(minimal + "permissions: [\"fly.to:moon\"]\n", "permissions[0]", "unknown permission 'fly.to:moon'; a plugin may be granted tools.call:...");
  refused(minimal + "permissions: [\"network\", \"netwrk\"]\n", "permissions[1]", "did you mean 'network'?");
  refused(minimal + "permissions: [\"hooks.emit:\"]\n", "permissions[0]", "needs a name or pattern after 'hooks.emit:'");
  refused(with("  - name: greet", "  - name: \"bad name!\""), "tools[0]", "not a valid tool name");
  refused(with("    inputSchema:", "    inputSchema: {type: string}"), "tools[0]", "must describe an object");
  refused(with("limits:", "limits: {rate: 10}"), "limits.rate", "expected {calls: N, per_seconds: S}");
  refused(with("limits:", "limits: {rate: {per_seconds: 60}}"), "limits.rate.calls", "required");
  refused(with("limits:", "limits: {rate: {calls: 0}}"), "limits.rate.calls", "positive whole number");
  refused(with("permissions:", "permissions: [\"fs.write:\"]"), "permissions[0]", "needs a path");
  refused(minimal + "routes: {path: /x}\n", "routes", "expected a list of routes");
  refused(minimal + "routes: [{method: FETCH, path: /x, action: a}]\n", "routes[0].method", "expected GET, POST");
  refused(minimal + "routes: [{method: GET, path: x, action: a}]\n", "routes[0].path", "must start with '/'");
  refused(minimal + "routes: [{method: GET, path: /a/../b, action: a}]\n", "routes[0].path", "segments are");
  refused(minimal + "routes: [{method: GET, path: /a}]\n", "routes[0].action", "must name the action");
  refused(minimal + "routes: [{method: GET, path: /a, action: a, role: Root!}]\n", "routes[0].role", "a role name is [a-z]");
}

TEST_CASE("routes and rate limits are read") {
  auto r = parse_manifest("id: demo\nversion: 1.0.0\nentry: libdemo.so\nlimits: {rate: {calls: 10, per_seconds: 5}}\n"
                          "routes:\n  - {method: get, path: \"/items/{id}\", action: item, role: viewer}\n  - {method: POST, path: /, action: create}\n",
                          "plugin.yaml");
  REQUIRE(r.ok());
  CHECK(*r->manifest.limits.rate_calls == 10);
  CHECK(r->manifest.limits.rate_period == std::chrono::seconds(5));
  REQUIRE(r->manifest.routes.size() == 2);
  CHECK(r->manifest.routes[0].method == "GET");
  CHECK(r->manifest.routes[0].path == "/items/{id}");
  CHECK(r->manifest.routes[0].role == "viewer");
  CHECK(r->manifest.routes[1].role.empty());  // the host's default
}

TEST_CASE("match_route: literal segments, {name} parameters, method, and nothing else") {
  std::vector<PluginRoute> routes{{"GET", "/items/{id}", "item", ""}, {"POST", "/items", "create", ""}, {"GET", "/", "root", ""},
                                  {"GET", "/items/{id}/tags/{tag}", "tag", ""}};
  auto m = match_route(routes, "GET", "/items/42");
  REQUIRE(m.route);
  CHECK(m.route->action == "item");
  CHECK(m.params == boost::json::parse(R"({"id":"42"})").as_object());
  CHECK(match_route(routes, "GET", "//items//42/").route->action == "item");
  auto two = match_route(routes, "GET", "/items/7/tags/red");
  REQUIRE(two.route);
  CHECK(two.params == boost::json::parse(R"({"id":"7","tag":"red"})").as_object());
  CHECK(match_route(routes, "POST", "/items").route->action == "create");
  CHECK(match_route(routes, "GET", "/").route->action == "root");
  CHECK(!match_route(routes, "DELETE", "/items/42").route);
  CHECK(!match_route(routes, "GET", "/items/42/extra").route);
  CHECK(!match_route(routes, "GET", "/other/42").route);
}

TEST_CASE("all problems are reported at once, with details as JSON") {
  auto r = parse_manifest("id: X\nversion: one\nentry: /abs.so\n", "p.yaml");
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("field 'id'") != std::string::npos);
  CHECK(r.error().message.find("field 'version'") != std::string::npos);
  CHECK(r.error().message.find("field 'entry'") != std::string::npos);
  CHECK(r.error().details.find("\"field\":\"version\"") != std::string::npos);
}

TEST_CASE("duplicate tools are refused") {
  std::string text = kValid + "  - name: greet\n";
  refused(text, "tools[1]", "declared twice");
}

TEST_CASE("unknown fields and limits are warnings, not errors") {
  auto r = parse_manifest(with("limits:", "limits: {max_concurrency: 2, gpu: 1}") + "colour: blue\n", "plugins/demo/plugin.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  REQUIRE(r->warnings.size() == 2);
  CHECK(r->warnings[0].find("limits.gpu") != std::string::npos);
  CHECK(r->warnings[1].find("field 'colour': unknown field") != std::string::npos);
}

TEST_CASE("syntax errors give a position") {
  auto y = parse_manifest("id: demo\n  version: [1.0\n", "bad.yaml");
  REQUIRE(!y.ok());
  CHECK_MESSAGE(y.error().message.find("bad.yaml: not valid YAML at line") != std::string::npos, y.error().message);
  auto j = parse_manifest("{\"id\": ", "bad.json");
  REQUIRE(!j.ok());
  CHECK(j.error().message.find("bad.json: not valid JSON") != std::string::npos);
  // JSON too says where: the missing comma after line 2's value is found at line 3, column 3.
  auto at = parse_manifest("{\n  \"id\": \"demo\"\n  \"version\": \"1.0.0\"\n}\n", "comma.json");
  REQUIRE(!at.ok());
  CHECK_MESSAGE(at.error().message.find("comma.json: not valid JSON at line 3, column 3") != std::string::npos, at.error().message);
  auto top = parse_manifest("- a\n- b\n", "list.yaml");
  REQUIRE(!top.ok());
  CHECK(top.error().message.find("mapping of fields") != std::string::npos);
  auto dup = parse_manifest("id: a\nid: b\n", "dup.yaml");
  REQUIRE(!dup.ok());
  CHECK(dup.error().message.find("appears twice") != std::string::npos);
}

TEST_CASE("quoted YAML scalars stay strings, plain ones get types") {
  auto r = parse_manifest("id: demo\nversion: 1.0.0\nentry: libdemo.so\n"
                          "config_schema: {type: object, properties: {n: {type: integer, default: 5}, s: {type: string, default: \"5\"}}}\n",
                          "p.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const auto& props = r->manifest.config_schema->at("properties").as_object();
  CHECK(props.at("n").at("default").is_int64());
  CHECK(props.at("s").at("default").is_string());
}

TEST_CASE("config keys that grant a folder: fs.read or fs.write, a string, and privileged") {
  const std::string head = "id: demo\nversion: 1.0.0\nentry: libdemo.so\n";
  auto with_root = [&](const std::string& root) { return head + "config_schema: {type: object, properties: {root: " + root + "}}\n"; };
  auto ok = parse_manifest(with_root("{type: string, x-xcore-privileged: true, x-xcore-grant: fs.write}"), "plugins/demo/plugin.yaml");
  REQUIRE_MESSAGE(ok.ok(), ok.error().message);
  REQUIRE(ok->manifest.config_grants().size() == 1);
  CHECK(ok->manifest.config_grants()[0] == std::pair<std::string, std::string>{"root", "fs.write"});
  refused(with_root("{type: string, x-xcore-privileged: true, x-xcore-grant: network}"), "config_schema.properties.root", "\"fs.read\" or \"fs.write\"");
  refused(with_root("{type: integer, x-xcore-privileged: true, x-xcore-grant: fs.read}"), "config_schema.properties.root", "must be \"string\"");
  refused(with_root("{type: string, x-xcore-grant: fs.read}"), "config_schema.properties.root", "x-xcore-privileged");
}

TEST_CASE("a manifest file is parsed once per text: the same text is the same parse, a changed one is read anew") {
  xcore_test::TempDir tmp;
  const auto file = tmp / "plugin.yaml";
  xcore_test::write_file(file, "id: shared\nversion: 1.0.0\nentry: libshared.so\n");
  auto first = xcore::load_manifest_shared(file);
  auto again = xcore::load_manifest_shared(file);
  REQUIRE(first);
  REQUIRE(again);
  CHECK(first->get() == again->get());  // one parse for every Manager reading this folder
  xcore_test::write_file(file, "id: shared\nversion: 1.1.0\nentry: libshared.so\n");
  auto changed = xcore::load_manifest_shared(file);
  REQUIRE(changed);
  CHECK(changed->get() != first->get());
  CHECK((*changed)->manifest.version.to_string() == "1.1.0");
  CHECK((*first)->manifest.version.to_string() == "1.0.0");  // holders of the old one keep it unchanged
  // A broken text is an error each time it is read, never a kept result.
  xcore_test::write_file(file, "id: [\n");
  CHECK_FALSE(xcore::load_manifest_shared(file));
  CHECK_FALSE(xcore::load_manifest_shared(file));
}
