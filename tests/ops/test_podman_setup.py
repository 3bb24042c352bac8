"""The container test's own podman set-up (tests/ops/podman.py), without running podman."""
from __future__ import annotations

import tomllib

import pytest

from tests.ops import podman
from tests.ops.conftest import require


def test_containers_conf_holds_exactly_the_four_settings_these_machines_need():
    assert tomllib.loads(podman.CONTAINERS_CONF) == {
        "containers": {"default_ulimits": ["nofile=20000:20000", "nproc=32768:32768"]},
        "engine": {"runtime": "runc", "cgroup_manager": "cgroupfs", "events_logger": "file"}}


def test_the_debian_mirror_is_the_one_apt_uses_for_the_main_suite(tmp_path):
    listing = tmp_path / "sources.list.d"
    listing.mkdir()
    (listing / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    (listing / "nodesource.sources").write_text("Types: deb\nURIs: https://deb.nodesource.example/node_20.x\n"
                                                "Suites: nodistro\nComponents: main\n")
    assert podman.debian_mirror([tmp_path / "sources.list", listing]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb http://security.example/debian-security bookworm-security main\n"
                        "deb [arch=amd64] http://old.example/debian bookworm main\n")
    assert podman.debian_mirror([one_line]) == "http://old.example/debian"
    assert podman.debian_mirror([tmp_path / "absent"]) == podman.DEFAULT_MIRROR


def test_the_base_image_tag_changes_with_its_recipe():
    tag = podman.base_image_tag("http://mirror.example/debian")
    assert tag.startswith("localhost/fasciculation-cds-test/python:bookworm-")
    assert tag == podman.base_image_tag("http://mirror.example/debian") != podman.base_image_tag("http://other/debian")


def test_without_podman_the_test_says_why_and_fails_under_ci(monkeypatch):
    monkeypatch.setattr(podman.os, "geteuid", lambda: 0)
    monkeypatch.setattr(podman.shutil, "which", lambda tool: None if tool == "debootstrap" else f"/usr/bin/{tool}")
    with pytest.raises(podman.Unavailable, match="debootstrap not installed .*scripts/install --test"):
        podman.engine()
    monkeypatch.setattr(podman.os, "geteuid", lambda: 1000)
    with pytest.raises(podman.Unavailable, match="rootful, as root"):
        podman.engine()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="container test: podman"):
        require(False, "container test: podman is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require(False, "container test: podman is not installed")
