"""The rules manifest pins every data file: the packaged rules verify, and a hand edit is refused."""

from __future__ import annotations

import shutil

import pytest

from planner import manifest
from planner.rule_files import default_rules_dir
from planner.errors import RuleError


def test_packaged_rules_match_their_manifest():
    version = manifest.verify(default_rules_dir())
    assert version.startswith("1.") and "+" in version


def test_edited_unlisted_and_missing_files_are_refused(tmp_path):
    root = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), root)
    before = manifest.verify(root)
    area = root / "areas" / "t2d.yaml"
    area.write_text(area.read_text().replace("target: 7.0", "target: 6.5"))
    manifest._verify_cached.cache_clear()
    with pytest.raises(RuleError, match="t2d.yaml.*checksum"):
        manifest.verify(root)
    assert manifest.main([str(root)]) == 0  # re-pinning accepts the edit, with a new rules_version
    after = manifest.verify(root)
    assert after != before
    (root / "areas" / "extra.yaml").write_text("id: extra\nversion: '1'\n")
    manifest._verify_cached.cache_clear()
    with pytest.raises(RuleError, match="not listed"):
        manifest.verify(root)
    (root / "areas" / "extra.yaml").unlink()
    (root / "ranking.yaml").unlink()
    manifest._verify_cached.cache_clear()
    with pytest.raises(RuleError, match="missing"):
        manifest.verify(root)


def test_rules_folder_that_does_not_exist():
    with pytest.raises(RuleError, match="rules folder not found"):
        manifest.verify("/nonexistent/rules")
