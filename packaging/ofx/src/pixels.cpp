#include "pixels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tokenflow {

namespace {
float load(const unsigned char* p, int depth) {
  if (depth == 1) return *p / 255.0f;
  if (depth == 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v / 65535.0f;
  }
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

void store(unsigned char* p, int depth, float v) {
  if (depth == 4) {
    std::memcpy(p, &v, 4);
    return;
  }
  v = std::min(1.0f, std::max(0.0f, v));
  if (depth == 1) {
    *p = static_cast<unsigned char>(std::lround(v * 255.0f));
  } else {
    const uint16_t s = static_cast<uint16_t>(std::lround(v * 65535.0f));
    std::memcpy(p, &s, 2);
  }
}

int sample_bytes(const std::string& dtype) { return dtype == "uint16" ? 2 : dtype == "float32" ? 4 : 1; }
}  // namespace

std::string pack_top_down(const HostImage& img) {
  const size_t line = static_cast<size_t>(img.width()) * img.channels * img.depth;
  std::string out(line * img.height(), '\0');
  for (int y = img.y2 - 1, i = 0; y >= img.y1; --y, ++i) std::memcpy(&out[i * line], img.row(y), line);
  return out;
}

std::string pack_top_down_over(const HostImage& img, int x1, int y1, int x2, int y2) {
  const size_t pixel = static_cast<size_t>(img.channels) * img.depth;
  const size_t line = static_cast<size_t>(x2 - x1) * pixel;
  std::string out(line * (y2 - y1), '\0');
  const int cx1 = std::max(x1, img.x1), cx2 = std::min(x2, img.x2);
  if (cx1 >= cx2) return out;
  for (int y = std::max(y1, img.y1); y < std::min(y2, img.y2); ++y) {
    const size_t row = static_cast<size_t>(y2 - 1 - y);  // top row first
    std::memcpy(&out[row * line + (cx1 - x1) * pixel], img.row(y) + static_cast<long>(cx1 - img.x1) * pixel,
                (cx2 - cx1) * pixel);
  }
  return out;
}

void copy_image(const HostImage& src, const HostImage& out, int wx1, int wy1, int wx2, int wy2) {
  for (int y = wy1; y < wy2; ++y) {
    unsigned char* o = out.row(y);
    const bool inside_y = src.data && y >= src.y1 && y < src.y2;
    for (int x = wx1; x < wx2; ++x) {
      unsigned char* op = o + static_cast<long>(x - out.x1) * out.channels * out.depth;
      for (int c = 0; c < out.channels; ++c) {
        float v = 0.0f;
        if (inside_y && x >= src.x1 && x < src.x2) {
          const int sc = std::min(c, src.channels - 1);
          const bool alpha_from_rgb = c == 3 && src.channels == 3;
          v = alpha_from_rgb ? 1.0f
                             : load(src.row(y) + (static_cast<long>(x - src.x1) * src.channels + sc) * src.depth, src.depth);
        }
        if (src.depth == out.depth && inside_y && x >= src.x1 && x < src.x2 && c < src.channels) {
          std::memcpy(op + c * out.depth, src.row(y) + (static_cast<long>(x - src.x1) * src.channels + c) * src.depth,
                      out.depth);  // same depth: bit-exact
        } else {
          store(op + c * out.depth, out.depth, v);
        }
      }
    }
  }
}

void write_result(const ResultFrame& r, const HostImage& src, const HostImage& out, double scale_x, double scale_y,
                  int fx0, int fy0, int wx1, int wy1, int wx2, int wy2, int cover_w, int cover_h) {
  const int rb = sample_bytes(r.dtype);
  if (cover_w <= 0 || cover_h <= 0) cover_w = r.width, cover_h = r.height;
  // A full-resolution pixel index -> the result's: the identity for a full frame, else the
  // result's pixel under that pixel's centre.
  auto to_result = [](int full, int cover, int size) {
    return cover == size ? full : static_cast<int>(std::floor((full + 0.5) * size / cover));
  };
  const bool exact = rb == out.depth && rb == 1;
  for (int y = wy1; y < wy2; ++y) {
    unsigned char* o = out.row(y);
    // Full-resolution row counted from the bottom, then the result's row counted from the top.
    const int fy = to_result(static_cast<int>(std::floor((y + 0.5) / scale_y)) - fy0, cover_h, r.height);
    const int ry = r.height - 1 - std::min(r.height - 1, std::max(0, fy));
    const unsigned char* rrow = reinterpret_cast<const unsigned char*>(r.pixels.data()) +
                                static_cast<size_t>(ry) * r.width * r.channels * rb;
    for (int x = wx1; x < wx2; ++x) {
      const int fx = std::min(r.width - 1, std::max(0, to_result(static_cast<int>(std::floor((x + 0.5) / scale_x)) - fx0,
                                                                  cover_w, r.width)));
      const unsigned char* rp = rrow + static_cast<size_t>(fx) * r.channels * rb;
      unsigned char* op = o + static_cast<long>(x - out.x1) * out.channels * out.depth;
      for (int c = 0; c < std::min(3, out.channels); ++c) {
        if (exact) op[c] = rp[c];
        else store(op + c * out.depth, out.depth, load(rp + c * rb, rb));
      }
      if (out.channels == 4) {  // alpha is the source's, untouched by the edit
        float a = 1.0f;
        if (src.data && src.channels == 4 && y >= src.y1 && y < src.y2 && x >= src.x1 && x < src.x2) {
          const unsigned char* sp = src.row(y) + (static_cast<long>(x - src.x1) * 4 + 3) * src.depth;
          if (src.depth == out.depth) {
            std::memcpy(op + 3 * out.depth, sp, out.depth);
            continue;
          }
          a = load(sp, src.depth);
        }
        store(op + 3 * out.depth, out.depth, a);
      }
    }
  }
}

void draw_bar(const HostImage& out, double fraction, float r, float g, float b, int wx1, int wy1, int wx2, int wy2) {
  const int h = std::max(3, out.height() / 40);
  const int filled = out.x1 + static_cast<int>(out.width() * std::min(1.0, std::max(0.0, fraction)));
  const float colour[3] = {r, g, b};
  for (int y = std::max(wy1, out.y1); y < std::min(wy2, out.y1 + h); ++y) {
    for (int x = wx1; x < wx2; ++x) {
      unsigned char* op = out.row(y) + static_cast<long>(x - out.x1) * out.channels * out.depth;
      const float k = x < filled ? 1.0f : 0.25f;
      for (int c = 0; c < 3; ++c) store(op + c * out.depth, out.depth, colour[c] * k);
    }
  }
}

}  // namespace tokenflow
