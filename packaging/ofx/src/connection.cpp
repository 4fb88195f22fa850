#include "connection.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace tokenflow {

namespace {
constexpr int kProtocolVersion = 1;

zmq::context_t& context() {
  // One context for the whole binary: thread-safe by design; never destroyed, because a
  // host may unload us while another thread still closes its socket.
  static auto* ctx = new zmq::context_t(1);
  return *ctx;
}

double seconds_since(Connection::Clock::time_point t) {
  return std::chrono::duration<double>(Connection::Clock::now() - t).count();
}

std::string error_text(const Value& body) {
  std::string text = body["message"].as_str("The server refused the request.");
  const std::string hint = body["hint"].as_str();
  if (!hint.empty()) text += " " + hint;
  return text;
}
}  // namespace

Connection::Connection(std::string endpoint, const std::atomic<bool>* stop)
    : endpoint_(std::move(endpoint)), stop_(stop) {}

Connection::~Connection() = default;

void Connection::open() {
  socket_ = std::make_unique<zmq::socket_t>(context(), zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::linger, 0);
  socket_->set(zmq::sockopt::immediate, 0);  // queue while connecting, as the Python client does
  socket_->set(zmq::sockopt::sndtimeo, 2000);
  socket_->connect(endpoint_);
  pending_.clear();
  last_heard_ = last_sent_ = Clock::now();
  session_lost_ = false;
}

std::string Connection::no_answer(double waited_s) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", waited_s);
  return "No answer from the TokenFlow server at " + endpoint_ + " after " + buf +
         " s. Start it with `tokenflow serve`, or set the effect's Server parameter to where it runs.";
}

Value Connection::hello(double timeout_s) {
  open();
  Value::Map body{{"client", Value("tokenflow-ofx")}, {"versions", Value(Value::Array{Value(kProtocolVersion)})}};
  const int64_t rid = send("hello", Value(body));
  Envelope reply = wait_reply(rid, timeout_s);
  if (reply.type != "welcome") throw WireError("The server answered hello with '" + reply.type + "'.");
  welcome_ = reply.body;
  server_id_ = welcome_["server_id"].as_str();
  heartbeat_s_ = std::max(0.05, welcome_["limits"]["heartbeat_s"].as_float(1.0));
  liveness_ = static_cast<int>(std::max<int64_t>(2, welcome_["limits"]["heartbeat_liveness"].as_int(5)));
  return welcome_;
}

int64_t Connection::max_upload_message_bytes() const {
  // A server without the upload limits advertised gets the request limit's frame bound.
  return welcome_["limits"]["max_upload_message_bytes"].as_int(
      welcome_["limits"]["max_frame_bytes"].as_int(16 << 20));
}

int64_t Connection::send(const std::string& type, const Value& body, const std::string& job,
                         const std::vector<const std::string*>& blobs) {
  if (!socket_) open();
  const int64_t rid = type == "heartbeat" ? -1 : next_rid_++;
  Value::Map header{{"v", Value(kProtocolVersion)},
                    {"type", Value(type)},
                    {"rid", rid < 0 ? Value() : Value(rid)},
                    {"job", job.empty() ? Value() : Value(job)},
                    {"seq", Value()},
                    {"body", body}};
  const std::string head = Value(header).pack();
  const auto more = blobs.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore;
  if (!socket_->send(zmq::buffer(head), more)) throw WireError(no_answer(2.0));
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto flag = i + 1 < blobs.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!socket_->send(zmq::buffer(*blobs[i]), flag)) throw WireError(no_answer(2.0));
  }
  last_sent_ = Clock::now();
  return rid;
}

void Connection::send_heartbeat() { send("heartbeat", Value(Value::Map{})); }

bool Connection::pump(double timeout_s, Envelope* out) {
  // Heartbeat, then receive one message for up to timeout_s (in slices, so `stop` is seen).
  const auto started = Clock::now();
  while (true) {
    if (stop_ && stop_->load()) throw Aborted();
    if (seconds_since(last_sent_) >= heartbeat_s_) send_heartbeat();
    const double silence = heartbeat_s_ * liveness_;
    if (seconds_since(last_heard_) > silence) throw WireError(no_answer(seconds_since(last_heard_)));
    const double left = timeout_s - seconds_since(started);
    if (left <= 0) return false;
    const int slice = static_cast<int>(std::max(1.0, std::min({left, heartbeat_s_, 0.05}) * 1000));
    zmq::pollitem_t item{static_cast<void*>(*socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(slice));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(*socket_, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
    last_heard_ = Clock::now();
    if (frames.empty()) continue;
    Value header;
    try {
      header = Value::unpack(frames[0].data(), frames[0].size());
    } catch (const std::exception&) {
      continue;  // not ours to understand; the Python client skips it the same way
    }
    Envelope env;
    env.type = header["type"].as_str();
    env.rid = header["rid"].is_nil() ? -1 : header["rid"].as_int(-1);
    env.job = header["job"].as_str();
    env.seq = header["seq"].is_nil() ? -1 : header["seq"].as_int(-1);
    env.body = header["body"];
    if (env.type == "heartbeat") {
      const std::string sid = env.body["server_id"].as_str();
      if ((!env.body["known"].is_nil() && !env.body["known"].as_bool(true)) ||
          (!sid.empty() && !server_id_.empty() && sid != server_id_))
        session_lost_ = true;
      continue;
    }
    for (size_t i = 1; i < frames.size(); ++i) env.blobs.emplace_back(frames[i].data<char>(), frames[i].size());
    *out = std::move(env);
    return true;
  }
}

Envelope Connection::wait_reply(int64_t rid, double timeout_s) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->rid == rid) {
      Envelope env = std::move(*it);
      pending_.erase(it);
      if (env.type == "error") throw WireError(error_text(env.body), env.body["code"].as_str());
      return env;
    }
  }
  const auto started = Clock::now();
  while (true) {
    const double left = timeout_s - seconds_since(started);
    Envelope env;
    if (left <= 0 || !pump(left, &env)) throw WireError(no_answer(seconds_since(started)));
    if (env.rid != rid) {
      if (pending_.size() < 4096) pending_.push_back(std::move(env));  // bounded: a stream's events wait here
      continue;
    }
    if (env.type == "error") throw WireError(error_text(env.body), env.body["code"].as_str());
    return env;
  }
}

bool Connection::next(Envelope& out, double timeout_s) {
  if (!pending_.empty()) {
    out = std::move(pending_.front());
    pending_.erase(pending_.begin());
    return true;
  }
  return pump(timeout_s, &out);
}

bool endpoint_answers(const std::string& endpoint, int timeout_ms) {
  int fd = -1;
  int rc = -1;
  if (endpoint.rfind("ipc://", 0) == 0) {
    const std::string path = endpoint.substr(6);
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return false;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return false;
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // local: answers at once
    ::close(fd);
    return rc == 0;
  }
  if (endpoint.rfind("tcp://", 0) != 0) return true;  // inproc and others: let the hello decide
  std::string rest = endpoint.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = rest.substr(0, colon);
  const int port = std::atoi(rest.substr(colon + 1).c_str());
  if (host == "localhost") host = "127.0.0.1";
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    return true;  // a host name: resolving it could block; the bounded hello decides
  }
  fd = ::socket(addr.ss_family, SOCK_STREAM, 0);
  if (fd < 0) return false;
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  bool ok = rc == 0;
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, timeout_ms) == 1) {
      int err = 0;
      socklen_t elen = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
      ok = err == 0;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace tokenflow
