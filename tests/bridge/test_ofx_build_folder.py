"""A build folder configured from another checkout (the suite's full run met this: two
checkouts sharing the cache's ofx-build folder) is configured afresh, not refused by CMake."""

from __future__ import annotations

from bridge.installers import ofx


def _configured(build, home) -> None:
    (build / "CMakeFiles").mkdir(parents=True)
    (build / "CMakeCache.txt").write_text(f"# cache\nCMAKE_HOME_DIRECTORY:INTERNAL={home}\nOTHER:STRING=x\n")
    (build / "TokenFlow.ofx.bundle").mkdir()


def test_another_checkouts_configuration_is_dropped(tmp_path):
    build = tmp_path / "build"
    _configured(build, tmp_path / "elsewhere" / "packaging" / "ofx")
    ofx._forget_another_checkouts_configuration(build)
    assert not (build / "CMakeCache.txt").exists() and not (build / "CMakeFiles").exists()
    assert (build / "TokenFlow.ofx.bundle").is_dir()  # only CMake's configuration goes


def test_this_checkouts_configuration_is_kept(tmp_path):
    build = tmp_path / "build"
    _configured(build, ofx.SOURCE)
    ofx._forget_another_checkouts_configuration(build)
    assert (build / "CMakeCache.txt").is_file() and (build / "CMakeFiles").is_dir()
