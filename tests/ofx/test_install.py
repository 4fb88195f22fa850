"""`tokenflow install ofx` / `uninstall ofx` / `--dry-run` into a temporary OFX_PLUGIN_PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.installers import InstallContext, InstallError, ofx
from cli.launch import tokenflow_command


def context(tmp_path: Path, bundle: Path, **kw) -> InstallContext:
    env = {"OFX_PLUGIN_PATH": str(tmp_path / "plugins"), "TOKENFLOW_OFX_BUILD_DIR": str(bundle.parent),
           "TOKENFLOW_CONFIG_DIR": str(tmp_path / "config")}
    return InstallContext(python=Path("/usr/bin/python3"), home=tmp_path, system="Linux", launcher=tokenflow_command,
                          env=env, **kw)


def test_install_dry_run_uninstall_and_a_foreign_bundle(tmp_path, ofx_bundle):
    target = tmp_path / "plugins" / "TokenFlow.ofx.bundle"
    dry = ofx.install(context(tmp_path, ofx_bundle, dry_run=True))
    assert target in dry.written and not target.exists()
    result = ofx.install(context(tmp_path, ofx_bundle))
    assert (target / "Contents" / "Linux-x86-64" / "TokenFlow.ofx").is_file()
    assert (target / "Contents" / "Linux-x86-64" / "libzmq.so.5").is_file()
    record = (tmp_path / "config" / "ofx-effect.conf").read_text()
    assert "arg=serve" in record and target in result.written
    assert ofx.status(context(tmp_path, ofx_bundle)).installed
    ofx.uninstall(context(tmp_path, ofx_bundle))
    assert not target.exists() and not (tmp_path / "config" / "ofx-effect.conf").exists()
    # Somebody else's bundle of that name: kept, install refuses without --force.
    (target / "Contents").mkdir(parents=True)
    with pytest.raises(InstallError, match="not installed by tokenflow"):
        ofx.install(context(tmp_path, ofx_bundle))
    assert "Kept" in ofx.uninstall(context(tmp_path, ofx_bundle)).notes[0] and target.exists()


def test_the_standard_folders():
    ctx = lambda system: InstallContext(python=Path("/p"), home=Path("/h"), system=system,  # noqa: E731
                                        launcher=tokenflow_command, env={})
    assert ofx.plugin_dir(ctx("Linux")) == Path("/usr/OFX/Plugins")
    assert ofx.plugin_dir(ctx("Darwin")) == Path("/Library/OFX/Plugins")
    assert str(ofx.plugin_dir(ctx("Windows"))).endswith("OFX/Plugins") or "OFX" in str(ofx.plugin_dir(ctx("Windows")))
