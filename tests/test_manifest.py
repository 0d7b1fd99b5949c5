"""The rules manifest pins every data file: the packaged rules verify, and a hand edit is refused."""

from __future__ import annotations

import shutil

import pytest

from planner import manifest
from planner.errors import RuleError
from planner.rule_files import default_rules_dir


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


def test_every_stage_refuses_an_unpinned_edit_naming_the_file(tmp_path):
    """Integrity is checked where data is read (planner.rule_files), so the ingest code tables, the area
    files and the safety rules are all refused after a hand edit, each naming its file."""
    from planner.areas import load_area
    from planner.ingest.codes import code_tables
    from planner.safety import RuleSet

    root = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), root)
    rx = root / "codes" / "rxnorm.csv"
    rx.write_text(rx.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"rxnorm\.csv.*checksum"):
        code_tables(root)
    ddi = root / "interactions" / "ddi.yaml"
    ddi.write_text(ddi.read_text(encoding="utf-8").replace("myopathy risk", "myopathy"), encoding="utf-8")
    with pytest.raises(RuleError, match=r"ddi\.yaml.*checksum"):
        manifest.verify_file(ddi)
    with pytest.raises(RuleError, match="checksum"):
        RuleSet.load(root)
    area = root / "areas" / "lipids.yaml"
    area.write_text(area.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"lipids\.yaml.*checksum"):
        load_area("lipids", root)
    assert manifest.main([str(root)]) == 0  # re-pinned: every stage reads it again
    assert code_tables(root) is not None and load_area("lipids", root).id == "lipids"
    (root / "codes" / "extra.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    from planner.rule_files import read_csv

    with pytest.raises(RuleError, match=r"extra\.csv.*not listed"):
        read_csv(root / "codes" / "extra.csv")
