"""Inputs: files, folders, globs, CSV (mpp and label columns), unique names, shards."""

from __future__ import annotations

import pytest

from rckd.data.wsi.inputs import collect_inputs, parse_shard, shard


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_files_folders_globs(tmp_path):
    a = _touch(tmp_path / "d" / "a.svs")
    b = _touch(tmp_path / "d" / "b (1).ndpi")
    _touch(tmp_path / "d" / "notes.txt")
    c = _touch(tmp_path / "e" / "c.png")
    got = collect_inputs([str(tmp_path / "d"), str(tmp_path / "e" / "*.png"), str(a)])
    assert [s.path for s in got] == [a, b, c]
    assert [s.name for s in got] == ["a", "b_(1)", "c"]


def test_csv_with_mpp_and_label(tmp_path):
    _touch(tmp_path / "slides" / "x.svs")
    _touch(tmp_path / "slides" / "y.tiff")
    (tmp_path / "list.csv").write_text("slide_path,mpp,label\nslides/x.svs,0.25,tumour\nslides/y.tiff,,normal\n")
    got = collect_inputs([str(tmp_path / "list.csv")])
    assert [(s.name, s.mpp, s.label) for s in got] == [("x", 0.25, "tumour"), ("y", None, "normal")]
    (tmp_path / "bad.csv").write_text("path,mpp\nslides/x.svs,abc\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        collect_inputs([str(tmp_path / "bad.csv")])
    (tmp_path / "nocol.csv").write_text("id\n1\n")
    with pytest.raises(ValueError, match="no path column"):
        collect_inputs([str(tmp_path / "nocol.csv")])


def test_missing_and_colliding(tmp_path):
    with pytest.raises(FileNotFoundError, match="ghost.svs"):
        collect_inputs([str(tmp_path / "ghost.svs")])
    with pytest.raises(FileNotFoundError, match="no slides match"):
        collect_inputs([str(tmp_path / "*.svs")])
    _touch(tmp_path / "p" / "s.svs")
    _touch(tmp_path / "q" / "s.svs")
    with pytest.raises(ValueError, match="also used"):
        collect_inputs([str(tmp_path / "p"), str(tmp_path / "q")])


def test_an_input_without_slides_is_an_error(tmp_path):
    (tmp_path / "named_like.svs").mkdir()  # a folder, not a slide
    _touch(tmp_path / "named_like.svs" / "readme.txt")
    with pytest.raises(FileNotFoundError, match="named_like.svs: a folder without slide files"):
        collect_inputs([str(tmp_path / "named_like.svs")])
    (tmp_path / "header.csv").write_text("path,mpp,label\n,,\n")
    with pytest.raises(ValueError, match="header.csv: lists no slides"):
        collect_inputs([str(tmp_path / "header.csv")])


def test_shards_partition_the_list(tmp_path):
    for i in range(7):
        _touch(tmp_path / f"s{i}.svs")
    slides = collect_inputs([str(tmp_path)])
    parts = [shard(slides, i, 3) for i in range(3)]
    assert sorted(s.name for p in parts for s in p) == sorted(s.name for s in slides)
    assert parse_shard("") == (0, 1) and parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
