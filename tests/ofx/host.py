"""A small OpenFX host of the project's own, in Python with ctypes, for testing the real bundle.

Written from the OpenFX specification (Image Effect API 1.4: the C structs and property
names of packaging/ofx/include/tokenflow_ofx_api.h), not from any SDK host. It does what a
host does for one image effect: loads the binary from the bundle, hands it an `OfxHost`
with the suites the effect asks for (property, parameter, image effect, memory, message,
progress), runs load / describe / describe-in-context / create-instance, serves the
Source clip's images from frames the test gives it (numpy arrays, top row first, as PyAV
decodes them; OFX images are bottom row first, so the host flips them), and the Matte
clip's when the test connects one (uint8 H x W x 1, 3 or 4: Alpha, RGB or RGBA), presses buttons
(instance changed), renders frames at a render scale and returns the Output as a numpy
array. Not a general host: one plug-in, images as whole frames, no interacts.

The parameter suite's value functions are C variadic (`paramGetValue(handle, ...)`); on
x86-64 System V a variadic callee receives pointer and integer arguments in the same
registers as a fixed-argument one, so they are declared here with fixed pointer
arguments, which is all the effect passes (it writes only its string status line).
"""

from __future__ import annotations

import ctypes as C
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OK, FAILED, ERR_FATAL, ERR_UNKNOWN, ERR_MISSING, ERR_UNSUPPORTED = 0, 1, 2, 3, 4, 5
ERR_BAD_HANDLE, ERR_BAD_INDEX, ERR_VALUE, REPLY_DEFAULT = 9, 10, 11, 14

DEPTHS = {np.dtype(np.uint8): "OfxBitDepthByte", np.dtype(np.uint16): "OfxBitDepthShort",
          np.dtype(np.float32): "OfxBitDepthFloat"}
COMPONENTS = {1: "OfxImageComponentAlpha", 3: "OfxImageComponentRGB", 4: "OfxImageComponentRGBA"}

vp, cp, ci, cd = C.c_void_p, C.c_char_p, C.c_int, C.c_double


class OfxHostStruct(C.Structure):
    _fields_ = [("host", vp), ("fetchSuite", C.CFUNCTYPE(vp, vp, cp, ci))]


class OfxPlugin(C.Structure):
    _fields_ = [("pluginApi", cp), ("apiVersion", ci), ("pluginIdentifier", cp), ("pluginVersionMajor", C.c_uint),
                ("pluginVersionMinor", C.c_uint), ("setHost", C.CFUNCTYPE(None, C.POINTER(OfxHostStruct))),
                ("mainEntry", C.CFUNCTYPE(ci, cp, vp, vp, vp))]


def _suite(name: str, fields: list[tuple[str, Any]]) -> type[C.Structure]:
    return type(name, (C.Structure,), {"_fields_": fields})


F = C.CFUNCTYPE
PropertySuite = _suite("PropertySuite", [
    ("propSetPointer", F(ci, vp, cp, ci, vp)), ("propSetString", F(ci, vp, cp, ci, cp)),
    ("propSetDouble", F(ci, vp, cp, ci, cd)), ("propSetInt", F(ci, vp, cp, ci, ci)),
    ("propSetPointerN", F(ci, vp, cp, ci, vp)), ("propSetStringN", F(ci, vp, cp, ci, vp)),
    ("propSetDoubleN", F(ci, vp, cp, ci, vp)), ("propSetIntN", F(ci, vp, cp, ci, vp)),
    ("propGetPointer", F(ci, vp, cp, ci, vp)), ("propGetString", F(ci, vp, cp, ci, vp)),
    ("propGetDouble", F(ci, vp, cp, ci, vp)), ("propGetInt", F(ci, vp, cp, ci, vp)),
    ("propGetPointerN", F(ci, vp, cp, ci, vp)), ("propGetStringN", F(ci, vp, cp, ci, vp)),
    ("propGetDoubleN", F(ci, vp, cp, ci, vp)), ("propGetIntN", F(ci, vp, cp, ci, vp)),
    ("propReset", F(ci, vp, cp)), ("propGetDimension", F(ci, vp, cp, vp)),
])
ParameterSuite = _suite("ParameterSuite", [
    ("paramDefine", F(ci, vp, cp, cp, vp)), ("paramGetHandle", F(ci, vp, cp, vp, vp)),
    ("paramSetGetPropertySet", F(ci, vp, vp)), ("paramGetPropertySet", F(ci, vp, vp)),
    ("paramGetValue", F(ci, vp, vp)), ("paramGetValueAtTime", F(ci, vp, cd, vp)),
    ("paramGetDerivative", F(ci, vp, cd, vp)), ("paramGetIntegral", F(ci, vp, cd, cd, vp)),
    ("paramSetValue", F(ci, vp, vp)), ("paramSetValueAtTime", F(ci, vp, cd, vp)),
    ("paramGetNumKeys", F(ci, vp, vp)), ("paramGetKeyTime", F(ci, vp, C.c_uint, vp)),
    ("paramGetKeyIndex", F(ci, vp, cd, ci, vp)), ("paramDeleteKey", F(ci, vp, cd)),
    ("paramDeleteAllKeys", F(ci, vp)), ("paramCopy", F(ci, vp, vp, cd, vp)),
    ("paramEditBegin", F(ci, vp, cp)), ("paramEditEnd", F(ci, vp)),
])
ImageEffectSuite = _suite("ImageEffectSuite", [
    ("getPropertySet", F(ci, vp, vp)), ("getParamSet", F(ci, vp, vp)), ("clipDefine", F(ci, vp, cp, vp)),
    ("clipGetHandle", F(ci, vp, cp, vp, vp)), ("clipGetPropertySet", F(ci, vp, vp)),
    ("clipGetImage", F(ci, vp, cd, vp, vp)), ("clipReleaseImage", F(ci, vp)),
    ("clipGetRegionOfDefinition", F(ci, vp, cd, vp)), ("abort", F(ci, vp)),
    ("imageMemoryAlloc", F(ci, vp, C.c_size_t, vp)), ("imageMemoryFree", F(ci, vp)),
    ("imageMemoryLock", F(ci, vp, vp)), ("imageMemoryUnlock", F(ci, vp)),
])
MemorySuite = _suite("MemorySuite", [("memoryAlloc", F(ci, vp, C.c_size_t, vp)), ("memoryFree", F(ci, vp))])
# message(handle, type, id, format, ...): the effect passes "%s" and one string.
MessageSuite = _suite("MessageSuite", [("message", F(ci, vp, cp, cp, cp, cp))])
ProgressSuite = _suite("ProgressSuite", [("progressStart", F(ci, vp, cp)), ("progressUpdate", F(ci, vp, cd)),
                                         ("progressEnd", F(ci, vp))])


class PropertySet:
    """Named properties, each a list of values (str, int, float or pointer int)."""

    def __init__(self, **values: Any):
        self.values: dict[str, list[Any]] = {k: (list(v) if isinstance(v, (list, tuple)) else [v])
                                             for k, v in values.items()}
        self._strings: dict[tuple[str, int], C.Array] = {}  # keeps returned char* alive

    def get(self, name: str, default: Any = None) -> Any:
        v = self.values.get(name)
        return v[0] if v else default

    def set(self, name: str, index: int, value: Any) -> None:
        v = self.values.setdefault(name, [])
        while len(v) <= index:
            v.append(None)
        v[index] = value

    def c_string(self, name: str, index: int) -> int:
        buf = C.create_string_buffer(str(self.values[name][index]).encode())
        self._strings[(name, index)] = buf
        return C.addressof(buf)


@dataclass
class Param:
    type: str
    props: PropertySet
    value: Any = None


@dataclass
class Clip:
    name: str
    props: PropertySet


@dataclass
class Image:
    props: PropertySet
    array: np.ndarray  # bottom row first, as OFX lays images out


@dataclass
class Effect:
    props: PropertySet
    params: dict[str, Param] = field(default_factory=dict)
    clips: dict[str, Clip] = field(default_factory=dict)
    aborted: bool = False


@dataclass
class Message:
    kind: str
    text: str
    thread: str


class Host:
    """One loaded plug-in binary and the instances made from it."""

    def __init__(self, bundle: Path, frames: Callable[[int], np.ndarray], first: int, last: int, fps: float = 24.0,
                 matte: Callable[[int], np.ndarray] | None = None):
        self.frames, self.first, self.last, self.fps = frames, first, last, fps
        self.matte = matte  # the Matte clip's frames (uint8, top row first); None: not connected
        self._objects: dict[int, Any] = {}
        self._ids = itertools.count(0x1000, 16)
        self.messages: list[Message] = []
        self.progress: list[float] = []
        self.status_writes: list[tuple[str, str]] = []  # (status text, action it came in)
        self._action = threading.local()
        self._lock = threading.Lock()
        self._keep: list[Any] = []
        self.host_props = PropertySet(**{"OfxPropName": "org.tokenflow.testhost", "OfxPropLabel": "TokenFlow test host",
                                         "OfxPropAPIVersion": [1, 4], "OfxImageEffectHostPropIsBackground": 0,
                                         "OfxImageEffectPropSupportsMultiResolution": 1,
                                         "OfxImageEffectPropTemporalClipAccess": 1})
        binary = bundle / "Contents" / "Linux-x86-64" / "TokenFlow.ofx"
        self.lib = C.CDLL(str(binary))
        self.lib.OfxGetNumberOfPlugins.restype = ci
        self.lib.OfxGetPlugin.restype = C.POINTER(OfxPlugin)
        self.lib.OfxGetPlugin.argtypes = [ci]
        assert self.lib.OfxGetNumberOfPlugins() == 1
        self.plugin = self.lib.OfxGetPlugin(0).contents
        self._suites = self._make_suites()
        self._host = OfxHostStruct(self._handle(self.host_props), OfxHostStruct._fields_[1][1](self._fetch_suite))
        self.plugin.setHost(C.byref(self._host))
        self.descriptor = Effect(PropertySet(OfxPropType="OfxTypeImageEffect"))
        self.contexts: dict[str, Effect] = {}

    # --- handles: opaque integers naming Python objects ---

    def _handle(self, obj: Any) -> int:
        for h, o in self._objects.items():
            if o is obj:
                return h
        h = next(self._ids)
        self._objects[h] = obj
        return h

    def _obj(self, handle: int | None) -> Any:
        return self._objects.get(handle or 0)

    # --- actions ---

    def call(self, action: str, handle: Any = None, in_args: PropertySet | None = None,
             out_args: PropertySet | None = None) -> int:
        self._action.name = action
        try:
            return self.plugin.mainEntry(action.encode(), self._handle(handle) if handle is not None else None,
                                         self._handle(in_args) if in_args is not None else None,
                                         self._handle(out_args) if out_args is not None else None)
        finally:
            self._action.name = None

    def load_and_describe(self) -> None:
        assert self.call("OfxActionLoad") == OK
        assert self.call("OfxActionDescribe", self.descriptor) == OK

    def describe_in_context(self, context: str = "OfxImageEffectContextFilter") -> Effect:
        desc = Effect(PropertySet(OfxPropType="OfxTypeImageEffect", OfxImageEffectPropContext=context))
        status = self.call("OfxImageEffectActionDescribeInContext", desc,
                           PropertySet(OfxImageEffectPropContext=context))
        assert status == OK, status
        self.contexts[context] = desc
        return desc

    def create_instance(self, context: str = "OfxImageEffectContextFilter", depth: Any = np.uint8,
                        channels: int = 4) -> Instance:
        desc = self.contexts.get(context) or self.describe_in_context(context)
        inst = Effect(PropertySet(OfxPropType="OfxTypeImageEffectInstance", OfxImageEffectPropContext=context,
                                  OfxPropIsInteractive=1))
        for name, p in desc.params.items():
            props = PropertySet(**{k: list(v) for k, v in p.props.values.items()})
            inst.params[name] = Param(p.type, props, props.get("OfxParamPropDefault"))
        for name, c in desc.clips.items():
            props = PropertySet(**{k: list(v) for k, v in c.props.values.items()})
            connected = 1 if name in ("Source", "Output") or (name == "Matte" and self.matte is not None) else 0
            components = COMPONENTS[self.matte(self.first).shape[2] if name == "Matte" and self.matte else channels]
            props.values.update({"OfxImageClipPropConnected": [connected], "OfxImageEffectPropFrameRange": [
                float(self.first), float(self.last)], "OfxImageEffectPropFrameRate": [self.fps],
                "OfxImageEffectPropPixelDepth": [DEPTHS[np.dtype(depth)]],
                "OfxImageEffectPropComponents": [components], "OfxPropName": [name]})
            inst.clips[name] = Clip(name, props)
        assert self.call("OfxActionCreateInstance", inst) == OK
        return Instance(self, inst, np.dtype(depth), channels)

    # --- images ---

    def source_image(self, t: float, scale: float, depth: np.dtype, channels: int) -> np.ndarray:
        """The Source frame at time t as the host serves it: scaled, converted, bottom row first."""
        rgb = self.frames(int(round(t)))  # uint8 HxWx3, top row first
        if scale != 1.0:
            step = int(round(1 / scale))
            rgb = rgb[::step, ::step]
        if channels == 4:
            alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :, None].repeat(rgb.shape[0], 0)
            rgb = np.concatenate([rgb, alpha], axis=2)
        if depth == np.uint16:
            px = rgb.astype(np.uint16) * 257
        elif depth == np.float32:
            px = rgb.astype(np.float32) / 255.0
        else:
            px = rgb
        return np.ascontiguousarray(px[::-1])

    def matte_image(self, t: float, depth: np.dtype) -> np.ndarray:
        """The Matte frame at time t as the host serves it: at the clip's depth, bottom row first."""
        assert self.matte is not None
        px = self.matte(int(round(t)))
        if depth == np.uint16:
            px = px.astype(np.uint16) * 257
        elif depth == np.float32:
            px = px.astype(np.float32) / 255.0
        return np.ascontiguousarray(px[::-1])

    def _image(self, array: np.ndarray, depth: np.dtype, channels: int) -> int:
        h, w = array.shape[:2]
        props = PropertySet(OfxPropType="OfxTypeImage", OfxImagePropData=array.ctypes.data,
                            OfxImagePropBounds=[0, 0, w, h], OfxImagePropRegionOfDefinition=[0, 0, w, h],
                            OfxImagePropRowBytes=array.strides[0], OfxImageEffectPropPixelDepth=DEPTHS[depth],
                            OfxImageEffectPropComponents=COMPONENTS[channels], OfxImagePropPixelAspectRatio=1.0,
                            OfxImageEffectPropPreMultiplication="OfxImageAlphaUnPremultiplied",
                            OfxImageEffectPropRenderScale=[1.0, 1.0], OfxImagePropField="OfxFieldNone")
        image = Image(props, array)
        with self._lock:
            return self._handle_image(image)

    def _handle_image(self, image: Image) -> int:
        h = next(self._ids)
        self._objects[h] = image
        # the property set is the image handle (OFX: clipGetImage returns a property set)
        self._objects[h] = image.props
        image.props.image = image  # type: ignore[attr-defined]
        return h

    # --- suites ---

    def _fetch_suite(self, _host: int, name: bytes, version: int) -> int | None:
        suite = self._suites.get((name.decode(), version))
        return C.addressof(suite) if suite is not None else None

    def _make_suites(self) -> dict[tuple[str, int], C.Structure]:
        def cb(kind: Any, fn: Callable) -> Any:
            def safe(*args: Any) -> int:
                try:
                    return fn(*args)
                except Exception as exc:  # never raise into C
                    self.errors.append(f"{fn.__name__}: {exc!r}")
                    return ERR_UNKNOWN
            f = kind(safe)
            self._keep.append(f)
            return f

        self.errors: list[str] = []

        def fields(struct: type[C.Structure], impl: dict[str, Callable]) -> C.Structure:
            return struct(*[cb(f[1], impl.get(f[0], lambda *a: ERR_UNSUPPORTED)) for f in struct._fields_])

        return {
            ("OfxPropertySuite", 1): fields(PropertySuite, self._property_impl()),
            ("OfxParameterSuite", 1): fields(ParameterSuite, self._param_impl()),
            ("OfxImageEffectSuite", 1): fields(ImageEffectSuite, self._effect_impl()),
            ("OfxMemorySuite", 1): fields(MemorySuite, self._memory_impl()),
            ("OfxMessageSuite", 1): fields(MessageSuite, {"message": self._message}),
            ("OfxProgressSuite", 1): fields(ProgressSuite, {
                "progressStart": lambda h, label: OK,
                "progressUpdate": lambda h, v: self.progress.append(v) or OK,
                "progressEnd": lambda h: OK}),
        }

    def _message(self, _handle: int, kind: bytes, _id: bytes, fmt: bytes, arg: int) -> int:
        text = C.string_at(arg).decode() if fmt == b"%s" and arg else fmt.decode()
        self.messages.append(Message(kind.decode(), text, threading.current_thread().name))
        return OK

    def _property_impl(self) -> dict[str, Callable]:
        def props(h: int) -> PropertySet:
            p = self._obj(h)
            if not isinstance(p, PropertySet):
                raise LookupError(f"not a property set: {h}")
            return p

        def setter(conv: Callable) -> Callable:
            def set_one(h: int, name: bytes, index: int, value: Any) -> int:
                props(h).set(name.decode(), index, conv(value))
                return OK
            return set_one

        def setter_n(ctype: Any, conv: Callable) -> Callable:
            def set_n(h: int, name: bytes, count: int, ptr: int) -> int:
                arr = C.cast(ptr, C.POINTER(ctype))
                props(h).values[name.decode()] = [conv(arr[i]) for i in range(count)]
                return OK
            return set_n

        def getter(ctype: Any, string: bool = False) -> Callable:
            def get_one(h: int, name: bytes, index: int, out: int) -> int:
                p, key = props(h), name.decode()
                if key not in p.values:
                    return ERR_UNKNOWN
                if index >= len(p.values[key]):
                    return ERR_BAD_INDEX
                value = p.c_string(key, index) if string else p.values[key][index]
                C.cast(out, C.POINTER(ctype))[0] = value if value is not None else 0
                return OK
            return get_one

        def getter_n(ctype: Any, string: bool = False) -> Callable:
            def get_n(h: int, name: bytes, count: int, out: int) -> int:
                p, key = props(h), name.decode()
                if key not in p.values:
                    return ERR_UNKNOWN
                if count > len(p.values[key]):
                    return ERR_BAD_INDEX
                arr = C.cast(out, C.POINTER(ctype))
                for i in range(count):
                    arr[i] = p.c_string(key, i) if string else p.values[key][i]
                return OK
            return get_n

        def dimension(h: int, name: bytes, out: int) -> int:
            C.cast(out, C.POINTER(ci))[0] = len(props(h).values.get(name.decode(), []))
            return OK

        def reset(h: int, name: bytes) -> int:
            props(h).values.pop(name.decode(), None)
            return OK

        return {
            "propSetPointer": setter(lambda v: v or 0), "propSetString": setter(lambda v: v.decode()),
            "propSetDouble": setter(float), "propSetInt": setter(int),
            "propSetPointerN": setter_n(vp, lambda v: v or 0),
            "propSetStringN": setter_n(cp, lambda v: v.decode()),
            "propSetDoubleN": setter_n(cd, float), "propSetIntN": setter_n(ci, int),
            "propGetPointer": getter(vp), "propGetString": getter(vp, string=True),
            "propGetDouble": getter(cd), "propGetInt": getter(ci),
            "propGetPointerN": getter_n(vp), "propGetStringN": getter_n(vp, string=True),
            "propGetDoubleN": getter_n(cd), "propGetIntN": getter_n(ci),
            "propReset": reset, "propGetDimension": dimension,
        }

    def _param_impl(self) -> dict[str, Callable]:
        def param_set(h: int) -> Effect:
            e = self._obj(h)
            if not isinstance(e, ParamSetView):
                raise LookupError(f"not a parameter set: {h}")
            return e.effect

        def define(h: int, ptype: bytes, name: bytes, out: int) -> int:
            effect = param_set(h)
            props = PropertySet(OfxParamPropType=ptype.decode(), OfxPropName=name.decode(), OfxPropType="OfxTypeParameter")
            effect.params[name.decode()] = Param(ptype.decode(), props)
            if out:
                C.cast(out, C.POINTER(vp))[0] = self._handle(props)
            return OK

        def get_handle(h: int, name: bytes, out: int, out_props: int) -> int:
            p = param_set(h).params.get(name.decode())
            if p is None:
                return ERR_UNKNOWN
            C.cast(out, C.POINTER(vp))[0] = self._handle(p)
            if out_props:
                C.cast(out_props, C.POINTER(vp))[0] = self._handle(p.props)
            return OK

        def get_value(h: int, out: int) -> int:
            p = self._obj(h)
            if not isinstance(p, Param):
                return ERR_BAD_HANDLE
            if p.type == "OfxParamTypeString":
                buf = C.create_string_buffer(str(p.value or "").encode())
                self._keep.append(buf)  # valid until the next call, as the spec allows: kept simply
                C.cast(out, C.POINTER(vp))[0] = C.addressof(buf)
            elif p.type == "OfxParamTypeDouble":
                C.cast(out, C.POINTER(cd))[0] = float(p.value or 0.0)
            elif p.type in ("OfxParamTypeInteger", "OfxParamTypeBoolean", "OfxParamTypeChoice"):
                C.cast(out, C.POINTER(ci))[0] = int(p.value or 0)
            else:
                return ERR_UNSUPPORTED
            return OK

        def set_value(h: int, value: int) -> int:
            p = self._obj(h)
            if not isinstance(p, Param):
                return ERR_BAD_HANDLE
            if p.type != "OfxParamTypeString":
                return ERR_UNSUPPORTED  # the effect writes only its status line (see the module's note)
            p.value = C.string_at(value).decode() if value else ""
            self.status_writes.append((p.value, getattr(self._action, "name", None) or "no action"))
            return OK

        def prop_set(h: int, out: int) -> int:
            obj = self._obj(h)
            if isinstance(obj, Param):
                C.cast(out, C.POINTER(vp))[0] = self._handle(obj.props)
                return OK
            return ERR_BAD_HANDLE

        return {"paramDefine": define, "paramGetHandle": get_handle, "paramGetValue": get_value,
                "paramSetValue": set_value, "paramGetPropertySet": prop_set}

    def _effect_impl(self) -> dict[str, Callable]:
        def effect(h: int) -> Effect:
            e = self._obj(h)
            if not isinstance(e, Effect):
                raise LookupError(f"not an effect: {h}")
            return e

        def get_props(h: int, out: int) -> int:
            C.cast(out, C.POINTER(vp))[0] = self._handle(effect(h).props)
            return OK

        def get_params(h: int, out: int) -> int:
            e = effect(h)
            view = self._views.setdefault(id(e), ParamSetView(e))
            C.cast(out, C.POINTER(vp))[0] = self._handle(view)
            return OK

        def clip_define(h: int, name: bytes, out: int) -> int:
            props = PropertySet(OfxPropType="OfxTypeClip", OfxPropName=name.decode())
            effect(h).clips[name.decode()] = Clip(name.decode(), props)
            C.cast(out, C.POINTER(vp))[0] = self._handle(props)
            return OK

        def clip_handle(h: int, name: bytes, out: int, out_props: int) -> int:
            clip = effect(h).clips.get(name.decode())
            if clip is None:
                return ERR_UNKNOWN
            C.cast(out, C.POINTER(vp))[0] = self._handle(ClipRef(effect(h), clip))
            if out_props:
                C.cast(out_props, C.POINTER(vp))[0] = self._handle(clip.props)
            return OK

        def clip_props(h: int, out: int) -> int:
            ref = self._obj(h)
            C.cast(out, C.POINTER(vp))[0] = self._handle(ref.clip.props)
            return OK

        def clip_image(h: int, t: float, _region: int, out: int) -> int:
            ref = self._obj(h)
            if not isinstance(ref, ClipRef):
                return ERR_BAD_HANDLE
            inst: Instance = ref.effect.instance  # type: ignore[attr-defined]
            scale = inst.current_scale
            if ref.clip.name == "Source":
                if not (self.first <= round(t) <= self.last):
                    return FAILED
                inst.fetched.append(round(t))
                array = self.source_image(t, scale, inst.depth, inst.channels)
            elif ref.clip.name == "Output":
                src = self.source_image(t, scale, inst.depth, inst.channels)
                array = np.zeros_like(src)
                inst.outputs[round(t)] = array
            elif ref.clip.props.get("OfxImageClipPropConnected"):  # the Matte, connected
                array = self.matte_image(t, inst.depth)
                C.cast(out, C.POINTER(vp))[0] = self._image(array, inst.depth, array.shape[2])
                return OK
            else:
                return FAILED  # an unconnected clip has no images
            C.cast(out, C.POINTER(vp))[0] = self._image(array, inst.depth, inst.channels)
            return OK

        def release(h: int) -> int:
            with self._lock:
                self._objects.pop(h, None)
            return OK

        def abort(h: int) -> int:
            return 1 if effect(h).aborted else 0

        return {"getPropertySet": get_props, "getParamSet": get_params, "clipDefine": clip_define,
                "clipGetHandle": clip_handle, "clipGetPropertySet": clip_props, "clipGetImage": clip_image,
                "clipReleaseImage": release, "abort": abort}

    def _memory_impl(self) -> dict[str, Callable]:
        blocks: dict[int, C.Array] = {}

        def alloc(_h: int, size: int, out: int) -> int:
            buf = C.create_string_buffer(max(1, size))
            blocks[C.addressof(buf)] = buf
            C.cast(out, C.POINTER(vp))[0] = C.addressof(buf)
            return OK

        def free(ptr: int) -> int:
            blocks.pop(ptr or 0, None)
            return OK

        return {"memoryAlloc": alloc, "memoryFree": free}

    @property
    def _views(self) -> dict[int, ParamSetView]:
        if not hasattr(self, "_param_views"):
            self._param_views: dict[int, ParamSetView] = {}
        return self._param_views


@dataclass
class ParamSetView:
    effect: Effect


@dataclass
class ClipRef:
    effect: Effect
    clip: Clip


class Instance:
    """One effect instance: set parameters, press buttons, render frames."""

    def __init__(self, host: Host, effect: Effect, depth: np.dtype, channels: int):
        self.host, self.effect, self.depth, self.channels = host, effect, depth, channels
        effect.instance = self  # type: ignore[attr-defined]
        self.current_scale = 1.0
        self.fetched: list[int] = []
        self.outputs: dict[int, np.ndarray] = {}

    def param(self, name: str) -> Any:
        return self.effect.params[name].value

    def set(self, name: str, value: Any) -> int:
        """The user edits a parameter: its value changes, then instance changed (user edited)."""
        self.effect.params[name].value = value
        return self._changed(name)

    def press(self, name: str) -> int:
        return self._changed(name)

    def _changed(self, name: str) -> int:
        args = PropertySet(OfxPropType="OfxTypeParameter", OfxPropName=name, OfxPropChangeReason="OfxChangeUserEdited",
                           OfxPropTime=float(self.host.first), OfxImageEffectPropRenderScale=[1.0, 1.0])
        self.host.call("OfxActionBeginInstanceChanged", self.effect, PropertySet(OfxPropChangeReason="OfxChangeUserEdited"))
        status = self.host.call("OfxActionInstanceChanged", self.effect, args)
        self.host.call("OfxActionEndInstanceChanged", self.effect, PropertySet(OfxPropChangeReason="OfxChangeUserEdited"))
        return status

    def frames_needed(self, t: int) -> list[float]:
        out = PropertySet()
        self.host.call("OfxImageEffectActionGetFramesNeeded", self.effect, PropertySet(OfxPropTime=float(t)), out)
        return out.values.get("OfxImageClipPropFrameRange_Source", [])

    def render(self, t: int, scale: float = 1.0, interactive: bool = False) -> tuple[int, np.ndarray]:
        """Render frame t at `scale`; returns (status, Output as top-row-first array)."""
        self.current_scale = scale
        src = self.host.source_image(t, scale, self.depth, self.channels)
        h, w = src.shape[:2]
        args = PropertySet(OfxPropTime=float(t), OfxImageEffectPropFieldToRender="OfxFieldNone",
                           OfxImageEffectPropRenderWindow=[0, 0, w, h], OfxImageEffectPropRenderScale=[scale, scale],
                           OfxImageEffectPropSequentialRenderStatus=0,
                           OfxImageEffectPropInteractiveRenderStatus=1 if interactive else 0)
        status = self.host.call("OfxImageEffectActionRender", self.effect, args)
        return status, self.outputs[t][::-1].copy()

    def sequence(self, begin: bool, interactive: bool = False) -> int:
        action = "OfxImageEffectActionBeginSequenceRender" if begin else "OfxImageEffectActionEndSequenceRender"
        args = PropertySet(OfxImageEffectPropFrameRange=[float(self.host.first), float(self.host.last)],
                           OfxImageEffectPropFrameStep=1.0, OfxPropIsInteractive=int(interactive),
                           OfxImageEffectPropRenderScale=[1.0, 1.0], OfxImageEffectPropSequentialRenderStatus=0,
                           OfxImageEffectPropInteractiveRenderStatus=int(interactive))
        return self.host.call(action, self.effect, args)

    def abort(self, value: bool = True) -> None:
        self.effect.aborted = value

    def destroy(self) -> int:
        return self.host.call("OfxActionDestroyInstance", self.effect)
