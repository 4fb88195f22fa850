#include "endpoint.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace tokenflow {

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string home() { return env("HOME"); }

std::string config_dir() {
  if (!env("TOKENFLOW_CONFIG_DIR").empty()) return env("TOKENFLOW_CONFIG_DIR");
#ifdef __APPLE__
  return home() + "/Library/Application Support/tokenflow";
#else
  const std::string xdg = env("XDG_CONFIG_HOME");
  return (!xdg.empty() && xdg[0] == '/' ? xdg : home() + "/.config") + "/tokenflow";
#endif
}

std::string runtime_dir() {
  // bridge/folders.py: $TOKENFLOW_RUNTIME_DIR, else platformdirs' user runtime folder.
  if (!env("TOKENFLOW_RUNTIME_DIR").empty()) return env("TOKENFLOW_RUNTIME_DIR");
#ifdef __APPLE__
  return home() + "/Library/Caches/TemporaryItems/tokenflow";
#else
  const std::string xdg = env("XDG_RUNTIME_DIR");
  if (is_dir(xdg)) return xdg + "/tokenflow";
  const std::string run = "/run/user/" + std::to_string(::getuid());
  if (is_dir(run)) return run + "/tokenflow";
  std::string tmp = env("TMPDIR");
  if (tmp.empty()) tmp = "/tmp";
  return tmp + "/runtime-" + std::to_string(::getuid()) + "/tokenflow";
#endif
}
}  // namespace

std::string install_record_path() { return config_dir() + "/ofx-effect.conf"; }

LocalServer local_server() {
  LocalServer out;
  // The record: "# ..." comments, then `arg=` lines (argv of `tokenflow serve`) and `env=K=V` lines.
  std::ifstream in(install_record_path());
  std::vector<std::string> args, envs;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("arg=", 0) == 0) args.push_back(line.substr(4));
    else if (line.rfind("env=", 0) == 0) envs.push_back(line.substr(4));
  }
  if (!args.empty()) {
    if (!envs.empty()) {  // /usr/bin/env sets them for the server alone, not for the host
      out.start_command.push_back("env");
      out.start_command.insert(out.start_command.end(), envs.begin(), envs.end());
    }
    out.start_command.insert(out.start_command.end(), args.begin(), args.end());
  }
  out.endpoint = env("TOKENFLOW_SERVER");
  if (out.endpoint.empty()) out.endpoint = "ipc://" + runtime_dir() + "/server.sock";
  else out.start_command.clear();  // a server the user named is theirs to start
  return out;
}

}  // namespace tokenflow
