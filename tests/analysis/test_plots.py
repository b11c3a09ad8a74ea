"""Every figure draws from a dataset alone, with labels, nominal lines and the Okabe-Ito palette,
and saves as PNG and SVG."""
from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from helpers.datasets import synthetic_dataset

from analysis import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def grid_ds():
    return synthetic_dataset(seed=21, n_reps=60, grid={"n_subjects": [6, 12, 24], "icc": [0.1, 0.5]})


@pytest.fixture(scope="module")
def flat_ds():
    return synthetic_dataset(seed=22, n_reps=80)


def texts(fig) -> str:
    """Every piece of text in a figure: titles, axis labels, tick labels, legend entries."""
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text()))


def saved(fig, tmp_path, name: str) -> None:
    png, svg = plots.save_figure(fig, tmp_path / name)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()[:2000]


def test_rejection_against_a_factor(grid_ds, tmp_path):
    fig = plots.plot_rejection(grid_ds, factor="n_subjects")
    words = texts(fig)
    assert "n_subjects (dgp.n_subjects)" in words and "Rejection rate, p < 0.05" in words
    assert "truth 0, Type I error" in words and "icc=0.1" in words and "alpha = 0.05" in words
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2  # one term (X) x two levels of the other factor
    first = axes[0].get_lines()[0]
    assert mcolors.to_hex(first.get_color()) == plots.OKABE_ITO[0].lower()
    assert np.allclose(first.get_xdata(), [6, 12, 24])
    nominal = [line for line in axes[0].get_lines() if line.get_linestyle() == "--" and
               np.allclose(line.get_ydata(), 0.05)]
    assert nominal, "no dashed line at alpha"
    saved(fig, tmp_path, "rejection")


def test_coverage_without_a_grid_is_a_dot_plot(flat_ds, tmp_path):
    fig = plots.plot_coverage(flat_ds)
    words = texts(fig)
    assert "Coverage (share of intervals)" in words and "nominal 0.95" in words
    assert all(name in words for name in ("good", "narrow", "flaky"))
    saved(fig, tmp_path, "coverage")


def test_zip_plot(flat_ds, tmp_path):
    fig = plots.plot_zip(flat_ds, term="X")
    words = texts(fig)
    assert "covers the truth" in words and "misses the truth" in words and "80 of 80 replicates" in words
    narrow = [ax for ax in fig.axes if ax.get_title().startswith("narrow")][0]
    segments = narrow.collections[0]
    assert len(segments.get_segments()) == 80
    saved(fig, tmp_path, "zip")


def test_model_se_against_empirical_se(grid_ds, tmp_path):
    fig = plots.plot_se(grid_ds, terms=["Intercept", "X"])
    words = texts(fig)
    assert "Empirical SE (SD of estimates)" in words and "model SE = empirical SE" in words
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    saved(fig, tmp_path, "se")


def test_nested_loop_plot(grid_ds, tmp_path):
    fig = plots.plot_nested_loop(grid_ds, "coverage", term="X")
    words = texts(fig)
    assert "n_subjects" in words and "icc" in words and "grid cell (first factor changes slowest)" in words
    main = fig.axes[0]
    assert len(main.get_lines()[0].get_xdata()) == 6  # 3 x 2 cells
    saved(fig, tmp_path, "nested")
    with pytest.raises(ValueError, match="needs a grid"):
        plots.plot_nested_loop(synthetic_dataset(seed=1, n_reps=10))


def test_distribution_of_estimates(grid_ds, tmp_path):
    fig = plots.plot_estimates(grid_ds, max_cells=2)
    words = texts(fig)
    assert "first 2 of 6 grid cells" in words and "estimate of X (truth dashed)" in words
    saved(fig, tmp_path, "estimates")


def test_no_two_of_many_estimators_are_drawn_alike():
    """Colour and marker (the cues of point plots) differ for every pair of 64 estimators, and
    colour, marker and line style for every pair of 256; the first 8 differ in colour."""
    styles = [plots.style(i) for i in range(256)]
    assert len({(s["color"], s["marker"]) for s in styles[:30]}) == 30
    assert len({(s["color"], s["marker"]) for s in styles[:64]}) == 64
    assert len({(s["color"], s["marker"], s["linestyle"]) for s in styles}) == 256
    assert len({s["color"] for s in styles[:8]}) == 8
