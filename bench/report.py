"""Turns Google Benchmark JSON files into bench/RESULTS.md: medians beside their same-run baselines."""
import json
import pathlib
import sys

# (figure, baseline, what is measured, target)
PAIRS = [
    ("BM_RegistryHostEcho", "BM_DirectEcho", "registry invoke of a host echo tool, 4-property schema validated", ""),
    ("BM_PluginEcho", "BM_DirectEcho", "invoke of the trusted plugin's echo (~100 B arguments), through the C ABI", "<= 2 us"),
    ("BM_PluginEchoAudited", "BM_PluginEcho", "the same with the audit plugin's before/after hooks", ""),
    ("BM_Emit/0", "BM_DirectCalls/0", "hook emit, 0 handlers", ""),
    ("BM_Emit/1", "BM_DirectCalls/1", "hook emit, 1 handler", ""),
    ("BM_Emit/10", "BM_DirectCalls/10", "hook emit, 10 handlers", "<= 0.5 us"),
    ("BM_LoadUnload", "BM_RawDlopenCore", "load + enable + unload of 'core' (ABI check, shadow copy, on_load, tools)", ""),
    ("BM_SandboxedEcho", "BM_RawPipePingPong", "sandboxed echo round trip (same core plugin, child process, JSON-RPC)", "<= 1.2x pipe"),
    ("BM_SandboxColdStart", "BM_RawPipePingPong", "sandbox cold start: spawn with full isolation and the filesystem view to the first answered call", "<= 8 ms"),
    ("BM_SandboxRestartAfterCrash", "BM_SandboxColdStart", "restart after a crash (SIGKILL) to the first answered call, backoff 1 ms", ""),
    ("BM_ServerEverythingEcho", "BM_SandboxedEcho", "echo through @modelcontextprotocol/server-everything (node) from our host", ""),
    ("BM_Reload", "BM_RawDlopenProbe", "hot reload of an enabled plugin (new generation, swap, drain, unload old)", ""),
    ("BM_Tick100kIdle", "BM_TickEmpty", "scheduler tick, 100,000 jobs, nothing due", ""),
    ("BM_Tick100kWith100Due", "BM_TickEmpty", "scheduler tick, 100,000 jobs, 100 due (runs recorded, next fires computed)", ""),
    ("BM_FireLatenessP50", "BM_SleepUntilLatenessP50", "firing lateness p50, 100,000 jobs every 10 s to 10 min (~700 fires/s), both CPUs busy", ""),
    ("BM_FireLatenessP99", "BM_SleepUntilLatenessP99", "firing lateness p99, same run", "<= 10 ms"),
]


NOTES = """
Baselines:
- `BM_DirectEcho`: echo's work as a plain C++ call (wrap the arguments as a structured result), no registry.
- `BM_DirectCalls/N`: the same N handlers called in a loop through `std::function`, no bus.
- `BM_RawDlopenCore` / `BM_RawDlopenProbe`: the file work the Manager does per load (copy the binary to a
  fresh private path), then dlopen + dlsym + dlclose of that same binary.
- `BM_RawPipePingPong`: the bytes of one sandboxed echo request sent to a forked process over a pipe and
  sent back, wall time: the floor any process boundary pays on this machine.

Reading them:
- A plugin call crosses the C ABI as JSON text: the arguments are serialized and parsed once each way, and
  so is the result. That, not the registry, is most of `BM_PluginEcho` (see `perf` of the benchmark).
- `BM_RegistryHostEcho` is dominated by valijson (its visitor copies its context per property); a schema
  that only says "an object" skips it, which is why the plugin echo is not much slower than the host one.
- `BM_PluginEchoAudited`: every plugin hook handler gets the payload as JSON text, and `tool.after_call`
  carries the whole result; two plugin handlers per call cost about 3 us each.
- Sandbox figures are wall time (the work is split between two processes). Cross-process wakeups are slow
  on this VM (a pipe round trip is tens of microseconds), so compare the sandbox with its pipe baseline.
  The cold start baseline column is not a comparison, only the pipe figure of the same run.
- The machine is a shared 2-core VM: medians move by about 10% between runs. Debian's libbenchmark is
  itself a debug build (it prints a warning); that does not affect the code being measured.
"""


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def main():
    folder, command = pathlib.Path(sys.argv[1]), sys.argv[2]
    medians, counters, context = {}, {}, None
    for f in sorted(folder.glob("*.json")):
        data = json.loads(f.read_text())
        context = context or data["context"]
        for b in data["benchmarks"]:
            if b.get("aggregate_name") == "median":
                scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
                name = b["run_name"].removesuffix("/real_time").removesuffix("/manual_time").removesuffix("/iterations:1")
                medians[name] = b["real_time"] * scale
                counters[name] = b
    print("# Benchmark results\n")
    print(f"Command: `{command}` (each figure is the median of the repetitions; baselines ran in the same process run).")
    print(f"Machine: {context['num_cpus']} CPUs at {context['mhz_per_cpu']} MHz, load average "
          f"{', '.join(f'{x:.2f}' for x in context.get('load_avg', []))}; library build type: RelWithDebInfo.\n")
    print("| measured | median | baseline | baseline median | ratio | target |")
    print("|---|---:|---|---:|---:|---|")
    for name, base, what, target in PAIRS:
        if name not in medians or base not in medians:
            continue
        ratio = medians[name] / medians[base] if medians[base] > 0 else float("nan")
        print(f"| {what} (`{name}`) | {fmt(medians[name])} | `{base}` | {fmt(medians[base])} | {ratio:.1f}x | {target} |")
    if "BM_Add100kJobs" in counters:
        b = counters["BM_Add100kJobs"]
        print(f"\nScheduler memory: {b.get('bytes_per_job', 0):.0f} bytes of heap per job with 100,000 jobs "
              f"(`BM_Add100kJobs`, adding them took {fmt(medians['BM_Add100kJobs'])}).")
    print(NOTES)


if __name__ == "__main__":
    main()
