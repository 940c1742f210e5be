"""Symlinks (issue 26, item 3): a build opened through a link takes the real folder's lock, and `build --out LINK` builds
into the folder LINK points to, replacing the build there, and leaves LINK in place pointing at the new build."""

from __future__ import annotations

import os
import shutil

from ddt_export.files import lock_path, locked
from ddt_export.manifest import read


def test_a_link_and_its_target_share_one_lock(built, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(built, real)
    os.symlink(real, tmp_path / "link")
    os.symlink(tmp_path / "link", tmp_path / "link2")  # a chain of links
    assert lock_path(tmp_path / "link") == lock_path(real) == lock_path(tmp_path / "link2") == tmp_path / ".real.lock"
    with locked(tmp_path / "link"):
        assert (tmp_path / ".real.lock").is_file() and not (tmp_path / ".link.lock").exists()


def test_build_out_link_builds_into_the_target_and_keeps_the_link(cli, official, built, tmp_path):
    real = tmp_path / "builds" / "real"
    real.parent.mkdir()
    shutil.copytree(built, real)
    link = tmp_path / "current"
    os.symlink(real, link)
    r = cli("build", "--config", official.config, "--ckpt", official.ckpt, "--out", link)
    assert r.code == 0, r.err
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link is kept, pointing where it did
    m = read(link)
    assert m.root == link and read(real).doc.created == m.doc.created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds", "current"]  # no `.current.old-*` link, no staging
    assert sorted(p.name for p in real.parent.iterdir()) == [".real.lock", "real"]


def test_calibrating_through_a_link_records_in_the_real_build(cli, built, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(built, real)
    os.symlink(real, tmp_path / "link")
    r = cli("calibrate", tmp_path / "link", "--steps", 3, "--samples", 1)
    assert r.code == 0, r.err
    assert any(e.sampler.num_steps == 3 for e in read(real).doc.calibration.values())
    assert not (tmp_path / ".link.lock").exists()


def test_build_out_a_link_into_a_build_or_a_users_folder_is_refused(cli, built, tmp_path):
    """The link's target is what gets checked: a link to a user's folder, or to a folder inside a build, is refused."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "app.js").write_text("keep\n")
    shutil.copytree(built, tmp_path / "B")
    os.symlink(tmp_path / "mine", tmp_path / "to-mine")
    os.symlink(tmp_path / "B" / "sub", tmp_path / "into-build")  # dangling, inside the build
    r = cli("build", "--out", tmp_path / "to-mine")
    assert r.code == 2 and "not (only) a ddt-export build" in r.err, r.err
    r = cli("build", "--out", tmp_path / "into-build")
    assert r.code == 2 and "is inside the build folder" in r.err, r.err
    assert (tmp_path / "mine" / "app.js").read_text() == "keep\n" and not (tmp_path / "B" / "sub").exists()
