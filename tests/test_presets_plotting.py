"""``diffnotes.presets`` (budgets, model configs, builders) and ``diffnotes.plotting`` (grids, panels)."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from diffnotes import plotting, presets
from diffnotes.precond import EDMPrecond, VPPrecond
from diffnotes.profiles import get_profile


@pytest.mark.parametrize("data", presets.DATASETS)
@pytest.mark.parametrize("profile", ["quick", "full", "gpu"])
def test_budgets_are_complete_and_grow_with_the_profile(data, profile):
    budget = presets.train_budget(get_profile(profile), data)
    assert set(budget) == {"steps", "batch_size", "lr", "ema_decay"}
    quick = presets.train_budget(get_profile("quick"), data)
    assert budget["steps"] >= quick["steps"] and 0 < budget["ema_decay"] < 1


def test_model_config_round_trips_through_build_model():
    quick = get_profile("quick")
    config = presets.model_config("edm", "moons", quick, sigma_data=0.7)
    model = presets.build_model(config)
    assert isinstance(model, EDMPrecond) and model.sigma_data == 0.7
    assert config["net"] == {"kind": "mlp", "kwargs": {"dim": 2, "hidden": 64, "depth": 3}}
    digits = presets.build_model(presets.model_config("vp", "digits", quick, sigma_data=0.5))
    assert isinstance(digits, VPPrecond) and digits.backbone.img_resolution == 8


def test_unknown_names_are_one_line_errors():
    quick = get_profile("quick")
    with pytest.raises(ValueError, match="unknown data set 'faces'; valid: gmm"):
        presets.train_budget(quick, "faces")
    with pytest.raises(ValueError, match="unknown method 'ddpm'; valid: edm, vp, ve"):
        presets.model_config("ddpm", "moons", quick, 1.0)
    with pytest.raises(ValueError, match="unknown net kind 'cnn'"):
        presets.build_net({"kind": "cnn", "kwargs": {}})


def test_toy_setup_is_the_notebooks_ring():
    gmm, x = presets.toy_mixture(n=500, seed=0)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert abs(float(x.norm(dim=1).mean()) - 1.0) < 0.05  # radius 1, std 0.1
    _, again = presets.toy_mixture(n=500, seed=0)
    assert torch.equal(x, again)
    assert presets.toy_steps(get_profile("quick")) == 500 and presets.toy_steps(get_profile("full")) == 4000
    assert presets.toy_fit_options(4000)["ema_halflife"] == 200


def test_image_grid_places_every_image_and_pads_in_white():
    images = torch.stack([torch.full((1, 2, 2), v) for v in (-1.0, 0.0, 1.0)])  # three 2x2 images
    grid = plotting.image_grid(images, cols=2)
    assert grid.shape == (2 * 4, 2 * 4, 1)  # 2 rows x 2 cols of 4x4 padded cells
    assert float(grid[1:3, 1:3].max()) == 0.0  # image 0: -1 maps to black
    assert torch.allclose(grid[1:3, 5:7], torch.full((2, 2, 1), 0.5))  # image 1: 0 maps to grey
    assert float(grid[5:7, 1:3].min()) == 1.0  # image 2: white
    assert float(grid[4:, 4:].min()) == 1.0  # the empty fourth cell is white
    assert float(grid[0].min()) == 1.0  # padding
    rgb = plotting.image_grid(torch.rand(5, 3, 4, 4) * 2 - 1)
    assert rgb.shape == (2 * 6, 3 * 6, 3) and 0 <= float(rgb.min()) and float(rgb.max()) <= 1


def test_image_grid_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="shape"):
        plotting.image_grid(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="no images"):
        plotting.image_grid(torch.zeros(0, 1, 8, 8))


def test_scatter_panels_draw_one_panel_per_set():
    ref = torch.randn(50, 2)
    fig = plotting.scatter_panels({"a": torch.randn(20, 2), "b": torch.randn(30, 2)}, reference=ref)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    assert [len(ax.collections) for ax in axes] == [2, 2]  # data + samples
    assert axes[0].get_xlim() == (-2.0, 2.0)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plotting.scatter_panels({"c": torch.randn(5, 3)})


def test_image_rows_draws_one_titled_grid_per_panel_within_the_column():
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.text import Text

    digits = torch.rand(20, 1, 8, 8) * 2 - 1
    panels = {f"s = {s}": digits * (s / 8) for s in (0, 1, 2, 4, 8)}
    fig = plotting.image_rows(panels, cols=5)
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == list(panels)
    assert fig.get_size_inches()[0] == pytest.approx(plotting.BOOK_MAX_WIDTH_IN)
    for ax, images in zip(axes, panels.values()):  # each panel shows its own images' grid
        shown = ax.get_images()[0].get_array()
        assert np.allclose(shown, plotting.image_grid(images, cols=5)[..., 0].numpy())
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= plotting.BOOK_MIN_FONT_PT
    fig.canvas.draw()  # titles of neighbouring panels do not overlap at 7 in
    boxes = [ax.title.get_window_extent() for ax in axes]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    # a long title is wrapped to its panel; too many panels wrap onto a second row
    wide = plotting.image_rows([("a title far too long for one line of a narrow panel", digits),
                                ("short", digits)], per_row=2, cols=5)
    assert "\n" in wide.get_axes()[0].get_title()
    # mathtext counts as the glyphs it draws: 28 characters typed, 20 drawn, 21 fit a panel
    math = plotting.image_rows({"inpainting, $\\sigma_0$ = 0.5": digits, "b": digits,
                                "c": digits, "d": digits}, per_row=4)
    assert "\n" not in math.get_axes()[0].get_title()
    many = plotting.image_rows([(str(i), digits) for i in range(7)], per_row=4)
    assert sum(ax.get_visible() for ax in many.get_axes()) == 7 and len(many.get_axes()) == 8
    # titles left of stacked panels, and labels for the image rows inside the panels
    left = plotting.image_rows({"input": torch.rand(6, 3, 8, 8), "truth": torch.rand(6, 3, 8, 8)},
                               per_row=1, cols=6, label_left=True)
    assert [ax.get_ylabel() for ax in left.get_axes()] == ["input", "truth"]
    labelled = plotting.image_rows({"a": torch.rand(12, 1, 8, 8), "b": torch.rand(12, 1, 8, 8)},
                                   cols=6, row_labels=("truth", "sample"))
    assert [t.get_text() for t in labelled.get_axes()[0].texts] == ["truth", "sample"]
    assert not labelled.get_axes()[1].texts
    plt.close("all")


def test_image_rows_refuses_what_it_cannot_draw():
    digits = torch.rand(12, 1, 8, 8)
    with pytest.raises(ValueError, match="panels is empty"):
        plotting.image_rows({})
    with pytest.raises(ValueError, match="'bad'.*\\(n, channels, height, width\\)"):
        plotting.image_rows({"bad": torch.rand(8, 8)})
    with pytest.raises(ValueError, match="width must be"):
        plotting.image_rows({"a": digits}, width=9)
    with pytest.raises(ValueError, match="fontsize must be at least"):
        plotting.image_rows({"a": digits}, fontsize=8)
    with pytest.raises(ValueError, match="per_row must be"):
        plotting.image_rows({"a": digits}, per_row=0)
    with pytest.raises(ValueError, match="row_labels has 3 labels"):
        plotting.image_rows({"a": digits}, cols=6, row_labels=("x", "y", "z"))


def test_save_samples_writes_points_and_images(tmp_path):
    assert plotting.save_samples(torch.randn(40, 2), tmp_path / "p.png", "points").stat().st_size > 1000
    assert plotting.save_samples(torch.randn(4, 1, 8, 8), tmp_path / "g.png", "grid").stat().st_size > 500
    with pytest.raises(ValueError, match="cannot draw samples of shape"):
        plotting.save_samples(torch.randn(4, 3), tmp_path / "x.png", "bad")
    assert not (tmp_path / "x.png").exists()


# -- the one small-U-Net builder (issue 24): the three former factories, same configs and weights


from state_hash import state_hash as _state_hash


def test_small_unet_builds_what_the_three_former_factories_built():
    # state-dict hashes on seed 0, recorded with ilvr.small_unet(1, 8, 16), sr3.sr_unet(16),
    # sr3_denoiser(16, residual=True) and srdiff_denoiser(16, 4, 0.1) before they were merged
    from diffnotes.methods.sr3 import sr3_denoiser
    from diffnotes.methods.srdiff import srdiff_denoiser

    recorded = {
        "ilvr": (lambda: presets.small_unet(8, 1, ch=16), "448b59385354e8c1"),
        "sr3 unet": (lambda: presets.small_unet(16, 6, out_channels=3), "cd3f2359f93ecbfc"),
        "sr3": (lambda: sr3_denoiser(16, residual=True), "4d115581bc5b2598"),
        "srdiff": (lambda: srdiff_denoiser(16, 4, 0.1), "4ca55df87f13131b"),
    }
    for name, (build, digest) in recorded.items():
        torch.manual_seed(0)
        assert _state_hash(build()) == digest, name


def test_profile_configs_are_the_recorded_ones():
    # the configs python -m diffnotes train stores in its checkpoints, recorded before the change
    unet = {"kind": "unet", "kwargs": {"img_resolution": 32, "ch_mult": [1, 2, 2], "dropout": 0.1,
                                       "groups": 8}}
    expect = {("mnist", "quick"): dict(in_channels=1, ch=16, num_res_blocks=1, attn_resolutions=[8]),
              ("cifar10", "full"): dict(in_channels=3, ch=32, num_res_blocks=1, attn_resolutions=[16]),
              ("digits", "gpu"): dict(in_channels=1, ch=64, num_res_blocks=2, attn_resolutions=[16])}
    for (data, profile), kwargs in expect.items():
        config = presets.net_config(data, get_profile(profile))
        assert config == {"kind": "unet", "kwargs": {**unet["kwargs"], **kwargs}}, (data, profile)
    torch.manual_seed(0)
    full = presets.build_net(presets.net_config("cifar10", get_profile("full")))
    assert _state_hash(full) == "5dd3c7999544ab44"


def test_formulations_are_the_losses_the_cli_trains():
    from diffnotes.methods.edm import LOSSES

    assert presets.FORMULATIONS == tuple(LOSSES)


def test_presets_and_nets_import_no_paper_module():
    # issue 24: builders sit below methods/ (which import them) and recipes/ (which train them)
    import ast
    from pathlib import Path

    import diffnotes

    root = Path(diffnotes.__file__).parent
    for module in ("presets.py", "nets.py"):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        names += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
        upward = [n for n in names if n.lstrip(".").split(".")[0] in ("methods", "recipes", "cli")
                  or n.startswith(("diffnotes.methods", "diffnotes.recipes", "diffnotes.cli"))]
        assert not upward, f"{module} imports {upward}"


def test_digits_unet_and_the_identity_it_starts_as():
    import pytest
    import torch

    from diffnotes.presets import digits_unet, identity_denoiser

    probe = torch.randn(4, 1, 8, 8)
    for net in (digits_unet(), digits_unet("ve", sigma_min=0.01, sigma_max=10.0)):
        assert torch.equal(net(probe, torch.tensor(2.0)), probe)
    assert identity_denoiser(probe, torch.tensor(2.0)) is probe
    with pytest.raises(ValueError, match="valid: vp, ve"):
        digits_unet("edm")


def test_fit_figure_scales_wide_figures_and_raises_small_text():
    import matplotlib.pyplot as plt

    from diffnotes.plotting import BOOK_DPI, _fitted_png, fit_figure, png_min_font

    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    axes[0].set_title("tiny", fontsize=6)
    axes[1].legend(handles=axes[1].plot([0, 1], label="line"), fontsize=7)
    assert fit_figure(fig) == 10.0
    assert tuple(fig.get_size_inches()) == pytest.approx((7.0, 1.75))
    assert axes[0].title.get_fontsize() == 10.0
    png = _fitted_png(fig)
    assert png_min_font(png) == 10.0
    from PIL import Image
    import io
    with Image.open(io.BytesIO(png)) as im:
        assert 6 * BOOK_DPI < im.size[0] <= 7 * BOOK_DPI  # cropped to what is drawn
    plt.close(fig)
    # a title longer than its axes is wrapped, and the PNG keeps every text inside 7 in
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[1].set_title("The law of the coded sample, along with its exact density and the formula")
    png = _fitted_png(fig)
    assert "\n" in axes[1].get_title()
    assert axes[1].title.get_window_extent().x1 <= fig.bbox.width
    with Image.open(io.BytesIO(png)) as im:
        assert im.size[0] <= 7 * BOOK_DPI
    plt.close(fig)
    # a figure that already fits keeps its size and its larger text
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_title("big", fontsize=14)
    ax.tick_params(labelsize=7)
    assert fit_figure(fig) == 10.0  # the tick labels, drawn at 7 pt, are raised to 10
    assert tuple(fig.get_size_inches()) == pytest.approx((5.0, 3.0))
    assert ax.title.get_fontsize() == 14
    plt.close(fig)


def test_fit_figures_to_column_is_a_no_op_outside_ipython():
    from diffnotes.plotting import fit_figures_to_column, png_min_font

    assert fit_figures_to_column() is False
    import matplotlib.pyplot as plt
    import io
    fig, _ = plt.subplots()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    assert png_min_font(buf.getvalue()) is None
