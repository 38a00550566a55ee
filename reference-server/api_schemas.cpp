// The shapes the API answers with, as JSON Schema: published under /openapi.json's components/schemas and,
// with check_answers on, held against every answer (route_table.cpp), so the document and the handlers
// cannot drift apart. Properties the server may add later are allowed (no additionalProperties: false):
// clients read what they know.
#include "route_table.hpp"

#include <boost/json/parse.hpp>

#include <cstdio>
#include <cstdlib>

namespace xcore::server {

namespace {

constexpr std::string_view kSchemas = R"json({
  "Error": {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
      "error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
          "code": {"type": "string", "description": "a stable code: invalid_argument, not_found, already_exists, permission_denied, conflict, failed_precondition, resource_exhausted, timeout, cancelled, unavailable, plugin_crashed, incompatible, internal, unauthenticated, plugin_error"},
          "message": {"type": "string", "description": "what was wrong, for a person"},
          "details": {"description": "JSON the code defines (a validation error's {path, errors}, a limit's {retry_after}), or null"}
        }
      },
      "request_id": {"type": "string", "description": "the X-Request-Id the server logged the request under"}
    }
  },
  "Status": {
    "type": "object", "required": ["status"],
    "properties": {"status": {"type": "string"}}
  },
  "PluginStats": {
    "type": "object",
    "required": ["calls", "errors", "in_flight", "generation", "reloads"],
    "properties": {
      "calls": {"type": "integer", "minimum": 0}, "errors": {"type": "integer", "minimum": 0},
      "in_flight": {"type": "integer", "minimum": 0}, "generation": {"type": "integer", "minimum": 0},
      "reloads": {"type": "integer", "minimum": 0}
    }
  },
  "Plugin": {
    "type": "object",
    "required": ["id", "name", "version", "description", "mode", "state", "registered", "enabled", "stats"],
    "properties": {
      "id": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string", "description": "semantic version"},
      "description": {"type": "string"},
      "mode": {"enum": ["trusted", "sandboxed"]},
      "state": {"enum": ["discovered", "loaded", "enabled", "disabled", "unloaded", "failed"]},
      "last_error": {"type": "string", "description": "why it failed, while it is failed"},
      "registered": {"type": "boolean", "description": "this tenant registered it"},
      "enabled": {"type": "boolean", "description": "this tenant's registration asks for it enabled"},
      "stats": {"$ref": "#/components/schemas/PluginStats"},
      "runner": {"type": "object", "description": "a sandboxed plugin's process: state, pid, restarts, last exit, isolation"}
    }
  },
  "PluginList": {
    "type": "object", "required": ["plugins"],
    "properties": {"plugins": {"type": "array", "items": {"$ref": "#/components/schemas/Plugin"}}}
  },
  "Health": {
    "description": "what the plugin answers to a health check (its own JSON; a sandboxed external server's is {status: ok})"
  },
  "Tool": {
    "type": "object", "required": ["name", "inputSchema"],
    "description": "a tool as MCP lists it",
    "properties": {
      "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
      "inputSchema": {"type": "object", "description": "JSON Schema of its arguments"},
      "outputSchema": {"type": "object", "description": "JSON Schema of its structuredContent"},
      "annotations": {"type": "object"},
      "_meta": {"type": "object", "properties": {"xcore": {"type": "object", "description": "category, plugin, competencies, permissions"}}}
    }
  },
  "OpenAITool": {
    "type": "object", "required": ["type", "function"],
    "description": "a tool as OpenAI's chat completions take it",
    "properties": {
      "type": {"const": "function"},
      "function": {"type": "object", "required": ["name", "parameters"],
                   "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "parameters": {"type": "object"}}}
    }
  },
  "ToolList": {
    "type": "object", "required": ["tools"],
    "properties": {"tools": {"type": "array", "items": {"anyOf": [{"$ref": "#/components/schemas/Tool"}, {"$ref": "#/components/schemas/OpenAITool"}]}}}
  },
  "ToolResult": {
    "type": "object", "required": ["content", "isError"],
    "description": "a tool's result as MCP shapes it; isError: the tool ran and reports a failure",
    "properties": {
      "content": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}},
      "structuredContent": {"description": "JSON matching the tool's outputSchema"},
      "isError": {"type": "boolean"}
    }
  },
  "Hook": {
    "type": "object", "required": ["name", "description", "historic", "handlers", "wrappers", "calls", "failures"],
    "properties": {
      "name": {"type": "string"}, "description": {"type": "string"}, "historic": {"type": "boolean"},
      "handlers": {"type": "integer", "minimum": 0}, "wrappers": {"type": "integer", "minimum": 0},
      "calls": {"type": "integer", "minimum": 0}, "failures": {"type": "integer", "minimum": 0}
    }
  },
  "Trigger": {
    "type": "object", "required": ["type"],
    "properties": {
      "type": {"enum": ["cron", "interval", "date", "webhook"]},
      "expression": {"type": "string"}, "utc_offset": {"type": "string"},
      "seconds": {"type": "integer"}, "jitter_seconds": {"type": "integer"}, "start": {"type": "string", "format": "date-time"},
      "at": {"type": "string", "format": "date-time"},
      "name": {"type": "string"}, "secret": {"type": "string", "description": "the name of the secret holding the HMAC key"}
    }
  },
  "Principal": {
    "type": "object", "required": ["kind", "id"],
    "properties": {
      "kind": {"enum": ["anonymous", "host", "user", "api_token", "plugin", "agent", "node"]},
      "id": {"type": "string"},
      "permissions": {"type": "array", "items": {"type": "string"}}
    }
  },
  "Task": {
    "type": "object",
    "required": ["id", "name", "tenant", "trigger", "target", "misfire_grace_seconds", "coalesce", "max_instances", "paused", "created", "run_as", "next_run", "running"],
    "properties": {
      "id": {"type": "string", "description": "made by the server"},
      "name": {"type": "string"}, "tenant": {"type": "string"},
      "trigger": {"$ref": "#/components/schemas/Trigger"},
      "target": {"type": "object", "description": "{tool, arguments} or {plugin, action, params}"},
      "misfire_grace_seconds": {"type": "integer"}, "coalesce": {"type": "boolean"},
      "max_instances": {"type": "integer", "minimum": 1}, "paused": {"type": "boolean"},
      "created": {"type": "string", "format": "date-time"},
      "owner": {"type": "string"},
      "run_as": {"$ref": "#/components/schemas/Principal"},
      "next_run": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}], "description": "null: it will not fire (paused, a webhook, a date passed)"},
      "running": {"type": "integer", "minimum": 0, "description": "runs in progress"},
      "webhook_url": {"type": "string", "description": "where a webhook task is triggered"},
      "next_runs": {"type": "array", "items": {"type": "string", "format": "date-time"}, "description": "the next five fire times (GET of one task)"}
    }
  },
  "TaskList": {
    "type": "object", "required": ["tasks"],
    "properties": {"tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}}
  },
  "Run": {
    "type": "object", "required": ["id", "job_id", "status", "reason", "start"],
    "properties": {
      "id": {"type": "string"}, "job_id": {"type": "string"},
      "status": {"enum": ["running", "succeeded", "failed", "interrupted", "skipped"]},
      "reason": {"type": "string", "description": "what started it: schedule, manual, webhook, misfire..."},
      "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
      "scheduled_for": {"type": "string", "format": "date-time"},
      "duration_ms": {"type": "integer", "minimum": 0},
      "result": {"description": "what the target returned"}, "error": {"type": "string"}
    }
  },
  "RunStarted": {
    "type": "object", "required": ["run_id", "task_id"],
    "properties": {"run_id": {"type": "string"}, "task_id": {"type": "string"}}
  },
  "Tokens": {
    "type": "object", "required": ["access_token", "token_type", "expires_in", "refresh_token"],
    "properties": {
      "access_token": {"type": "string", "description": "a JWT: send it as Authorization: Bearer"},
      "token_type": {"const": "bearer"},
      "expires_in": {"type": "integer", "description": "seconds the access token lives"},
      "refresh_token": {"type": "string", "description": "single use, for POST /api/v1/auth/refresh"}
    }
  },
  "Me": {
    "type": "object", "required": ["user", "tenant", "role", "principal", "permissions"],
    "properties": {
      "user": {"type": "string"}, "tenant": {"type": "string"}, "role": {"enum": ["viewer", "operator", "admin"]},
      "principal": {"$ref": "#/components/schemas/Principal"},
      "permissions": {"type": "array", "items": {"type": "string"}}
    }
  },
  "User": {
    "type": "object", "required": ["username", "role"],
    "properties": {
      "id": {"type": "integer"}, "username": {"type": "string"}, "tenant": {"type": "string"},
      "role": {"enum": ["viewer", "operator", "admin"]},
      "created_at": {"type": "integer", "description": "seconds since the epoch"}
    }
  },
  "Tenant": {
    "type": "object", "required": ["id", "name"],
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "state": {"enum": ["running", "parked"], "description": "running: its plugins are loaded; parked: idle, started again by its next request or due task"}}
  },
  "ApiToken": {
    "type": "object", "required": ["id", "name", "role", "expires_at"],
    "properties": {
      "id": {"type": "integer"}, "name": {"type": "string"}, "role": {"enum": ["viewer", "operator", "admin"]},
      "created_by": {"type": "string"}, "created_at": {"type": "integer"},
      "expires_at": {"type": "integer", "description": "seconds since the epoch; 0: never"},
      "revoked": {"type": "boolean"},
      "token": {"type": "string", "description": "the value, shown once when it is made"},
      "scopes": {"type": ["array", "null"], "items": {"type": "string"}, "description": "null: all its role holds"}
    }
  },
  "AuditEntry": {
    "type": "object", "required": ["id", "at", "actor", "action", "target", "result", "request_id"],
    "properties": {
      "id": {"type": "integer"}, "at": {"type": "integer", "description": "seconds since the epoch"},
      "actor": {"type": "string"}, "action": {"type": "string"}, "target": {"type": "string"},
      "result": {"type": "string"}, "request_id": {"type": "string"}
    }
  },
  "Deleted": {
    "type": "object", "required": ["deleted"],
    "properties": {"deleted": {"type": "string", "description": "the name or id of what is gone"}}
  }
})json";

}  // namespace

const json::object& api_schemas() {
  static const json::object schemas = [] {
    boost::system::error_code ec;
    auto v = json::parse(kSchemas, ec);
    if (ec || !v.is_object()) {
      std::fprintf(stderr, "xcore-server: the API's schemas are not JSON: %s\n", ec.message().c_str());
      std::abort();
    }
    return v.get_object();
  }();
  return schemas;
}

}  // namespace xcore::server
