"""What a run leaves for people: the thumbnail with mask and tiles, and the summary of states."""

from __future__ import annotations

import numpy as np

from rckd.data.wsi.report import render_thumbnail, write_state, write_summary

BLUE = (30, 80, 255)


def test_thumbnail_outlines_each_tile_and_dims_non_tissue():
    thumb = np.full((100, 200, 3), 200, np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[:, :100] = True
    img = np.asarray(render_thumbnail(thumb, mask, np.array([[0, 0], [800, 400]]), 200, (4000, 2000)))
    assert img.shape == (100, 200, 3)
    blue = (img == BLUE).all(axis=2)
    assert blue[0, :10].all() and blue[:10, 0].all() and blue[9, :10].all() and blue[:10, 9].all()
    assert blue[20, 40:50].all() and blue[29, 40:50].all() and blue[20:30, 49].all()  # the second tile
    assert not blue[1:9, 1:9].any() and blue.sum() == 2 * 36  # outlines only, 36 pixels each
    assert (img[50, 150] < 200).all() and (img[50, 50] == 200).all()  # glass dimmed, tissue as is


def test_summary_lists_every_state(tmp_path):
    write_state(tmp_path / "state" / "a.json", {"name": "a", "status": "done", "n_tiles": 3, "seconds": 1.0})
    write_state(tmp_path / "state" / "b.json", {"name": "b", "status": "no_tissue", "n_tiles": 0})
    text = write_summary(tmp_path).read_text()
    assert "| a | done | 3 |" in text and "no tissue found" in text and "1 done, 1 no_tissue" in text
