"""The real OpenFX bundle in the project's test host, no server needed: what it declares,
pass-through at every bit depth and render scale, a missing server, where it looks for
the user's server, and what the binary links against."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ofx.host import OK, Host

FILTER, GENERAL = "OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"


def make_host(bundle: Path, clip: list[np.ndarray]) -> Host:
    host = Host(bundle, lambda t: clip[t], 0, len(clip) - 1, fps=30000 / 1001)
    host.load_and_describe()
    return host


def test_describes_contexts_depths_params_and_clips(ofx_bundle, clip):
    host = make_host(ofx_bundle, clip)
    props = host.descriptor.props.values
    assert props["OfxImageEffectPropSupportedContexts"] == [FILTER, GENERAL]
    assert props["OfxImageEffectPropSupportedPixelDepths"] == ["OfxBitDepthByte", "OfxBitDepthShort",
                                                               "OfxBitDepthFloat"]
    assert props["OfxImageEffectPropTemporalClipAccess"] == [1]
    assert props["OfxImageEffectPluginPropGrouping"] == ["AI"]
    flt, gen = host.describe_in_context(FILTER), host.describe_in_context(GENERAL)
    assert list(flt.params) == ["prompt", "negative", "seed", "steps", "guidance", "kfInterval", "workingSize",
                                "model", "server", "renderEdit", "cancel", "status"]
    assert set(flt.clips) == {"Source", "Output"}
    assert gen.clips["Matte"].props.values["OfxImageClipPropOptional"] == [1]
    assert gen.clips["Matte"].props.values["OfxImageClipPropIsMask"] == [1]
    # A mask is usually Alpha; a picture is taken too (the server picks its alpha, else its luma).
    assert gen.clips["Matte"].props.values["OfxImageEffectPropSupportedComponents"] == [
        "OfxImageComponentAlpha", "OfxImageComponentRGBA", "OfxImageComponentRGB"]
    # The matte's two controls, in the context that has the Matte input only.
    assert list(gen.params) == [*list(flt.params)[:7], "matteInvert", "matteFeather", *list(flt.params)[7:]]
    assert gen.params["matteInvert"].type == "OfxParamTypeBoolean"
    assert gen.params["matteFeather"].props.get("OfxParamPropMax") == 1000.0
    assert flt.params["status"].props.get("OfxParamPropStringMode") == "OfxParamStringIsLabel"
    assert flt.params["steps"].props.get("OfxParamPropDefault") == 50
    inst = host.create_instance()
    assert inst.frames_needed(3) == [3.0, 3.0]
    assert inst.destroy() == OK
    assert host.errors == []


@pytest.mark.parametrize("depth", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [3, 4])
def test_passes_the_source_through_before_any_edit(ofx_bundle, clip, depth, channels):
    host = make_host(ofx_bundle, clip)
    inst = host.create_instance(depth=depth, channels=channels)
    for scale in (1.0, 0.25):
        status, out = inst.render(2, scale)
        assert status == OK
        expected = host.source_image(2, scale, np.dtype(depth), channels)[::-1]
        assert out.dtype == np.dtype(depth) and np.array_equal(out, expected)
    inst.destroy()


def test_no_server_says_so_through_the_message_suite_within_a_second(ofx_bundle, clip):
    host = make_host(ofx_bundle, clip)
    inst = host.create_instance()
    inst.set("server", "tcp://127.0.0.1:9")  # nothing listens on the discard port
    inst.set("prompt", "a watercolor painting")
    started = time.monotonic()
    inst.press("renderEdit")
    pressed = time.monotonic() - started
    status, out = inst.render(1, 1.0)  # a final render: waits for the frame, or for the edit to end
    elapsed = time.monotonic() - started
    assert pressed < 0.5 and elapsed < 1.0, (pressed, elapsed)
    assert status != OK  # a delivery must not silently contain the unedited source
    errors = [m.text for m in host.messages if m.kind == "OfxMessageError"]
    assert len(errors) == 1 and "No TokenFlow server answers at tcp://127.0.0.1:9" in errors[0]
    assert "tokenflow serve" in errors[0]
    # The viewer (interactive) still shows the source, with a red bar along the bottom.
    status, out = inst.render(1, 1.0, interactive=True)
    assert status == OK and np.array_equal(out[:-4, :, :3], clip[1][:-4])
    assert out[-1, 0, 0] > 200 and out[-1, 0, 1] < 60
    inst.set("seed", 3)  # any change refreshes the status line, from the instance-changed action
    assert inst.param("status").startswith("Stale") or "No TokenFlow server" in inst.param("status")
    assert {action for _text, action in host.status_writes} == {"OfxActionInstanceChanged"}
    assert len([m for m in host.messages if m.kind == "OfxMessageError"]) == 1  # said once, not per frame
    inst.destroy()


def test_render_edit_without_a_prompt_asks_for_one(ofx_bundle, clip):
    host = make_host(ofx_bundle, clip)
    inst = host.create_instance()
    inst.press("renderEdit")
    assert [m.text for m in host.messages] == ["TokenFlow: type a prompt first, then press Render edit."]
    assert inst.fetched == []  # no frame was read from the host
    inst.destroy()


def test_looks_for_the_users_server_where_the_python_client_does(ofx_bundle, clip, tmp_path, monkeypatch):
    import ctypes

    from bridge.wire.client import default_endpoint

    host = make_host(ofx_bundle, clip)
    fn = host.lib.tokenflow_ofx_default_endpoint
    fn.restype = ctypes.c_char_p
    monkeypatch.delenv("TOKENFLOW_SERVER", raising=False)
    monkeypatch.setenv("TOKENFLOW_RUNTIME_DIR", str(tmp_path / "run"))
    assert fn().decode() == default_endpoint()
    monkeypatch.delenv("TOKENFLOW_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    tmp_path.chmod(0o700)
    assert fn().decode() == default_endpoint()
    monkeypatch.setenv("TOKENFLOW_SERVER", "tcp://127.0.0.1:7555")
    assert fn().decode() == "tcp://127.0.0.1:7555"


def test_the_binary_needs_nothing_beyond_the_c_and_cpp_runtime_and_its_bundle(ofx_bundle):
    binary = ofx_bundle / "Contents" / "Linux-x86-64" / "TokenFlow.ofx"
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "not found" not in ldd
    runtime = ("linux-vdso", "ld-linux", "libc.", "libm.", "libpthread.", "libdl.", "librt.", "libresolv.",
               "libstdc++.", "libgcc_s.")
    for line in ldd.splitlines():
        name = line.split()[0]
        if name.startswith(runtime) or "=>" not in line:
            continue
        assert line.split("=>")[1].strip().startswith(str(binary.parent)), line
    # Python is nowhere in it: the effect is a client, the model runs in the server.
    assert "python" not in ldd.lower()
