#include "node/mcp_servers.hpp"

#include <fstream>
#include <sstream>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <xcore/command_policy.hpp>
#include <xcore/run_program.hpp>

extern char** environ;

namespace xcore::node {

namespace fs = std::filesystem;

namespace {

Error refused(std::string message) { return Error{ErrorCode::invalid_argument, std::move(message)}; }

// The node's own PATH: npm and Node.js are found as its shell would find them.
std::optional<fs::path> on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  return sdk::find_program(program, path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
}

std::optional<std::string> installed_version(const fs::path& package) {
  std::ifstream in(package / "package.json");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto v = json::parse(text.str(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* ver = v.get_object().if_contains("version");
  if (!ver || !ver->is_string()) return std::nullopt;
  return std::string(ver->get_string());
}

Result<void> write_atomically(const fs::path& file, std::string_view text) {
  auto tmp = file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) return Error{ErrorCode::unavailable, fmt::format("cannot write {}", tmp.string())};
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot write {}: {}", file.string(), ec.message())};
  return ok();
}

std::string last_lines(std::string_view text, std::size_t n) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::size_t pos = text.size();
  for (std::size_t i = 0; i < n && pos != std::string_view::npos && pos > 0; ++i) pos = text.rfind('\n', pos - 1);
  return std::string(pos == std::string_view::npos ? text : text.substr(pos + 1));
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) s.replace(pos, from.size(), to);
  return s;
}

// A url: server must be on this machine: the node serves its own tools, it is no door into its network.
Result<std::string> loopback_url(std::string_view url) {
  for (std::string_view host : {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
    if (!url.starts_with(host)) continue;
    auto rest = url.substr(host.size());
    if (rest.empty() || rest.front() == '/' || rest.front() == ':') {
      if (url.find_first_of(" \t\r\n@") != std::string_view::npos) break;
      return std::string(url);
    }
  }
  return refused(fmt::format("url: '{}' is not an MCP server on this node: expected http://127.0.0.1:PORT/..., http://localhost:PORT/... or http://[::1]:PORT/...", url));
}

}  // namespace

McpServers::McpServers(Manager& manager, McpServersOptions options) : manager_(manager), options_(std::move(options)) {}

Result<std::vector<std::string>> McpServers::check_mounts(const McpPreset& preset, const json::value* mounts) const {
  std::vector<std::string> out;
  if (mounts && !mounts->is_array()) return refused("mounts: expected a list of folders");
  const auto n = mounts ? mounts->get_array().size() : 0;
  if (n < preset.min_mounts || n > preset.max_mounts)
    return refused(preset.max_mounts == 0 ? fmt::format("mounts: preset '{}' takes no folders", preset.name)
                                          : fmt::format("mounts: preset '{}' takes {} to {} folders, not {}", preset.name, preset.min_mounts, preset.max_mounts, n));
  for (std::size_t i = 0; i < n; ++i) {
    const auto& m = mounts->get_array()[i];
    if (!m.is_string()) return refused(fmt::format("mounts[{}]: expected a folder's absolute path", i));
    const fs::path asked(std::string(m.get_string()));
    if (!asked.is_absolute()) return refused(fmt::format("mounts[{}]: '{}' is not an absolute path", i, asked.string()));
    std::error_code ec;
    const auto real = fs::canonical(asked, ec);  // symlinks and ".." resolved before the check
    if (ec || !fs::is_directory(real, ec)) return Error{ErrorCode::not_found, fmt::format("mounts[{}]: '{}' is not a folder on this node", i, asked.string())};
    if (real == real.root_path()) return Error{ErrorCode::permission_denied, fmt::format("mounts[{}]: the root of the file system is never mounted", i)};
    bool inside = false;
    for (const auto& root : options_.roots) {
      auto rel = real.lexically_relative(root);
      if (!rel.empty() && *rel.begin() != "..") inside = true;
    }
    if (!inside)
      return Error{ErrorCode::permission_denied,
                   options_.roots.empty() ? fmt::format("mounts[{}]: this node serves no folders (start it with --root)", i)
                                          : fmt::format("mounts[{}]: '{}' is outside the folders this node serves", i, asked.string())};
    if (std::find(out.begin(), out.end(), real.string()) == out.end()) out.push_back(real.string());
  }
  return out;
}

// The package's folder: from a cache if one holds that version, else installed under <state>/packages by
// npm with install scripts off (they would run outside the sandbox, as the node).
Result<fs::path> McpServers::package_dir(const McpPreset& preset, std::chrono::steady_clock::time_point deadline, std::stop_token cancel) {
  std::error_code ec;
  for (const auto& cache : options_.caches) {
    auto dir = cache / "node_modules" / preset.package;
    if (installed_version(dir) == preset.version) return dir;
  }
  auto prefix = options_.state / "packages" / fmt::format("{}@{}", replace_all(preset.package, "/", "+"), preset.version);
  auto dir = prefix / "node_modules" / preset.package;
  if (installed_version(dir) == preset.version) return dir;
  auto npm = on_path("npm");
  if (!npm) return Error{ErrorCode::unavailable, fmt::format("{}@{} is in no cache (--mcp-cache) and npm is not installed", preset.package, preset.version)};
  fs::create_directories(prefix, ec);
  if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot make {}: {}", prefix.string(), ec.message())};
  sdk::ProgramSpec spec;
  spec.executable = *npm;
  spec.argv = {"npm", "install", "--prefix", prefix.string(), "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error",
               fmt::format("{}@{}", preset.package, preset.version)};
  spec.env = {"PATH=" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"), "HOME=" + (options_.state / "npm").string(),
              "npm_config_cache=" + (options_.state / "npm" / "cache").string(), "LANG=C.UTF-8"};
  // Where the registry is and how to reach it is the node's operator's choice: npm's settings and proxies
  // pass through from the node's environment.
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    for (std::string_view prefix : {"npm_config_", "NPM_CONFIG_", "HTTPS_PROXY=", "https_proxy=", "HTTP_PROXY=", "http_proxy=", "NO_PROXY=", "no_proxy="})
      if (kv.starts_with(prefix)) {
        spec.env.emplace_back(kv);
        break;
      }
  }
  spec.cwd = prefix;
  spec.deadline = std::min(deadline, std::chrono::steady_clock::now() + options_.install_timeout);
  spec.cancelled = [cancel] { return cancel.stop_requested(); };
  spec.output_cap = 64u << 10;
  if (options_.log) options_.log(LogLevel::info, "xcore-node", fmt::format("installing {}@{} with npm", preset.package, preset.version));
  sdk::ProgramRun run;
  try {
    run = sdk::run_program(spec);
  } catch (const std::runtime_error& e) {
    return Error{ErrorCode::unavailable, e.what()};
  }
  if (!run.succeeded() || installed_version(dir) != preset.version) {
    fs::remove_all(prefix, ec);
    auto why = run.timed_out ? std::string("it took too long") : run.cancelled ? std::string("it was cancelled") : last_lines(run.err, 3);
    return Error{ErrorCode::unavailable, fmt::format("installing {}@{} with npm failed: {}", preset.package, preset.version, why.empty() ? "no output" : why)};
  }
  return dir;
}

Result<json::object> McpServers::start(const json::value& params, std::chrono::steady_clock::time_point deadline, std::stop_token cancel) {
  if (!options_.allowed) return Error{ErrorCode::permission_denied, "this node does not start MCP servers (start it with --allow-mcp)"};
  const auto* p = params.is_object() ? &params.get_object() : nullptr;
  const auto* id_v = p ? p->if_contains("id") : nullptr;
  if (!id_v || !id_v->is_string() || !is_node_name(id_v->get_string())) return refused("id: 1-40 of a-z 0-9 - (not starting with -)");
  const std::string id(id_v->get_string());
  std::lock_guard lock(mutex_);
  const auto folder = plugins_dir(options_.state) / id;
  std::error_code ec;
  // A folder of ours is a server that exists; a plugin elsewhere (--plugins) owns its id. A slot left by a
  // start that failed (the Manager keeps what it discovered) is taken over.
  const auto other = manager_.info(id);
  if (fs::exists(folder, ec) || (other && other->manifest.dir().lexically_normal() != folder.lexically_normal()))
    return Error{ErrorCode::already_exists, fmt::format("this node already has a plugin '{}'", id)};

  json::object manifest{{"id", id}};
  json::object request{{"id", id}};
  if (const auto* url = p->if_contains("url")) {
    if (p->contains("preset")) return refused("give either 'preset' or 'url', not both");
    if (!url->is_string()) return refused("url: expected a string");
    XCORE_ASSIGN_OR_RETURN(auto checked, loopback_url(url->get_string()));
    manifest["name"] = fmt::format("MCP server at {}", checked);
    manifest["version"] = "1.0.0";
    manifest["url"] = checked;
    request["url"] = checked;
  } else {
    const auto* pv = p->if_contains("preset");
    const auto* name = pv && pv->is_object() ? pv->get_object().if_contains("name") : nullptr;
    if (!name || !name->is_string()) return refused("expected 'preset' (with its name) or 'url'");
    json::object fields = pv->get_object();
    fields.erase("name");
    XCORE_ASSIGN_OR_RETURN(auto preset, McpPreset::from_json(name->get_string(), fields));
    XCORE_ASSIGN_OR_RETURN(auto mounts, check_mounts(preset, p->if_contains("mounts")));
    auto node_js = on_path("node");
    if (!node_js) return Error{ErrorCode::unavailable, "Node.js ('node') is not on this node's PATH"};
    XCORE_ASSIGN_OR_RETURN(auto package, package_dir(preset, deadline, cancel));
    const auto data = (options_.data_dir / id).string();
    json::array command{json::value(node_js->string()), json::value((package / preset.entry).string())};
    for (const auto& a : preset.args) {
      if (a == "{mounts}")
        for (const auto& m : mounts) command.emplace_back(m);
      else
        command.emplace_back(replace_all(a, "{data}", data));
    }
    json::object env;
    for (const auto& [k, v] : preset.env) env[k] = replace_all(v, "{data}", data);
    // The whole node_modules folder: a package's dependencies sit beside it.
    json::array permissions{json::value("fs.read:" + package.parent_path().string())};
    if (preset.package.starts_with('@')) permissions[0] = json::value("fs.read:" + package.parent_path().parent_path().string());
    json::array mount_list;
    for (const auto& m : mounts) {
      permissions.emplace_back("fs.read:" + m);
      if (preset.writable) permissions.emplace_back("fs.write:" + m);
      mount_list.emplace_back(m);
    }
    manifest["name"] = fmt::format("{} (MCP preset)", preset.name);
    manifest["version"] = preset.version;
    manifest["description"] = preset.description;
    manifest["mode"] = "sandboxed";
    manifest["command"] = std::move(command);
    manifest["env"] = std::move(env);
    manifest["permissions"] = std::move(permissions);
    manifest["limits"] = json::object{{"memory_mb", preset.memory_mb}, {"timeout_ms", preset.timeout_ms}};
    request["preset"] = preset.name;
    request["mounts"] = std::move(mount_list);
    request["writable"] = preset.writable;
    request["package"] = fmt::format("{}@{}", preset.package, preset.version);
  }

  fs::create_directories(folder, ec);
  if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot make {}: {}", folder.string(), ec.message())};
  auto undo = [&] {
    (void)manager_.unload(id);
    std::error_code ignored;
    fs::remove_all(folder, ignored);
  };
  if (auto w = write_atomically(folder / "request.json", json::serialize(request)); !w) return undo(), w.error();
  if (auto w = write_atomically(folder / "plugin.json", json::serialize(manifest)); !w) return undo(), w.error();
  auto added = manager_.add(folder);
  if (!added) return undo(), Error{added.error().code, fmt::format("the server's manifest: {}", added.error().message)};
  if (auto r = manager_.enable(id); !r) {
    undo();
    return Error{r.error().code, fmt::format("MCP server '{}' did not start: {}", id, r.error().message), r.error().details};
  }
  if (options_.log) options_.log(LogLevel::info, "xcore-node", fmt::format("MCP server '{}' started", id));
  return describe(id, request);
}

Result<json::object> McpServers::stop(const json::value& params) {
  const auto* id_v = params.is_object() ? params.get_object().if_contains("id") : nullptr;
  if (!id_v || !id_v->is_string() || !is_node_name(id_v->get_string())) return refused("id: 1-40 of a-z 0-9 - (not starting with -)");
  const std::string id(id_v->get_string());
  std::lock_guard lock(mutex_);
  const auto folder = plugins_dir(options_.state) / id;
  std::error_code ec;
  if (!fs::is_regular_file(folder / "request.json", ec)) return Error{ErrorCode::not_found, fmt::format("no MCP server '{}' on this node", id)};
  if (manager_.info(id))
    if (auto r = manager_.unload(id); !r) return r.error();
  fs::remove_all(folder, ec);
  if (ec) return Error{ErrorCode::unavailable, fmt::format("cannot remove {}: {}", folder.string(), ec.message())};
  return json::object{{"stopped", id}};
}

json::object McpServers::describe(const std::string& id, const json::object& request) const {
  json::object o = request;
  auto info = manager_.info(id);
  o["state"] = info ? std::string(to_string(info->state)) : std::string("unknown");
  if (info && info->last_error) o["error"] = info->last_error->message;
  json::array tools;
  ToolFilter f;
  f.plugin = id;
  for (const auto& t : manager_.tools().list(f)) tools.emplace_back(t.exposed_name);
  o["tools"] = std::move(tools);
  return o;
}

// Without the lock: a start may be installing a package for minutes, and what list reads (request.json,
// written whole by rename; the Manager) is safe to read meanwhile.
json::object McpServers::list() const {
  json::array servers;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(plugins_dir(options_.state), ec)) {
    std::ifstream in(e.path() / "request.json");
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    boost::system::error_code jec;
    auto request = json::parse(text.str(), jec);
    if (jec || !request.is_object()) continue;
    servers.push_back(describe(e.path().filename().string(), request.get_object()));
  }
  return json::object{{"servers", std::move(servers)}};
}

}  // namespace xcore::node
