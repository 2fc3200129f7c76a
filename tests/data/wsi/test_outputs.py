"""Which finished outputs may be redone: settings conflicts name the option; leftovers are removed."""

from __future__ import annotations

from rckd.data.wsi.outputs import SlideOutputs, settings_conflict

OPTIONS = ("min_tissue", "save_images", "trident_names")
SETTINGS = {"min_tissue": 0.5, "save_images": True, "trident_names": False, "schema_version": 2}


def _state(status="done", **settings):
    return {"status": status, "settings": {**SETTINGS, **settings}, "level0_mpp": 0.5, "mpp_source": "file"}


def test_conflicts_name_the_option_and_only_finished_slides_count():
    assert settings_conflict(_state(), SETTINGS, OPTIONS, None, False) is None
    assert settings_conflict(_state(min_tissue=0.3), SETTINGS, OPTIONS, None, False) == \
        "was made with --min-tissue 0.3, this run has --min-tissue 0.5"
    assert "--no-save-images, this run has --save-images" in settings_conflict(
        _state(save_images=False), SETTINGS, OPTIONS, None, False)
    assert "schema 1" in settings_conflict(_state(schema_version=1), SETTINGS, OPTIONS, None, False)
    for unfinished in ("running", "failed"):
        assert settings_conflict(_state(unfinished, min_tissue=0.3), SETTINGS, OPTIONS, None, False) is None
    assert settings_conflict(None, SETTINGS, OPTIONS, None, False) is None


def test_mpp_conflicts_only_where_the_mpp_was_used():
    from_file = _state()
    assert settings_conflict(from_file, SETTINGS, OPTIONS, 0.4, False) is None  # --mpp unused: file has one
    assert "forces --mpp 0.4" in settings_conflict(from_file, SETTINGS, OPTIONS, 0.4, True)
    given = {**_state(), "mpp_source": "given"}
    assert settings_conflict(given, SETTINGS, OPTIONS, 0.5, False) is None
    assert settings_conflict(given, SETTINGS, OPTIONS, None, False).endswith("this run has none")


def test_leftovers_of_this_slide_only(tmp_path):
    out = SlideOutputs.of(tmp_path, "a", trident_names=True)
    assert out.h5.name == "a_patches.h5"
    mine = [out.h5.parent / ".a_patches.h5.1a2b3c4d.h5.tmp", out.state.parent / ".a.json.abcdef01.json.tmp"]
    theirs = [out.h5.parent / ".b_patches.h5.1a2b3c4d.h5.tmp", out.h5.parent / ".a_patches.h5.tmp"]
    for p in mine + theirs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    assert sorted(out.remove_leftovers()) == sorted(mine)
    assert not any(p.exists() for p in mine) and all(p.exists() for p in theirs)
