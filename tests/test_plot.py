"""`tbreg plot`: the tutorial's HistoryPlotter figures drawn from a script-made tree's event files."""

import os
import re
import shutil

import numpy as np
import pytest
from matplotlib import image as mpl_image

from conftest import assert_one_line_error, tbreg

from tbreg import plot, reader, share


def test_png_of_a_family(script_tree, tmp_path, capsys):
    out = tmp_path / "sizes.png"
    family = script_tree["logdir"] / "sizes"
    code, stdout, err = tbreg(
        capsys,
        "plot",
        family,
        "--metric",
        "sparse_categorical_crossentropy",
        "-o",
        out,
        "--smoothing_std",
        "10",
        "--logx",
        "--ylim",
        "0.5,3",
    )
    assert code == 0, err
    assert "sparse_categorical_crossentropy of 2 runs (tiny, small)" in stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    pixels = mpl_image.imread(out)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 500
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # curves, legend, text: not blank


def test_svg_by_extension_and_default_metric(script_tree, tmp_path, capsys):
    out = tmp_path / "regularizers.svg"
    code, stdout, err = tbreg(capsys, "plot", script_tree["logdir"] / "regularizers", "-o", out)
    assert code == 0, err
    assert "sparse_categorical_crossentropy" in stdout  # the data loss EarlyStopping watched
    text = out.read_text()
    assert "<svg" in text and text.count("<path") > 10
    assert "<!-- tiny train -->" in text and "<!-- l2 validation -->" in text  # the runs' names, not title-cased
    assert "Tiny" not in text


def _xs(path_d: str) -> list[float]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path_d)]
    return numbers[0::2]


def test_legend_sits_right_of_the_curves(script_tree, tmp_path):
    out = tmp_path / "sizes.svg"
    plot.plot_family(str(script_tree["logdir"] / "sizes"), str(out))
    text = out.read_text()
    axes = re.search(r'<g id="patch_2">\s*<path d="([^"]+)"', text).group(1)  # the axes' background
    legend = re.search(r'<g id="legend_1">\s*<g id="patch_\d+">\s*<path d="([^"]+)"', text).group(1)  # its frame
    assert min(_xs(legend)) > max(_xs(axes))  # outside the plotting area: no curve under it


def test_histories_are_the_event_files(script_tree):
    runs = reader.load_runs(str(script_tree["logdir"] / "sizes"))
    histories, skipped = plot.histories(runs, "epoch_accuracy")
    assert list(histories) == ["tiny", "small"] and skipped == []
    train = reader.scalars(str(script_tree["logdir"] / "sizes" / "small" / "train"))["epoch_accuracy"]
    val = reader.scalars(str(script_tree["logdir"] / "sizes" / "small" / "validation"))["epoch_accuracy"]
    assert histories["small"].epoch == [p.step for p in train]
    assert histories["small"].history == {"accuracy": [p.value for p in train], "val_accuracy": [p.value for p in val]}


def test_plot_bad_inputs(script_tree, tmp_path, capsys):
    family = script_tree["logdir"] / "sizes"
    code, _, err = tbreg(capsys, "plot", family, "--metric", "auc", "-o", tmp_path / "x.png")
    assert_one_line_error(code, err, "epoch_auc", "accuracy")
    code, _, err = tbreg(capsys, "plot", family, "-o", tmp_path / "x.jpg")
    assert_one_line_error(code, err, ".png or .svg")
    code, _, err = tbreg(capsys, "plot", family, "-o", tmp_path / "x.png", "--ylim", "0.7,0.5")
    assert_one_line_error(code, err, "LOW must be below HIGH")
    code, _, err = tbreg(capsys, "plot", family, "-o", tmp_path / "x.png", "--ylim", "a,b")
    assert_one_line_error(code, err, "two numbers")
    code, _, err = tbreg(capsys, "plot", tmp_path / "nope", "-o", tmp_path / "x.png")
    assert_one_line_error(code, err, "no such log dir")
    (tmp_path / "empty").mkdir()
    code, _, err = tbreg(capsys, "plot", tmp_path / "empty", "-o", tmp_path / "x.png")
    assert_one_line_error(code, err, "no runs found")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = tbreg(capsys, "plot", family, "-o", blocker / "x.png")
    assert_one_line_error(code, err, "cannot write")
    assert sorted(os.listdir(tmp_path)) == ["empty", "file"]


def test_plot_refuses_a_corrupted_event_file(script_tree, tmp_path, capsys):
    family = tmp_path / "sizes"
    shutil.copytree(script_tree["logdir"] / "sizes", family)
    split = family / "tiny" / "validation"
    path = split / next(f for f in os.listdir(split) if reader.is_event_file(f))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, _, err = tbreg(capsys, "plot", family, "-o", tmp_path / "x.png")
    assert_one_line_error(code, err, str(path), "corrupted record at byte")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("ext", [".png", ".svg"])
def test_plot_family_library_call(script_tree, tmp_path, ext):
    result = plot.plot_family(
        str(script_tree["logdir"] / "sizes"), str(tmp_path / f"f{ext}"), logx=True, smoothing_std=2
    )
    assert result.runs == ["tiny", "small"] and os.path.getsize(result.path) > 10_000
