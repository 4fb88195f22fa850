// Where the user's own server listens and how to start it: the same rule as
// bridge/wire/client.py default_endpoint() and bridge/wire/local.py (tests/ofx checks
// the two agree), plus what `tokenflow install ofx` recorded for this user.
#pragma once

#include <string>
#include <vector>

namespace tokenflow {

struct LocalServer {
  std::string endpoint;                    // $TOKENFLOW_SERVER, else the per-user ipc:// socket
  std::vector<std::string> start_command;  // `tokenflow serve` as installed; empty: never start one
};

LocalServer local_server();
// The file `tokenflow install ofx` writes for the installing user (config folder / ofx-effect.conf).
std::string install_record_path();

}  // namespace tokenflow
