// Everything a host needs: #include <xcore/xcore.hpp>
#pragma once

#include <xcore/call_context.hpp>
#include <xcore/error.hpp>
#include <xcore/hooks.hpp>
#include <xcore/json.hpp>
#include <xcore/json_schema.hpp>
#include <xcore/log.hpp>
#include <xcore/manager.hpp>
#include <xcore/manifest.hpp>
#include <xcore/cron.hpp>
#include <xcore/scheduler.hpp>
#include <xcore/semver.hpp>
#include <xcore/tools.hpp>
#include <xcore/nodes.hpp>
#include <xcore/version.hpp>
