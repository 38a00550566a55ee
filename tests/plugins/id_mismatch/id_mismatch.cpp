#include <xcore/sdk.hpp>
class Impostor : public xcore::sdk::Plugin {};
XCORE_PLUGIN(Impostor, "someone-else", "1.0.0")
