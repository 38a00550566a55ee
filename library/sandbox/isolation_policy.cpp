#include "sandbox/isolation.hpp"

#include <boost/json/parse.hpp>

namespace xcore::inline v1::sandbox {

IsolationPolicy IsolationPolicy::from_manifest(const PluginManifest& m) {
  IsolationPolicy p;
  const auto& l = m.limits;
  if (l.memory_mb) p.memory_bytes = *l.memory_mb << 20;
  p.cpu_seconds = l.cpu_seconds;
  p.open_files = l.open_files;
  if (l.file_size_mb) p.file_size_bytes = *l.file_size_mb << 20;
  p.processes = l.processes;
  for (const auto& perm : m.permissions)
    if (perm == "network") p.network = true;
  return p;
}

json::object IsolationPolicy::to_json() const {
  json::object o{{"network", network}, {"seccomp", seccomp}, {"namespaces", namespaces}};
  auto put = [&](const char* k, const std::optional<std::uint64_t>& v) {
    if (v) o[k] = *v;
  };
  put("memory_bytes", memory_bytes);
  put("cpu_seconds", cpu_seconds);
  put("open_files", open_files);
  put("file_size_bytes", file_size_bytes);
  put("processes", processes);
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
  p.memory_bytes = get("memory_bytes");
  p.cpu_seconds = get("cpu_seconds");
  p.open_files = get("open_files");
  p.file_size_bytes = get("file_size_bytes");
  p.processes = get("processes");
  if (auto it = o.find("network"); it != o.end() && it->value().is_bool()) p.network = it->value().get_bool();
  if (auto it = o.find("seccomp"); it != o.end() && it->value().is_bool()) p.seccomp = it->value().get_bool();
  if (auto it = o.find("namespaces"); it != o.end() && it->value().is_bool()) p.namespaces = it->value().get_bool();
  return p;
}

}  // namespace xcore::inline v1::sandbox
