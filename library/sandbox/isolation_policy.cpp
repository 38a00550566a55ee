#include "sandbox/isolation.hpp"

#include <boost/json/parse.hpp>

namespace xcore::inline v1::sandbox {

namespace {

// A manifest's fs grant: absolute, or relative to the manifest's folder.
std::string grant_path(const PluginManifest& m, std::string_view path) {
  std::filesystem::path p(path);
  return (p.is_absolute() ? p : m.dir() / p).lexically_normal().string();
}

json::array to_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::vector<std::string> from_array(const json::object& o, const char* key) {
  std::vector<std::string> out;
  if (auto it = o.find(key); it != o.end() && it->value().is_array())
    for (const auto& s : it->value().get_array())
      if (s.is_string()) out.emplace_back(s.get_string());
  return out;
}

}  // namespace

IsolationPolicy IsolationPolicy::from_manifest(const PluginManifest& m) {
  IsolationPolicy p;
  const auto& l = m.limits;
  if (l.memory_mb) p.memory_bytes = *l.memory_mb << 20;
  p.cpu_seconds = l.cpu_seconds;
  p.open_files = l.open_files;
  if (l.file_size_mb) p.file_size_bytes = *l.file_size_mb << 20;
  p.processes = l.processes;
  p.read_paths.push_back(m.dir().string());
  for (std::string_view perm : m.permissions) {
    if (perm == "network") p.network = true;
    else if (perm.starts_with("fs.read:")) p.read_paths.push_back(grant_path(m, perm.substr(8)));
    else if (perm.starts_with("fs.write:")) p.write_paths.push_back(grant_path(m, perm.substr(9)));
  }
  return p;
}

json::object IsolationPolicy::to_json() const {
  json::object o{{"network", network}, {"seccomp", seccomp}, {"namespaces", namespaces}, {"landlock", landlock}, {"filesystem_view", filesystem_view}};
  auto put = [&](const char* k, const auto& v) {
    if (v) o[k] = *v;
  };
  put("memory_bytes", memory_bytes);
  put("data_bytes", data_bytes);
  put("cpu_seconds", cpu_seconds);
  put("open_files", open_files);
  put("file_size_bytes", file_size_bytes);
  put("processes", processes);
  put("uid", uid);
  put("gid", gid);
  if (!data_dir.empty()) o["data_dir"] = data_dir;
  o["read_paths"] = to_array(read_paths);
  o["write_paths"] = to_array(write_paths);
  o["cgroups"] = to_array(cgroups);
  return o;
}

Result<IsolationPolicy> IsolationPolicy::from_json_text(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return Error{ErrorCode::invalid_argument, "the isolation policy is not a JSON object"};
  const auto& o = v.get_object();
  IsolationPolicy p;
  auto get = [&](const char* k) -> std::optional<std::uint64_t> {
    auto it = o.find(k);
    if (it == o.end()) return std::nullopt;
    return it->value().to_number<std::uint64_t>();
  };
  auto flag = [&](const char* k, bool& out) {
    if (auto it = o.find(k); it != o.end() && it->value().is_bool()) out = it->value().get_bool();
  };
  p.memory_bytes = get("memory_bytes");
  p.data_bytes = get("data_bytes");
  p.cpu_seconds = get("cpu_seconds");
  p.open_files = get("open_files");
  p.file_size_bytes = get("file_size_bytes");
  p.processes = get("processes");
  if (auto u = get("uid")) p.uid = static_cast<std::uint32_t>(*u);
  if (auto g = get("gid")) p.gid = static_cast<std::uint32_t>(*g);
  flag("network", p.network);
  flag("seccomp", p.seccomp);
  flag("namespaces", p.namespaces);
  flag("landlock", p.landlock);
  flag("filesystem_view", p.filesystem_view);
  if (auto it = o.find("data_dir"); it != o.end() && it->value().is_string()) p.data_dir = it->value().get_string();
  p.read_paths = from_array(o, "read_paths");
  p.write_paths = from_array(o, "write_paths");
  p.cgroups = from_array(o, "cgroups");
  return p;
}

}  // namespace xcore::inline v1::sandbox
