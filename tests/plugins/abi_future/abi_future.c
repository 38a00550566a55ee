/* Built for a future plugin ABI: the host must refuse it without running any of its code. */
#include <xcore/plugin.h>

#include <stdio.h>
#include <stdlib.h>

/* If the host ever ran this plugin's code, this constructor would make the test fail loudly. */
__attribute__((constructor)) static void must_never_run(void) {
  fputs("abi_future: constructor ran, the host loaded a mismatched plugin\n", stderr);
  abort();
}

XCORE_PLUGIN_EXPORT const xcore_abi_tag xcore_plugin_abi_tag = {XCORE_ABI_MAGIC, 99, 0, "abi-future", "1.0.0"};
