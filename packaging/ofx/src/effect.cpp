// The TokenFlow OpenFX image effect: the host's side of an edit. It describes itself
// (filter and general contexts, 8/16-bit and float RGB(A), temporal clip access), copies
// the clip's frames when the user presses Render edit and hands them to its Session
// (session.cpp: upload, submit, follow, on its own thread), and renders each frame
// from what has come back: the edited frame, or the source with the edit's state drawn
// on it. The model never runs here: the server does that.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "endpoint.hpp"
#include "pixels.hpp"
#include "session.hpp"
#include "tokenflow_ofx_api.h"
#include "util.hpp"

using namespace tokenflow;

namespace {

OfxHost* g_host = nullptr;
const OfxPropertySuiteV1* g_prop = nullptr;
const OfxParameterSuiteV1* g_param = nullptr;
const OfxImageEffectSuiteV1* g_effect = nullptr;
const OfxMessageSuiteV1* g_message = nullptr;    // optional
const OfxProgressSuiteV1* g_progress = nullptr;  // optional

constexpr const char* kPluginId = "org.tokenflow.TokenFlow";
constexpr const char* kMatteClip = "Matte";
// Parameters, by script name. kEditParams change the result: editing one makes it stale.
constexpr const char* kPrompt = "prompt";
constexpr const char* kNegative = "negative";
constexpr const char* kSeed = "seed";
constexpr const char* kSteps = "steps";
constexpr const char* kGuidance = "guidance";
constexpr const char* kKfInterval = "kfInterval";
constexpr const char* kWorkingSize = "workingSize";
constexpr const char* kModel = "model";
constexpr const char* kServer = "server";
constexpr const char* kMatteInvert = "matteInvert";
constexpr const char* kMatteFeather = "matteFeather";
constexpr const char* kRenderEdit = "renderEdit";
constexpr const char* kCancel = "cancel";
constexpr const char* kStatus = "status";
const char* const kEditParams[] = {kPrompt, kNegative, kSeed, kSteps, kGuidance, kKfInterval, kWorkingSize, kModel};
// A final render waits at most this long for one frame (the host's abort ends it sooner).
constexpr double kFinalFrameWait = 3600.0;

struct Instance {
  OfxImageEffectHandle handle = nullptr;
  OfxParamSetHandle params = nullptr;
  Session session;
  std::atomic<uint64_t> reported{0};  // the generation whose error went to the message suite
  std::atomic<uint64_t> refused{0};   // the generation a final render was refused for (said once)
  std::atomic<bool> in_sequence{false};  // between begin and end of a final sequence render (progress shown)
};

Instance* instance_of(OfxImageEffectHandle effect) {
  OfxPropertySetHandle props = nullptr;
  void* data = nullptr;
  if (g_effect->getPropertySet(effect, &props) != kOfxStatOK) return nullptr;
  g_prop->propGetPointer(props, kOfxPropInstanceData, 0, &data);
  return static_cast<Instance*>(data);
}

OfxParamHandle param(OfxParamSetHandle set, const char* name) {
  OfxParamHandle h = nullptr;
  g_param->paramGetHandle(set, name, &h, nullptr);
  return h;
}

std::string get_string(OfxParamSetHandle set, const char* name) {
  char* value = nullptr;
  OfxParamHandle h = param(set, name);
  if (!h || g_param->paramGetValue(h, &value) != kOfxStatOK || !value) return "";
  return value;
}

int get_int(OfxParamSetHandle set, const char* name) {
  int value = 0;
  if (OfxParamHandle h = param(set, name)) g_param->paramGetValue(h, &value);
  return value;
}

double get_double(OfxParamSetHandle set, const char* name) {
  double value = 0;
  if (OfxParamHandle h = param(set, name)) g_param->paramGetValue(h, &value);
  return value;
}

bool get_bool(OfxParamSetHandle set, const char* name) { return get_int(set, name) != 0; }

void set_status(Instance* inst, const std::string& text) {
  // Only from the host's UI actions (instance changed): OFX lets an effect write a
  // parameter there, never from a render.
  if (OfxParamHandle h = param(inst->params, kStatus)) g_param->paramSetValue(h, text.c_str());
}

void post(void* handle, const char* type, const std::string& text) {
  if (g_message) g_message->message(handle, type, "", "%s", text.c_str());
}

// The edit parameters as the wire's params map, and a key that changes when any of them does.
Value::Map edit_params(OfxParamSetHandle set) {
  Value::Map p{{"prompt", Value(get_string(set, kPrompt))},
               {"negative_prompt", Value(get_string(set, kNegative))},
               {"seed", Value(get_int(set, kSeed))},
               {"steps", Value(get_int(set, kSteps))},
               {"guidance", Value(get_double(set, kGuidance))},
               {"kf_interval", Value(get_int(set, kKfInterval))},
               {"short_side", Value(get_int(set, kWorkingSize))}};
  return p;
}

// The Matte clip: declared in the general context only, and optional there.
bool matte_connected(OfxImageEffectHandle effect) {
  OfxImageClipHandle clip = nullptr;
  OfxPropertySetHandle props = nullptr;
  if (g_effect->clipGetHandle(effect, kMatteClip, &clip, &props) != kOfxStatOK || !props) return false;
  int connected = 0;
  return g_prop->propGetInt(props, kOfxImageClipPropConnected, 0, &connected) == kOfxStatOK && connected;
}

// The matte's parameters (docs/protocol.md: matte_invert, matte_feather), only with a matte:
// without one the whole frame is edited whatever they say.
void add_matte_params(OfxParamSetHandle set, Value::Map& p) {
  p["matte_invert"] = Value(get_bool(set, kMatteInvert));
  p["matte_feather"] = Value(get_double(set, kMatteFeather));
}

std::string edit_key(const Instance* inst) {
  Value::Map p = edit_params(inst->params);
  if (matte_connected(inst->handle)) add_matte_params(inst->params, p);
  return Value(p).pack() + "|" + get_string(inst->params, kModel) + "|" + get_string(inst->params, kServer);
}

std::string snapshot_text(const Snapshot& s, bool stale) {
  std::string text = status_text(s);
  if (stale && s.phase != Phase::Idle) text = "Stale: parameters changed since this edit; press Render edit. (" + text + ")";
  return text;
}

bool get_image(OfxPropertySetHandle img, HostImage& out) {
  if (!img) return false;
  char* depth = nullptr;
  char* comps = nullptr;
  int bounds[4] = {0, 0, 0, 0};
  g_prop->propGetPointer(img, kOfxImagePropData, 0, &out.data);
  g_prop->propGetIntN(img, kOfxImagePropBounds, 4, bounds);
  g_prop->propGetInt(img, kOfxImagePropRowBytes, 0, &out.row_bytes);
  g_prop->propGetString(img, kOfxImageEffectPropPixelDepth, 0, &depth);
  g_prop->propGetString(img, kOfxImageEffectPropComponents, 0, &comps);
  out.x1 = bounds[0];
  out.y1 = bounds[1];
  out.x2 = bounds[2];
  out.y2 = bounds[3];
  const std::string d = depth ? depth : "";
  const std::string c = comps ? comps : "";
  out.depth = d == kOfxBitDepthShort ? 2 : d == kOfxBitDepthFloat ? 4 : d == kOfxBitDepthByte ? 1 : 0;
  out.channels = c == kOfxImageComponentRGBA ? 4 : c == kOfxImageComponentRGB ? 3 : c == kOfxImageComponentAlpha ? 1 : 0;
  return out.data && out.depth && out.channels;
}

std::string exact_rate(double fps) {
  // The host gives a double; the wire wants the exact rate ("30000/1001" for 29.97).
  const double ntsc = fps * 1001.0 / 1000.0;
  if (std::fabs(fps - std::round(fps)) < 1e-6) return std::to_string(static_cast<long>(std::lround(fps)));
  if (std::fabs(ntsc - std::round(ntsc)) < 1e-3) return std::to_string(std::lround(ntsc) * 1000) + "/1001";
  return std::to_string(std::lround(fps * 1000)) + "/1000";
}

// ---- actions ----

OfxStatus describe(OfxImageEffectHandle effect) {
  OfxPropertySetHandle props = nullptr;
  g_effect->getPropertySet(effect, &props);
  g_prop->propSetString(props, kOfxPropLabel, 0, "TokenFlow");
  g_prop->propSetString(props, kOfxImageEffectPluginPropGrouping, 0, "AI");
  g_prop->propSetString(props, kOfxPropPluginDescription, 0,
                        "Text-driven video editing (TokenFlow, Stable Diffusion) by a TokenFlow server.");
  g_prop->propSetString(props, kOfxImageEffectPropSupportedContexts, 0, kOfxImageEffectContextFilter);
  g_prop->propSetString(props, kOfxImageEffectPropSupportedContexts, 1, kOfxImageEffectContextGeneral);
  g_prop->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 0, kOfxBitDepthByte);
  g_prop->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 1, kOfxBitDepthShort);
  g_prop->propSetString(props, kOfxImageEffectPropSupportedPixelDepths, 2, kOfxBitDepthFloat);
  g_prop->propSetInt(props, kOfxImageEffectPropTemporalClipAccess, 0, 1);
  g_prop->propSetInt(props, kOfxImageEffectPropSupportsTiles, 0, 0);
  g_prop->propSetInt(props, kOfxImageEffectPropSupportsMultiResolution, 0, 1);
  g_prop->propSetInt(props, kOfxImageEffectPropSupportsMultipleClipDepths, 0, 0);
  g_prop->propSetInt(props, kOfxImageEffectPluginPropSingleInstance, 0, 0);
  g_prop->propSetInt(props, kOfxImageEffectPluginPropHostFrameThreading, 0, 0);
  g_prop->propSetString(props, kOfxImageEffectPluginRenderThreadSafety, 0, kOfxImageEffectRenderFullySafe);
  return kOfxStatOK;
}

void define_clip(OfxImageEffectHandle effect, const char* name, bool optional, bool mask) {
  OfxPropertySetHandle clip = nullptr;
  g_effect->clipDefine(effect, name, &clip);
  if (mask) {
    // A mask is usually Alpha; a host may connect a picture too. The server takes the
    // matte from whichever comes: the one channel, RGBA's alpha, RGB's luma (docs/protocol.md).
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentAlpha);
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 1, kOfxImageComponentRGBA);
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 2, kOfxImageComponentRGB);
  } else {
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 0, kOfxImageComponentRGBA);
    g_prop->propSetString(clip, kOfxImageEffectPropSupportedComponents, 1, kOfxImageComponentRGB);
  }
  g_prop->propSetInt(clip, kOfxImageEffectPropTemporalClipAccess, 0, std::strcmp(name, "Output") != 0);
  g_prop->propSetInt(clip, kOfxImageEffectPropSupportsTiles, 0, 0);
  if (optional) g_prop->propSetInt(clip, kOfxImageClipPropOptional, 0, 1);
  if (mask) g_prop->propSetInt(clip, kOfxImageClipPropIsMask, 0, 1);
}

OfxPropertySetHandle define(OfxParamSetHandle set, const char* type, const char* name, const char* label,
                            const char* hint) {
  OfxPropertySetHandle p = nullptr;
  g_param->paramDefine(set, type, name, &p);
  g_prop->propSetString(p, kOfxPropLabel, 0, label);
  g_prop->propSetString(p, kOfxParamPropHint, 0, hint);
  g_prop->propSetString(p, kOfxParamPropScriptName, 0, name);
  if (std::strcmp(type, kOfxParamTypePushButton) != 0) g_prop->propSetInt(p, kOfxParamPropAnimates, 0, 0);
  return p;
}

void define_int(OfxParamSetHandle set, const char* name, const char* label, const char* hint, int def, int lo, int hi) {
  OfxPropertySetHandle p = define(set, kOfxParamTypeInteger, name, label, hint);
  g_prop->propSetInt(p, kOfxParamPropDefault, 0, def);
  g_prop->propSetInt(p, kOfxParamPropMin, 0, lo);
  g_prop->propSetInt(p, kOfxParamPropMax, 0, hi);
  g_prop->propSetInt(p, kOfxParamPropDisplayMin, 0, lo);
  g_prop->propSetInt(p, kOfxParamPropDisplayMax, 0, std::min(hi, 1 << 16));
}

void define_string(OfxParamSetHandle set, const char* name, const char* label, const char* hint, const char* def,
                   const char* mode) {
  OfxPropertySetHandle p = define(set, kOfxParamTypeString, name, label, hint);
  g_prop->propSetString(p, kOfxParamPropDefault, 0, def);
  g_prop->propSetString(p, kOfxParamPropStringMode, 0, mode);
}

OfxStatus describe_in_context(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
  char* context = nullptr;
  g_prop->propGetString(in_args, kOfxImageEffectPropContext, 0, &context);
  define_clip(effect, kOfxImageEffectSimpleSourceClipName, false, false);
  define_clip(effect, kOfxImageEffectOutputClipName, false, false);
  // The matte clip is declared in the general context (a filter has Source only): when
  // connected, Render edit uploads its frames and the server edits only inside it.
  const bool general = context && std::strcmp(context, kOfxImageEffectContextGeneral) == 0;
  if (general) define_clip(effect, kMatteClip, true, true);

  OfxParamSetHandle set = nullptr;
  g_effect->getParamSet(effect, &set);
  // Ranges and defaults follow bridge/wire/edit_params.py (EDIT_OPTIONS); the server checks them again.
  define_string(set, kPrompt, "Prompt", "What the edited clip should look like.", "", kOfxParamStringIsMultiLine);
  define_string(set, kNegative, "Negative prompt", "What the edit should avoid.",
                "ugly, blurry, low res, unrealistic, unaesthetic", kOfxParamStringIsMultiLine);
  define_int(set, kSeed, "Seed", "The same seed gives the same result.", 0, 0, 2147483647);
  define_int(set, kSteps, "Steps", "Denoising steps.", 50, 1, 1000);
  OfxPropertySetHandle g = define(set, kOfxParamTypeDouble, kGuidance, "Guidance", "Classifier-free guidance scale.");
  g_prop->propSetDouble(g, kOfxParamPropDefault, 0, 7.5);
  g_prop->propSetDouble(g, kOfxParamPropDisplayMin, 0, 0.0);
  g_prop->propSetDouble(g, kOfxParamPropDisplayMax, 0, 50.0);
  define_int(set, kKfInterval, "Keyframe interval", "One keyframe per this many frames.", 8, 1, 10000);
  define_int(set, kWorkingSize, "Working size", "Working short side in pixels (frames come back at the source size).",
             512, 64, 2048);
  if (general) {
    OfxPropertySetHandle inv = define(set, kOfxParamTypeBoolean, kMatteInvert, "Invert matte",
                                      "Edit outside the Matte input instead of inside it.");
    g_prop->propSetInt(inv, kOfxParamPropDefault, 0, 0);
    OfxPropertySetHandle fe = define(set, kOfxParamTypeDouble, kMatteFeather, "Matte feather",
                                     "Soften the matte's edge over this many source pixels.");
    g_prop->propSetDouble(fe, kOfxParamPropDefault, 0, 0.0);
    g_prop->propSetDouble(fe, kOfxParamPropMin, 0, 0.0);
    g_prop->propSetDouble(fe, kOfxParamPropMax, 0, 1000.0);
    g_prop->propSetDouble(fe, kOfxParamPropDisplayMin, 0, 0.0);
    g_prop->propSetDouble(fe, kOfxParamPropDisplayMax, 0, 100.0);
  }
  define_string(set, kModel, "Model", "A model the server knows; empty: the server's default.", "",
                kOfxParamStringIsSingleLine);
  define_string(set, kServer, "Server",
                "The server's endpoint (ipc://... or tcp://HOST:PORT); empty: your own local server, started "
                "when needed.", "", kOfxParamStringIsSingleLine);
  define(set, kOfxParamTypePushButton, kRenderEdit, "Render edit", "Send the clip's frames and edit them.");
  define(set, kOfxParamTypePushButton, kCancel, "Cancel", "Stop the running edit.");
  OfxPropertySetHandle st = define(set, kOfxParamTypeString, kStatus, "Status", "What the edit is doing.");
  g_prop->propSetString(st, kOfxParamPropStringMode, 0, kOfxParamStringIsLabel);
  g_prop->propSetString(st, kOfxParamPropDefault, 0, "Ready: set a prompt and press Render edit.");
  g_prop->propSetInt(st, kOfxParamPropEnabled, 0, 0);
  g_prop->propSetInt(st, kOfxParamPropPersistant, 0, 0);
  g_prop->propSetInt(st, kOfxParamPropEvaluateOnChange, 0, 0);
  g_prop->propSetInt(st, kOfxParamPropCanUndo, 0, 0);
  return kOfxStatOK;
}

OfxStatus create_instance(OfxImageEffectHandle effect) {
  auto* inst = new Instance();
  inst->handle = effect;
  g_effect->getParamSet(effect, &inst->params);
  OfxPropertySetHandle props = nullptr;
  g_effect->getPropertySet(effect, &props);
  g_prop->propSetPointer(props, kOfxPropInstanceData, 0, inst);
  return kOfxStatOK;
}

OfxStatus destroy_instance(OfxImageEffectHandle effect) {
  Instance* inst = instance_of(effect);
  OfxPropertySetHandle props = nullptr;
  g_effect->getPropertySet(effect, &props);
  g_prop->propSetPointer(props, kOfxPropInstanceData, 0, nullptr);
  delete inst;  // stops its worker: bounded, every wait there polls the stop flag
  return kOfxStatOK;
}

// The Matte clip's frames first..last, over the source's frame (source_bounds), as the host
// gives them (Alpha, RGB or RGBA at the clip's depth): the server picks the matte out of them.
// False (after telling the user) when the host gives none for a frame.
bool read_matte(Instance* inst, int first, int last, const SourceFrames& source, int x1, int y1, SourceFrames& matte) {
  OfxImageClipHandle clip = nullptr;
  g_effect->clipGetHandle(inst->handle, kMatteClip, &clip, nullptr);
  matte.first = first;
  matte.frame_rate = source.frame_rate;
  matte.width = source.width;
  matte.height = source.height;
  matte.dtype = source.dtype;
  for (int t = first; t <= last; ++t) {
    OfxPropertySetHandle img = nullptr;
    HostImage h;
    const bool got = g_effect->clipGetImage(clip, t, nullptr, &img) == kOfxStatOK && img;
    const bool ok = got && get_image(img, h) && (matte.pixels.empty() || h.channels == matte.channels);
    if (ok) {
      matte.channels = h.channels;
      matte.dtype = h.depth == 1 ? "uint8" : h.depth == 2 ? "uint16" : "float32";
      // Over the source frame's pixels: a mask's own bounds may be smaller (outside it is 0).
      matte.pixels.push_back(pack_top_down_over(h, x1, y1, x1 + source.width, y1 + source.height));
    }
    if (got) g_effect->clipReleaseImage(img);
    if (!ok) {
      post(inst->handle, kOfxMessageError, "TokenFlow: the Matte input gave no usable image for frame " +
           std::to_string(t) + "; disconnect it to edit the whole frame, or give it a matte for every frame.");
      return false;
    }
  }
  return true;
}

// Render edit: copy the clip's frames from the host (OFX allows fetching images in this
// action), then hand them to the session, which does all network work on its own thread.
OfxStatus render_edit(Instance* inst) {
  const std::string prompt = get_string(inst->params, kPrompt);
  if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) {
    post(inst->handle, kOfxMessageError, "TokenFlow: type a prompt first, then press Render edit.");
    set_status(inst, "Error: no prompt. Type what the clip should look like.");
    return kOfxStatOK;
  }
  OfxImageClipHandle src = nullptr;
  OfxPropertySetHandle clip_props = nullptr;
  g_effect->clipGetHandle(inst->handle, kOfxImageEffectSimpleSourceClipName, &src, &clip_props);
  double range[2] = {0, 0};
  double fps = 24.0;
  g_prop->propGetDoubleN(clip_props, kOfxImageEffectPropFrameRange, 2, range);
  g_prop->propGetDouble(clip_props, kOfxImageEffectPropFrameRate, 0, &fps);
  EditRequest req;
  req.frames.first = static_cast<int>(std::lround(range[0]));
  req.frames.frame_rate = exact_rate(fps > 0 ? fps : 24.0);
  const int last = static_cast<int>(std::lround(range[1]));
  if (req.frames.first < 0) {
    post(inst->handle, kOfxMessageError, "TokenFlow: the clip starts before frame 0; the server numbers frames from 0.");
    return kOfxStatOK;
  }
  int x1 = 0, y1 = 0;  // the Source frame's bottom-left pixel: the matte is read over the same pixels
  for (int t = req.frames.first; t <= last; ++t) {
    OfxPropertySetHandle img = nullptr;
    if (g_effect->clipGetImage(src, t, nullptr, &img) != kOfxStatOK || !img) {
      post(inst->handle, kOfxMessageError, "TokenFlow: the host gave no image for frame " + std::to_string(t) + ".");
      return kOfxStatOK;
    }
    HostImage h;
    const bool ok = get_image(img, h);
    if (ok) {
      if (req.frames.pixels.empty()) {
        req.frames.width = h.width();
        req.frames.height = h.height();
        x1 = h.x1;
        y1 = h.y1;
        req.frames.channels = h.channels;
        req.frames.dtype = h.depth == 1 ? "uint8" : h.depth == 2 ? "uint16" : "float32";
      }
      if (h.width() == req.frames.width && h.height() == req.frames.height) req.frames.pixels.push_back(pack_top_down(h));
    }
    g_effect->clipReleaseImage(img);
    if (!ok || req.frames.pixels.size() != static_cast<size_t>(t - req.frames.first + 1)) {
      post(inst->handle, kOfxMessageError, "TokenFlow: frame " + std::to_string(t) +
           " differs in size or format from the clip's first frame; edit a clip of one format.");
      return kOfxStatOK;
    }
  }
  if (matte_connected(inst->handle) && !read_matte(inst, req.frames.first, last, req.frames, x1, y1, req.matte))
    return kOfxStatOK;
  const std::string server = get_string(inst->params, kServer);
  LocalServer local = local_server();
  req.endpoint = server.empty() ? local.endpoint : server;
  if (server.empty() && req.endpoint.rfind("ipc://", 0) == 0) req.start_command = local.start_command;
  req.params = edit_params(inst->params);
  if (!req.matte.pixels.empty()) add_matte_params(inst->params, req.params);
  req.model = get_string(inst->params, kModel);
  req.key = edit_key(inst);
  inst->session.start(std::move(req));
  set_status(inst, status_text(inst->session.snapshot()));
  return kOfxStatOK;
}

OfxStatus instance_changed(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
  Instance* inst = instance_of(effect);
  if (!inst) return kOfxStatErrBadHandle;
  char* type = nullptr;
  char* name = nullptr;
  g_prop->propGetString(in_args, kOfxPropType, 0, &type);
  g_prop->propGetString(in_args, kOfxPropName, 0, &name);
  if (!type || !name || std::strcmp(type, kOfxTypeParameter) != 0) return kOfxStatReplyDefault;
  const std::string n = name;
  if (n == kStatus) return kOfxStatOK;  // our own write
  if (n == kRenderEdit) return render_edit(inst);
  if (n == kCancel) {
    inst->session.cancel();
    set_status(inst, "Cancelling...");
    return kOfxStatOK;
  }
  const Snapshot s = inst->session.snapshot();
  set_status(inst, snapshot_text(s, s.phase != Phase::Idle && s.key != edit_key(inst)));
  return kOfxStatOK;
}

OfxStatus frames_needed(OfxPropertySetHandle in_args, OfxPropertySetHandle out_args) {
  double t = 0;
  g_prop->propGetDouble(in_args, kOfxPropTime, 0, &t);
  const double range[2] = {t, t};  // a render reads its own frame; Render edit reads the rest itself
  const std::string prop = std::string(kTfOfxFrameRangePrefix) + kOfxImageEffectSimpleSourceClipName;
  g_prop->propSetDoubleN(out_args, prop.c_str(), 2, range);
  return kOfxStatOK;
}

OfxStatus render(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
  Instance* inst = instance_of(effect);
  if (!inst) return kOfxStatErrBadHandle;
  double t = 0;
  double scale[2] = {1.0, 1.0};
  int window[4] = {0, 0, 0, 0};
  int interactive = 0;
  g_prop->propGetDouble(in_args, kOfxPropTime, 0, &t);
  g_prop->propGetDoubleN(in_args, kOfxImageEffectPropRenderScale, 2, scale);
  g_prop->propGetIntN(in_args, kOfxImageEffectPropRenderWindow, 4, window);
  if (g_prop->propGetInt(in_args, kOfxImageEffectPropInteractiveRenderStatus, 0, &interactive) != kOfxStatOK)
    interactive = 0;  // a 1.3 host does not say: treat as a final render (waits, honouring abort)

  OfxImageClipHandle src_clip = nullptr, out_clip = nullptr;
  g_effect->clipGetHandle(effect, kOfxImageEffectSimpleSourceClipName, &src_clip, nullptr);
  g_effect->clipGetHandle(effect, kOfxImageEffectOutputClipName, &out_clip, nullptr);
  OfxPropertySetHandle src_img = nullptr, out_img = nullptr;
  if (g_effect->clipGetImage(out_clip, t, nullptr, &out_img) != kOfxStatOK) return kOfxStatFailed;
  g_effect->clipGetImage(src_clip, t, nullptr, &src_img);
  struct Release {
    OfxPropertySetHandle a, b;
    ~Release() {
      if (a) g_effect->clipReleaseImage(a);
      if (b) g_effect->clipReleaseImage(b);
    }
  } release{src_img, out_img};
  HostImage src, out;
  get_image(src_img, src);
  if (!get_image(out_img, out)) return kOfxStatFailed;
  const int wx1 = std::max(window[0], out.x1), wy1 = std::max(window[1], out.y1);
  const int wx2 = std::min(window[2], out.x2), wy2 = std::min(window[3], out.y2);

  const int frame = static_cast<int>(std::lround(t));
  Snapshot s = inst->session.snapshot();
  const bool stale = s.phase != Phase::Idle && s.key != edit_key(inst);
  std::shared_ptr<const ResultFrame> result = inst->session.frame(frame);
  const bool running = s.phase == Phase::Connecting || s.phase == Phase::Uploading || s.phase == Phase::Queued ||
                       s.phase == Phase::Running;
  if (!result && !interactive && running && !stale) {
    // A final render (delivery): wait for this frame's full-resolution result, bounded,
    // ending at once when the host aborts.
    // While waiting, the host's progress bar follows the edit; its Cancel (a "no" reply) aborts too.
    const auto aborted = [effect, inst] {
      if (g_progress && inst->in_sequence &&
          g_progress->progressUpdate(effect, inst->session.snapshot().fraction) == kOfxStatReplyNo)
        return true;
      return g_effect->abort(effect) != 0;
    };
    const Session::Wait w = inst->session.wait_frame(frame, aborted, kFinalFrameWait);
    if (w == Session::Wait::Aborted) return kOfxStatOK;
    result = inst->session.frame(frame);
    s = inst->session.snapshot();
  }
  if (s.phase == Phase::Failed && inst->reported.exchange(s.generation) != s.generation)
    post(effect, kOfxMessageError, "TokenFlow: " + s.error);
  // A delivery holds edited frames or fails: never an older edit, or the source of a
  // cancelled one, in silence. (Never edited at all, the effect is a pass-through.)
  if (!interactive && (stale || s.phase == Phase::Cancelled)) {
    const std::string why = stale ? "the parameters changed since the last Render edit; press Render edit "
                                    "(or undo the change) before rendering"
                                  : "the edit was cancelled; press Render edit";
    if (inst->refused.exchange(s.generation) != s.generation) post(effect, kOfxMessageError, "TokenFlow: " + why + ".");
    return kOfxStatFailed;
  }
  // The full-resolution source's bottom-left corner in pixels, from this image's bounds at this scale.
  const int fx0 = src.data ? static_cast<int>(std::lround(src.x1 / scale[0])) : 0;
  const int fy0 = src.data ? static_cast<int>(std::lround(src.y1 / scale[1])) : 0;
  if (result && src.data) {
    write_result(*result, src, out, scale[0], scale[1], fx0, fy0, wx1, wy1, wx2, wy2);
    if (stale) draw_bar(out, 1.0, 0.6f, 0.6f, 0.6f, wx1, wy1, wx2, wy2);
    return kOfxStatOK;
  }
  // The viewer at reduced scale (a scrub, a proxy playback): the server's latest proxy of
  // this frame stands in until its full-resolution frame comes. At scale 1.0 the viewer
  // keeps showing the source, and a delivery always waits for the full frame.
  const bool reduced = scale[0] < 1.0 || scale[1] < 1.0;
  std::shared_ptr<const ProxyFrame> proxy = interactive && reduced && src.data ? inst->session.proxy(frame) : nullptr;
  if (proxy) {
    write_result(proxy->image, src, out, scale[0], scale[1], fx0, fy0, wx1, wy1, wx2, wy2, proxy->full_width,
                 proxy->full_height);
    if (stale) draw_bar(out, 1.0, 0.6f, 0.6f, 0.6f, wx1, wy1, wx2, wy2);
    else if (running) draw_bar(out, s.fraction, 0.95f, 0.75f, 0.1f, wx1, wy1, wx2, wy2);
    return kOfxStatOK;
  }
  copy_image(src, out, wx1, wy1, wx2, wy2);
  if (s.phase == Phase::Failed) {
    draw_bar(out, 1.0, 0.9f, 0.1f, 0.1f, wx1, wy1, wx2, wy2);
    return interactive ? kOfxStatOK : kOfxStatFailed;
  }
  if (running) draw_bar(out, s.fraction, 0.95f, 0.75f, 0.1f, wx1, wy1, wx2, wy2);
  return kOfxStatOK;
}

OfxStatus begin_sequence(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
  int interactive = 1;
  g_prop->propGetInt(in_args, kOfxImageEffectPropInteractiveRenderStatus, 0, &interactive);
  Instance* inst = instance_of(effect);
  if (g_progress && !interactive && inst && g_progress->progressStart(effect, "TokenFlow") == kOfxStatOK)
    inst->in_sequence = true;
  return kOfxStatOK;
}

OfxStatus end_sequence(OfxImageEffectHandle effect, OfxPropertySetHandle in_args) {
  int interactive = 1;
  g_prop->propGetInt(in_args, kOfxImageEffectPropInteractiveRenderStatus, 0, &interactive);
  Instance* inst = instance_of(effect);
  if (g_progress && inst && inst->in_sequence.exchange(false)) g_progress->progressEnd(effect);
  (void)interactive;
  return kOfxStatOK;
}

OfxStatus load() {
  if (!g_host) return kOfxStatErrMissingHostFeature;
  g_prop = static_cast<const OfxPropertySuiteV1*>(g_host->fetchSuite(g_host->host, kOfxPropertySuite, 1));
  g_param = static_cast<const OfxParameterSuiteV1*>(g_host->fetchSuite(g_host->host, kOfxParameterSuite, 1));
  g_effect = static_cast<const OfxImageEffectSuiteV1*>(g_host->fetchSuite(g_host->host, kOfxImageEffectSuite, 1));
  g_message = static_cast<const OfxMessageSuiteV1*>(g_host->fetchSuite(g_host->host, kOfxMessageSuite, 1));
  g_progress = static_cast<const OfxProgressSuiteV1*>(g_host->fetchSuite(g_host->host, kOfxProgressSuite, 1));
  return g_prop && g_param && g_effect ? kOfxStatOK : kOfxStatErrMissingHostFeature;
}

OfxStatus main_entry(const char* action, const void* handle, OfxPropertySetHandle in_args,
                     OfxPropertySetHandle out_args) {
  // No exception may cross into the host.
  try {
    auto effect = static_cast<OfxImageEffectHandle>(const_cast<void*>(handle));
    const std::string a = action ? action : "";
    if (a == kOfxActionLoad) return load();
    if (a == kOfxActionUnload) return kOfxStatOK;
    if (a == kOfxActionDescribe) return describe(effect);
    if (a == kOfxImageEffectActionDescribeInContext) return describe_in_context(effect, in_args);
    if (a == kOfxActionCreateInstance) return create_instance(effect);
    if (a == kOfxActionDestroyInstance) return destroy_instance(effect);
    if (a == kOfxActionInstanceChanged) return instance_changed(effect, in_args);
    if (a == kOfxImageEffectActionGetFramesNeeded) return frames_needed(in_args, out_args);
    if (a == kOfxImageEffectActionRender) return render(effect, in_args);
    if (a == kOfxImageEffectActionBeginSequenceRender) return begin_sequence(effect, in_args);
    if (a == kOfxImageEffectActionEndSequenceRender) return end_sequence(effect, in_args);
    return kOfxStatReplyDefault;
  } catch (const std::exception&) {
    return kOfxStatErrFatal;
  }
}

void set_host(OfxHost* host) { g_host = host; }

OfxPlugin g_plugin = {kOfxImageEffectPluginApi, kOfxImageEffectPluginApiVersion, kPluginId, 1, 0, set_host,
                      main_entry};

}  // namespace

extern "C" {
TFOFX_EXPORT int OfxGetNumberOfPlugins(void) { return 1; }
TFOFX_EXPORT OfxPlugin* OfxGetPlugin(int nth) { return nth == 0 ? &g_plugin : nullptr; }
// Not part of OpenFX: lets tests check the effect's default endpoint against bridge/wire's.
TFOFX_EXPORT const char* tokenflow_ofx_default_endpoint(void) {
  static thread_local std::string endpoint;
  endpoint = local_server().endpoint;
  return endpoint.c_str();
}
}
