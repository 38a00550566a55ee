#include "jsonrpc/jsonrpc.hpp"
#include <xcore/json_text.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace xcore::inline v1::jsonrpc {
namespace {

std::string line(json::object&& o) {
  std::string s = xcore::json_text::serialize(o);
  s += '\n';
  return s;
}

bool valid_id(const json::value& id) { return id.is_int64() || id.is_uint64() || id.is_string() || id.is_null(); }

}  // namespace

std::string request(const json::value& id, std::string_view method, const json::value& params) {
  json::object o{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) o["params"] = params;
  return line(std::move(o));
}

std::string notification(std::string_view method, const json::value& params) {
  json::object o{{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) o["params"] = params;
  return line(std::move(o));
}

std::string result(const json::value& id, const json::value& r) {
  return line(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", r}});
}

std::string error(const json::value& id, int code, std::string_view message, const json::value& data) {
  json::object err{{"code", code}, {"message", message}};
  if (!data.is_null()) err["data"] = data;
  return line(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}});
}

namespace {
constexpr std::string_view kMethodNotFoundDetails = R"({"jsonrpc_code":-32601})";
}

Error method_not_found(std::string_view method) {
  return Error{ErrorCode::not_found, fmt::format("unknown method '{}'", method), std::string(kMethodNotFoundDetails)};
}

std::string error(const json::value& id, const Error& e) {
  if (e.details == kMethodNotFoundDetails) return error(id, kMethodNotFound, e.message, json::object{{"xcore_code", to_string(e.code)}});
  json::object data{{"xcore_code", to_string(e.code)}};
  if (!e.details.empty()) data["details"] = e.details;
  return error(id, jsonrpc_code(e.code), e.message, data);
}

namespace {
Error malformed(std::string_view why) { return Error{ErrorCode::invalid_argument, fmt::format("malformed JSON-RPC message: {}", why)}; }
}  // namespace

Result<Message> parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return malformed(fmt::format("not JSON ({})", ec.message()));
  if (auto at = non_finite_number(v)) return malformed(fmt::format("the number at '{}' is outside the range of a double", *at));
  return from_json(std::move(v));
}

Result<Message> from_json(json::value v) {
  auto bad = malformed;
  if (!v.is_object()) return bad("not a JSON object");
  auto& o = v.get_object();
  auto ver = o.find("jsonrpc");
  if (ver == o.end() || ver->value() != "2.0") return bad("\"jsonrpc\" is not \"2.0\"");
  Message m;
  auto id = o.find("id");
  if (id != o.end()) {
    if (!valid_id(id->value())) return bad("\"id\" must be a number, a string or null");
    m.id = id->value();
  }
  if (auto method = o.find("method"); method != o.end()) {
    if (!method->value().is_string() || method->value().get_string().empty()) return bad("\"method\" must be a non-empty string");
    m.method = std::string(method->value().get_string());
    if (auto p = o.find("params"); p != o.end()) {
      if (!p->value().is_object() && !p->value().is_array()) return bad("\"params\" must be an object or an array");
      m.params = std::move(p->value());
    }
    m.kind = id == o.end() ? Message::Kind::notification : Message::Kind::request;
    return m;
  }
  if (id == o.end()) return bad("neither a method nor an id");
  auto res = o.find("result");
  auto err = o.find("error");
  if ((res == o.end()) == (err == o.end())) return bad("a response needs exactly one of \"result\" and \"error\"");
  if (res != o.end()) {
    m.kind = Message::Kind::result;
    m.result = std::move(res->value());
    return m;
  }
  if (!err->value().is_object()) return bad("\"error\" must be an object");
  auto& eo = err->value().get_object();
  auto code = eo.find("code");
  auto msg = eo.find("message");
  if (code == eo.end() || !code->value().is_int64()) return bad("\"error.code\" must be an integer");
  if (msg == eo.end() || !msg->value().is_string()) return bad("\"error.message\" must be a string");
  m.kind = Message::Kind::error;
  m.error_code = static_cast<int>(code->value().get_int64());
  m.error_message = std::string(msg->value().get_string());
  if (auto d = eo.find("data"); d != eo.end()) m.error_data = std::move(d->value());
  return m;
}

Error to_error(const Message& m) {
  ErrorCode code = ErrorCode::internal;
  std::string details;
  if (m.error_data.is_object()) {
    const auto& d = m.error_data.get_object();
    if (auto c = d.find("xcore_code"); c != d.end() && c->value().is_string()) parse_error_code(c->value().get_string(), code);
    if (auto det = d.find("details"); det != d.end() && det->value().is_string()) details = std::string(det->value().get_string());
  } else {
    switch (m.error_code) {
      case kInvalidParams:
      case kInvalidRequest:
      case kParseError: code = ErrorCode::invalid_argument; break;
      case kMethodNotFound:
      case -32002:  // MCP: resource not found
        code = ErrorCode::not_found;
        break;
      default: code = ErrorCode::internal;
    }
  }
  return Error{code, m.error_message, details};
}

}  // namespace xcore::inline v1::jsonrpc
