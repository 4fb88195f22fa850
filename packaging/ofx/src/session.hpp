// One effect instance's edit: its frames uploaded, its job submitted and followed, its
// finished frames kept for the render action. All network work happens on the
// session's own worker thread; the host's threads only post commands and read state
// under a mutex, so no host thread (UI or render) ever waits on the network unbounded.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "value.hpp"

namespace tokenflow {

class Connection;

// The clip's frames as the host gave them, copied in the Render edit callback:
// rows top to bottom, tightly packed, little-endian samples (the upload's layout).
struct SourceFrames {
  int width = 0, height = 0, channels = 3;
  std::string dtype = "uint8";  // "uint8", "uint16" or "float32"
  std::string frame_rate = "24";
  int first = 0;  // the host's frame number of pixels[0]
  std::vector<std::string> pixels;
};

struct EditRequest {
  std::string endpoint;                 // where the server is
  std::vector<std::string> start_command;  // run it when nothing answers there (empty: never)
  Value::Map params;                    // EditParams fields by name
  std::string model;                    // "" = the server's default
  std::string key;                      // identifies params + frames (stale detection)
  SourceFrames frames;
  // The Matte clip's frames, uploaded as a matte of their own (params.matte "upload:ID",
  // docs/protocol.md); no pixels: no matte, the whole frame is edited.
  SourceFrames matte;
};

struct ResultFrame {
  int width = 0, height = 0, channels = 3;
  std::string dtype = "uint8";
  std::string pixels;  // rows top to bottom
};

// The server's small image of a frame not finished yet (docs/protocol.md, proxy_format "raw"):
// what the viewer shows at reduced render scale meanwhile. A finished frame's proxy
// (kind "frame") is never replaced by a later keyframe preview.
struct ProxyFrame {
  ResultFrame image;  // uint8 RGB, rows top to bottom, at the proxy's own size
  int full_width = 0, full_height = 0;  // the full-resolution frame it stands for
  bool finished = false;  // kind "frame" (a downscaled finished frame), not a "preview"
  uint64_t arrival = 0;   // for evicting the oldest when over the memory bound
};

enum class Phase { Idle, Connecting, Uploading, Queued, Running, Done, Failed, Cancelled };

struct Snapshot {
  Phase phase = Phase::Idle;
  std::string key;     // the key of the edit this state belongs to
  std::string status;  // the status line's text
  std::string error;   // Failed: what happened and what to do
  int frames_done = 0, frames_total = 0;
  double fraction = 0.0;  // 0..1 overall, for the drawn bar and the host's progress
  uint64_t generation = 0;
};

class Session {
 public:
  Session();
  ~Session();  // stops the worker (bounded: every wait inside it polls the stop flag)
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts an edit (replacing the current one, whose job is cancelled); returns at once.
  void start(EditRequest request);
  // Cancels the running edit's job; returns at once.
  void cancel();
  Snapshot snapshot() const;
  std::shared_ptr<const ResultFrame> frame(int number) const;
  // The latest proxy of frame `number` while its full-resolution frame has not come; nullptr if none.
  std::shared_ptr<const ProxyFrame> proxy(int number) const;

  enum class Wait { Ready, Ended, Aborted, TimedOut };
  // Waits for frame `number` of the current edit: checks `aborted` every 50 ms, gives up after timeout_s.
  Wait wait_frame(int number, const std::function<bool()>& aborted, double timeout_s) const;

 private:
  void worker();
  void run(EditRequest& request, uint64_t generation);
  // Uploads `f` (resuming what the server holds) and returns its upload id; `done(sent, count)` follows it.
  std::string upload(Connection& conn, const SourceFrames& f, const std::string& prefix,
                     const std::function<void(int, int)>& done);
  void set(const std::function<void(Snapshot&)>& change);

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::condition_variable command_;
  Snapshot state_;
  std::map<int, std::shared_ptr<const ResultFrame>> frames_;
  // Only frames without their full-resolution result, at most kMaxProxyBytes of pixels.
  std::map<int, std::shared_ptr<const ProxyFrame>> proxies_;
  size_t proxy_bytes_ = 0;
  uint64_t proxy_arrivals_ = 0;
  void keep_proxy(int number, std::shared_ptr<const ProxyFrame> proxy);  // mutex_ held
  std::unique_ptr<EditRequest> pending_;
  bool cancel_requested_ = false;
  bool quit_ = false;
  std::atomic<bool> stop_{false};  // ends the current run's waits (a newer edit, or shutdown)
  std::thread thread_;
};

std::string status_text(const Snapshot& s);

}  // namespace tokenflow
