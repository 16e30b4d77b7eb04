// Every public header must compile as C++ (extern "C", no C-only constructs): a C++
// program (a GUI, a SIP stack) can embed parley.
#include "parley/api.h"
#include "parley/audio_device.h"
#include "parley/client.h"
#include "parley/env.h"
#include "parley/login.h"
#include "parley/network.h"
#include "parley/runtime.h"
#include "parley/supernode.h"

int main()
{
	struct pn_addr a = {};
	return a.family == 0 && sizeof(pn_client_ops) > 0 ? 0 : 1;
}
