// Pixels between the host's images and the wire: OFX images are bottom row first with a
// row stride (which may be negative); the wire's frames are top row first, packed.
#pragma once

#include <string>

#include "session.hpp"

namespace tokenflow {

struct HostImage {
  void* data = nullptr;
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // bounds, pixels
  int row_bytes = 0;
  int depth = 1;     // bytes per sample: 1 (byte), 2 (short), 4 (float)
  int channels = 4;  // 4 (RGBA), 3 (RGB) or 1 (Alpha: a mask clip's images)
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
  unsigned char* row(int y) const { return static_cast<unsigned char*>(data) + static_cast<long>(y - y1) * row_bytes; }
};

// The host's image as the upload wants it: top row first, packed, its own sample type.
std::string pack_top_down(const HostImage& img);
// The same, over the pixel rectangle [x1, x2) x [y1, y2) (another clip's bounds: the source's
// frame); samples outside the image's own bounds are 0 (OFX: outside an image is transparent black).
std::string pack_top_down_over(const HostImage& img, int x1, int y1, int x2, int y2);
// out = src (pass-through) inside the window.
void copy_image(const HostImage& src, const HostImage& out, int wx1, int wy1, int wx2, int wy2);
// out = the result frame, sampled at `scale` (nearest pixel), alpha from src where out has alpha.
// (fx0, fy0): the full-resolution source's bottom-left corner. The result stands for a
// full-resolution frame of cover_w x cover_h pixels (0: its own size, a full frame; a proxy
// is smaller and is stretched over it, nearest pixel).
void write_result(const ResultFrame& r, const HostImage& src, const HostImage& out, double scale_x, double scale_y,
                  int fx0, int fy0, int wx1, int wy1, int wx2, int wy2, int cover_w = 0, int cover_h = 0);
// A bar along the bottom of the picture: the edit's progress (colour by state), drawn over out.
void draw_bar(const HostImage& out, double fraction, float r, float g, float b, int wx1, int wy1, int wx2, int wy2);

}  // namespace tokenflow
