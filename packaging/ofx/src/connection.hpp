// One connection to a TokenFlow server (a ZeroMQ DEALER socket), speaking the protocol of
// docs/protocol.md the way bridge/wire/client.py does: a msgpack header frame
// {v, type, rid, job, seq, body} followed by raw binary frames; hello first; heartbeats
// both ways; every wait bounded. Not thread-safe: a Connection belongs to one thread
// (the effect instance's worker, session.cpp); ZeroMQ sockets must not be shared.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "value.hpp"

namespace zmq {
class socket_t;
}

namespace tokenflow {

struct Envelope {
  std::string type;
  int64_t rid = -1;  // -1: null
  std::string job;
  int64_t seq = -1;  // -1: null
  Value body;
  std::vector<std::string> blobs;
};

// What the user can act on: the message says what happened and what to do.
class WireError : public std::runtime_error {
 public:
  explicit WireError(const std::string& what, std::string code = "") : std::runtime_error(what), code(std::move(code)) {}
  std::string code;  // the server's error code, or "" for connection problems
};

class Aborted : public std::runtime_error {
 public:
  Aborted() : std::runtime_error("aborted") {}
};

class Connection {
 public:
  using Clock = std::chrono::steady_clock;
  // `stop` is polled during every wait; when it reads true the wait ends with Aborted.
  Connection(std::string endpoint, const std::atomic<bool>* stop);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  // Opens the socket and says hello; throws WireError when nobody answers within timeout.
  Value hello(double timeout_s);
  // Sends a request; returns its rid. Blobs follow the header as binary frames.
  int64_t send(const std::string& type, const Value& body, const std::string& job = "",
               const std::vector<const std::string*>& blobs = {});
  // The reply to `rid` (error replies throw WireError with the server's code and hint).
  Envelope wait_reply(int64_t rid, double timeout_s);
  // Waits up to timeout for the next message of any rid other than heartbeats; false on timeout.
  // Throws WireError when the server has been silent past its liveness window.
  bool next(Envelope& out, double timeout_s);
  // The server restarted or forgot this client (a heartbeat said so): subscriptions must be made again.
  bool session_lost() const { return session_lost_; }
  const Value& welcome() const { return welcome_; }
  int64_t max_upload_message_bytes() const;

 private:
  void open();
  bool pump(double timeout_s, Envelope* out);
  void send_heartbeat();
  std::string no_answer(double waited_s) const;

  std::string endpoint_;
  const std::atomic<bool>* stop_;
  std::unique_ptr<zmq::socket_t> socket_;
  int64_t next_rid_ = 1;
  Value welcome_;
  std::string server_id_;
  double heartbeat_s_ = 1.0;
  int liveness_ = 5;
  Clock::time_point last_heard_;
  Clock::time_point last_sent_;
  bool session_lost_ = false;
  std::vector<Envelope> pending_;  // arrived while waiting for another rid
};

// Whether something accepts connections at `endpoint` now (ipc:// socket file or TCP port),
// answered within `timeout_ms`: lets the effect tell "no server" in well under a second
// instead of waiting out a hello.
bool endpoint_answers(const std::string& endpoint, int timeout_ms);

}  // namespace tokenflow
