#include "session.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "connection.hpp"
#include "util.hpp"

extern char** environ;

namespace tokenflow {

namespace {
constexpr double kHelloTimeout = 5.0;
constexpr double kRequestTimeout = 30.0;
constexpr double kServerStartTimeout = 90.0;  // a first start loads the model
// Proxies kept for the viewer: a few hundred 160-pixel frames; the oldest go first beyond this.
constexpr size_t kMaxProxyBytes = 64u << 20;
// The short side of the proxies the effect asks for (the protocol's default).
constexpr int kProxySize = 160;
constexpr double kReconnectTimeout = 120.0;  // a server lost mid-job: how long to wait for it to come back (it may load a model)

int bytes_per_sample(const std::string& dtype) { return dtype == "uint16" ? 2 : dtype == "float32" ? 4 : 1; }

void spawn_detached(const std::vector<std::string>& command) {
  // The server outlives the host's render: start it in its own session, not waited for here.
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
#ifdef POSIX_SPAWN_SETSID
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
#endif
  pid_t pid = 0;
  posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
}

const char* stage_word(const std::string& stage) {
  if (stage == "inversion") return "inverting";
  if (stage == "edit") return "editing";
  if (stage == "decode") return "decoding";
  if (stage == "write") return "writing";
  if (stage == "encode") return "encoding";
  if (stage == "load") return "loading the model";
  return "starting";
}
}  // namespace

std::string status_text(const Snapshot& s) {
  switch (s.phase) {
    case Phase::Idle: return "Ready: set a prompt and press Render edit.";
    case Phase::Connecting: return "Connecting to the TokenFlow server...";
    case Phase::Uploading: return "Uploading frames " + std::to_string(s.frames_done) + "/" + std::to_string(s.frames_total);
    case Phase::Queued: return "Queued";
    case Phase::Running: return s.status.empty() ? "Running" : s.status;
    case Phase::Done: return "Done";
    case Phase::Failed: return "Error: " + s.error;
    case Phase::Cancelled: return "Cancelled";
  }
  return "";
}

Session::Session() : thread_([this] { worker(); }) {}

Session::~Session() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
    stop_ = true;
  }
  command_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Session::start(EditRequest request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_ = std::make_unique<EditRequest>(std::move(request));
    stop_ = true;  // the running edit (if any) cancels its job and yields
    cancel_requested_ = false;
    frames_.clear();
    proxies_.clear();
    proxy_bytes_ = 0;
    state_ = Snapshot{Phase::Connecting, pending_->key, "", "", 0, 0, 0.0, state_.generation + 1};
  }
  changed_.notify_all();
  command_.notify_all();
}

void Session::cancel() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancel_requested_ = true;
  }
  command_.notify_all();
}

Snapshot Session::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

std::shared_ptr<const ResultFrame> Session::frame(int number) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = frames_.find(number);
  return it == frames_.end() ? nullptr : it->second;
}

std::shared_ptr<const ProxyFrame> Session::proxy(int number) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = proxies_.find(number);
  return it == proxies_.end() ? nullptr : it->second;
}

void Session::keep_proxy(int number, std::shared_ptr<const ProxyFrame> proxy) {
  auto drop = [this](std::map<int, std::shared_ptr<const ProxyFrame>>::iterator it) {
    proxy_bytes_ -= it->second->image.pixels.size();
    return proxies_.erase(it);
  };
  auto it = proxies_.find(number);
  if (it != proxies_.end()) {
    if (it->second->finished && !proxy->finished) return;  // the finished frame's image beats a preview
    drop(it);
  }
  proxy_bytes_ += proxy->image.pixels.size();
  proxies_[number] = std::move(proxy);
  while (proxy_bytes_ > kMaxProxyBytes && proxies_.size() > 1) {  // the oldest arrival goes first
    auto oldest = proxies_.begin();
    for (auto i = proxies_.begin(); i != proxies_.end(); ++i)
      if (i->second->arrival < oldest->second->arrival) oldest = i;
    drop(oldest);
  }
}

Session::Wait Session::wait_frame(int number, const std::function<bool()>& aborted, double timeout_s) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    if (frames_.count(number)) return Wait::Ready;
    const Phase p = state_.phase;
    if (p == Phase::Idle || p == Phase::Done || p == Phase::Failed || p == Phase::Cancelled) return Wait::Ended;
    if (std::chrono::steady_clock::now() >= deadline) return Wait::TimedOut;
    lock.unlock();
    const bool stop = aborted && aborted();  // the host's abort is called without our lock held
    lock.lock();
    if (stop) return Wait::Aborted;
    changed_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void Session::set(const std::function<void(Snapshot&)>& change) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    change(state_);
  }
  changed_.notify_all();
}

void Session::worker() {
  while (true) {
    std::unique_ptr<EditRequest> request;
    uint64_t generation = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      command_.wait(lock, [this] { return quit_ || pending_; });
      if (quit_) return;
      request = std::move(pending_);
      generation = state_.generation;
      stop_ = false;
    }
    try {
      run(*request, generation);
    } catch (const Aborted&) {
      // superseded by a newer edit or shutting down: the newer state is already set
    } catch (const std::exception& exc) {
      const std::string what = exc.what();
      set([&](Snapshot& s) {
        if (s.generation != generation) return;
        s.phase = Phase::Failed;
        s.error = what;
      });
    }
  }
}

void Session::run(EditRequest& req, uint64_t generation) {
  auto update = [&](const std::function<void(Snapshot&)>& change) {
    set([&](Snapshot& s) {
      if (s.generation == generation) change(s);
    });
  };
  // 1. Someone must answer: tell "no server" at once, or start the user's own one.
  if (!endpoint_answers(req.endpoint, 500)) {
    if (req.start_command.empty())
      throw WireError("No TokenFlow server answers at " + req.endpoint +
                      ". Start one with `tokenflow serve`, or set the effect's Server parameter to where it runs.");
    update([](Snapshot& s) { s.status = "starting the server"; });
    spawn_detached(req.start_command);
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(kServerStartTimeout);
    while (!endpoint_answers(req.endpoint, 200)) {
      if (stop_) throw Aborted();
      if (std::chrono::steady_clock::now() > until)
        throw WireError("Started `" + join(req.start_command, " ") + "` but no server answered at " + req.endpoint +
                        " within 90 s. Run `tokenflow serve` in a terminal to see why.");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  Connection conn(req.endpoint, &stop_);
  conn.hello(kHelloTimeout);

  // 2. The frames (and the matte's): named by their content, so an identical clip is found again (resumable).
  const SourceFrames& f = req.frames;
  const int count = static_cast<int>(f.pixels.size());
  const int matte_count = static_cast<int>(req.matte.pixels.size());
  update([&](Snapshot& s) {
    s.phase = Phase::Uploading;
    s.frames_total = count + matte_count;
  });
  auto progress = [&](int base) {
    return [&, base](int sent, int) {
      update([&](Snapshot& s) {
        s.frames_done = base + sent;
        s.fraction = 0.1 * (base + sent) / std::max(1, count + matte_count);
      });
    };
  };
  const std::string upload_id = upload(conn, f, "ofx-", progress(0));
  Value::Map params = req.params;
  std::string matte_id;
  if (matte_count > 0) {
    matte_id = upload(conn, req.matte, "ofx-matte-", progress(count));
    params["matte"] = Value("upload:" + matte_id);
  }

  // 3. The job: the same parameters and frames give the same token, and the server answers
  // an identical request from its finished job.
  Value::Map spec{{"input", Value("")},
                  {"upload", Value(upload_id)},
                  {"params", Value(params)},
                  {"frames", Value(std::to_string(f.first) + ":" + std::to_string(f.first + count - 1))},
                  {"client_token", Value("ofx-" + hex64(fnv1a64(upload_id + "|" + matte_id + "|" + req.key)))},
                  // uint8 RGB pixels: the effect carries no image decoder (docs/protocol.md)
                  {"proxy_format", Value("raw")},
                  {"proxy_size", Value(kProxySize)}};
  if (!req.model.empty()) spec["model"] = Value(req.model);
  // A lost server: its journal keeps every accepted job; wait for it to come back (bounded,
  // abortable) and say hello again.
  auto await_server = [&]() {
    update([&](Snapshot& s) { s.status = "server lost: reconnecting"; });
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(kReconnectTimeout);
    while (true) {
      if (stop_) throw Aborted();
      if (std::chrono::steady_clock::now() > until)
        throw WireError("Lost the TokenFlow server at " + req.endpoint + " and it did not come back within 120 s. "
                        "Start it again (`tokenflow serve`) and press Render edit: finished work is reused.");
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      if (!endpoint_answers(req.endpoint, 200)) continue;
      try {
        conn.hello(kHelloTimeout);
        return;
      } catch (const WireError&) {
      }
    }
  };
  // The server may die after storing the job and before its answer leaves: the same
  // client_token makes a second submit answer with that first job, so ask again once it is back.
  Envelope accepted;
  while (true) {
    try {
      accepted = conn.wait_reply(conn.send("submit", Value(Value::Map{{"spec", Value(spec)}})), kRequestTimeout);
      break;
    } catch (const WireError& e) {
      if (!e.code.empty()) throw;  // the server answered: a refusal, not a lost server
      await_server();
    }
  }
  const std::string job = accepted.job;
  update([&](Snapshot& s) {
    s.phase = Phase::Queued;
    s.frames_done = 0;
  });

  // 4. Its events until the end: progress, frames (pixels), done / failed / cancelled.
  int64_t last = 0;
  bool cancel_sent = false;
  auto subscribe = [&]() {
    conn.send("subscribe", Value(Value::Map{{"from_seq", Value(last + 1)}, {"frames", Value(true)},
                                            {"proxies", Value(true)}}), job);
  };
  subscribe();
  while (true) {
    if (stop_ && !cancel_sent) {  // superseded or shutting down: do not leave the job running for nobody
      conn.send("cancel", Value(Value::Map{}), job);
      throw Aborted();
    }
    bool want_cancel = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      want_cancel = cancel_requested_ && !cancel_sent;
    }
    if (want_cancel) {
      conn.send("cancel", Value(Value::Map{}), job);
      cancel_sent = true;
    }
    Envelope env;
    bool got = false;
    try {
      got = conn.next(env, 0.2);
    } catch (const WireError&) {
      // Silence: the server went away. Follow the job from the last event seen once it is back.
      await_server();
      subscribe();
      continue;
    }
    if (!got) {
      if (conn.session_lost()) {  // restarted server: hello again and pick up after the last event
        conn.hello(kHelloTimeout);
        subscribe();
      }
      continue;
    }
    if (env.job != job || env.seq < 0) continue;
    if (env.seq <= last) continue;
    if (env.seq > last + 1) {  // a gap: ask again from the first missing event
      subscribe();
      continue;
    }
    last = env.seq;
    const Value& b = env.body;
    if (env.type == "progress") {
      const std::string stage = b["stage"].as_str();
      const int64_t step = b["step"].as_int(), total = b["total"].as_int();
      char text[96];
      if (stage == "inversion" && total > 0)
        std::snprintf(text, sizeof text, "inverting %d%%", static_cast<int>(100 * step / total));
      else if (stage == "edit" && total > 0)
        std::snprintf(text, sizeof text, "editing %d/%d", static_cast<int>(step), static_cast<int>(total));
      else
        std::snprintf(text, sizeof text, "%s", stage_word(stage));
      const double base = stage == "inversion" ? 0.1 : stage == "edit" ? 0.5 : stage == "decode" || stage == "write" ? 0.9 : 0.1;
      const double span = stage == "inversion" ? 0.4 : stage == "edit" ? 0.4 : 0.1;
      const double frac = base + (total > 0 ? span * step / total : 0.0);
      update([&](Snapshot& s) {
        s.phase = Phase::Running;
        s.status = text;
        s.fraction = std::max(s.fraction, frac);
      });
    } else if (env.type == "frame" && !env.blobs.empty()) {
      auto r = std::make_shared<ResultFrame>();
      const auto& shape = b["shape"].as_array();
      if (shape.size() != 3) continue;
      r->height = static_cast<int>(shape[0].as_int());
      r->width = static_cast<int>(shape[1].as_int());
      r->channels = static_cast<int>(shape[2].as_int());
      r->dtype = b["dtype"].as_str("uint8");
      r->pixels = std::move(env.blobs[0]);
      if (r->pixels.size() != static_cast<size_t>(r->width) * r->height * r->channels * bytes_per_sample(r->dtype))
        continue;
      const int number = static_cast<int>(b["frame"].as_int());
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (state_.generation != generation) throw Aborted();
        frames_[number] = std::move(r);
        auto stale_proxy = proxies_.find(number);  // the full frame is here: its proxy is not needed
        if (stale_proxy != proxies_.end()) {
          proxy_bytes_ -= stale_proxy->second->image.pixels.size();
          proxies_.erase(stale_proxy);
        }
        state_.frames_done = static_cast<int>(frames_.size());
      }
      changed_.notify_all();
    } else if (env.type == "proxy" && !env.blobs.empty() && b["format"].as_str() == "raw") {
      auto px = std::make_shared<ProxyFrame>();
      px->image.width = static_cast<int>(b["width"].as_int());
      px->image.height = static_cast<int>(b["height"].as_int());
      px->image.pixels = std::move(env.blobs[0]);
      if (px->image.width <= 0 || px->image.height <= 0 ||
          px->image.pixels.size() != static_cast<size_t>(px->image.width) * px->image.height * 3)
        continue;
      px->full_width = f.width;
      px->full_height = f.height;
      px->finished = b["kind"].as_str() == "frame";
      const int number = static_cast<int>(b["frame"].as_int());
      std::lock_guard<std::mutex> lock(mutex_);
      if (state_.generation != generation) throw Aborted();
      if (frames_.count(number)) continue;  // a replay's proxy of a frame already here
      px->arrival = ++proxy_arrivals_;
      keep_proxy(number, std::move(px));
    } else if (env.type == "done") {
      update([&](Snapshot& s) { s.phase = Phase::Done; s.fraction = 1.0; });
      return;
    } else if (env.type == "failed") {
      std::string text = b["message"].as_str("The edit failed.");
      if (!b["hint"].as_str().empty()) text += " " + b["hint"].as_str();
      update([&](Snapshot& s) { s.phase = Phase::Failed; s.error = text; });
      return;
    } else if (env.type == "cancelled") {
      update([&](Snapshot& s) { s.phase = Phase::Cancelled; });
      return;
    } else if (env.type == "accepted" || env.type == "requeued") {
      update([&](Snapshot& s) { if (s.phase < Phase::Queued) s.phase = Phase::Queued; });
    }
  }
}

std::string Session::upload(Connection& conn, const SourceFrames& f, const std::string& prefix,
                            const std::function<void(int, int)>& done) {
  const size_t frame_bytes = static_cast<size_t>(f.width) * f.height * f.channels * bytes_per_sample(f.dtype);
  uint64_t h = fnv1a64(f.dtype + "/" + std::to_string(f.width) + "x" + std::to_string(f.height) + "x" +
                       std::to_string(f.channels) + "@" + f.frame_rate + "#" + std::to_string(f.first));
  for (const auto& px : f.pixels) h = fnv1a64(px, h);
  const std::string upload = prefix + hex64(h);
  const int count = static_cast<int>(f.pixels.size());
  Value::Map open{{"upload", Value(upload)},         {"width", Value(f.width)},
                  {"height", Value(f.height)},       {"channels", Value(f.channels)},
                  {"dtype", Value(f.dtype)},         {"frame_rate", Value(f.frame_rate)},
                  {"first", Value(f.first)},         {"count", Value(count)}};
  Value state = conn.wait_reply(conn.send("upload_open", Value(open)), kRequestTimeout).body;
  std::vector<bool> have(count, false);
  for (const auto& run : state["have"].as_array()) {
    for (int64_t n = run.as_array().size() == 2 ? run.as_array()[0].as_int() : 1;
         run.as_array().size() == 2 && n <= run.as_array()[1].as_int(); ++n)
      if (n - f.first >= 0 && n - f.first < count) have[n - f.first] = true;
  }
  const size_t budget = static_cast<size_t>(std::max<int64_t>(64 << 10, conn.max_upload_message_bytes() - (64 << 10)));
  // One message carries parts up to the server's per-message bound; a frame bigger than
  // that goes in several parts (offset, end) across messages.
  std::vector<std::string> chunks;
  Value::Array parts;
  size_t batch_bytes = 0;
  int sent = 0;
  auto flush = [&]() {
    if (parts.empty()) return;
    std::vector<const std::string*> blobs;
    for (const auto& c : chunks) blobs.push_back(&c);
    Value::Map body{{"upload", Value(upload)}, {"parts", Value(parts)}};
    state = conn.wait_reply(conn.send("upload_frames", Value(body), "", blobs), kRequestTimeout).body;
    chunks.clear();
    parts.clear();
    batch_bytes = 0;
    done(sent, count);
  };
  if (!state["complete"].as_bool(false)) {
    for (int i = 0; i < count; ++i) {
      if (have[i]) { ++sent; continue; }
      const std::string& px = f.pixels[i];
      if (px.size() != frame_bytes) throw WireError("internal: a frame's size differs from its description");
      for (size_t off = 0; off < px.size();) {
        const size_t n = std::min(budget, px.size() - off);
        if (batch_bytes + n > budget) flush();
        chunks.emplace_back(px, off, n);
        parts.push_back(Value(Value::Map{{"frame", Value(f.first + i)},
                                         {"offset", Value(static_cast<int64_t>(off))},
                                         {"end", Value(off + n == px.size())},
                                         {"crc32", Value(static_cast<int64_t>(crc32(chunks.back())))}}));
        batch_bytes += n;
        off += n;
      }
      ++sent;
      if (stop_) throw Aborted();
    }
    flush();
  }
  if (!state["complete"].as_bool(false))
    throw WireError("The server did not complete the upload of " + std::to_string(count) + " frames (" +
                    std::to_string(state["missing"].as_int()) + " missing). Press Render edit again.");
  done(count, count);
  return upload;
}

}  // namespace tokenflow
