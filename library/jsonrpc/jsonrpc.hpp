// JSON-RPC 2.0 messages, one per line (NDJSON): the one codec for the sandbox wire protocol and MCP.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <xcore/error.hpp>
#include <xcore/json.hpp>

namespace xcore::inline v1::jsonrpc {

// JSON-RPC's own codes, for protocol-level failures.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

struct Message {
  enum class Kind : std::uint8_t { request, notification, result, error };
  Kind kind = Kind::notification;
  json::value id;  // number or string for requests and responses; null for notifications
  std::string method;
  json::value params;
  json::value result;
  int error_code = 0;
  std::string error_message;
  json::value error_data;

  bool is_response() const { return kind == Kind::result || kind == Kind::error; }
};

// Every encoder returns one line, newline included.
std::string request(const json::value& id, std::string_view method, const json::value& params);
std::string notification(std::string_view method, const json::value& params);
std::string result(const json::value& id, const json::value& result);
std::string error(const json::value& id, int code, std::string_view message, const json::value& data = nullptr);
// "No such method": an Error that error(id, Error) sends as JSON-RPC's -32601, which MCP clients expect.
Error method_not_found(std::string_view method);
// An xcore::Error as a JSON-RPC error: the code maps with jsonrpc_code(); data carries {"xcore_code", "details"}.
std::string error(const json::value& id, const Error& e);

// Reads one line (without its newline). invalid_argument names what is wrong.
Result<Message> parse(std::string_view line);
// The same for a message already parsed as JSON (one of an HTTP body's batch, say).
Result<Message> from_json(json::value v);

// The xcore::Error a JSON-RPC error response stands for (the reverse of error(id, Error)).
Error to_error(const Message& m);

}  // namespace xcore::inline v1::jsonrpc
