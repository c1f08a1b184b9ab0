"""Patched diffusion (Luhman & Luhman 2022): the space-to-depth wrapper, its permutation, the
proof that it is orthogonal, and the memory/throughput helpers."""

import pytest
import torch
import torch.nn.functional as F

from diffnotes.methods.edm import EDMLoss
from diffnotes.methods.patching import (PatchedBackbone, activation_elements, images_per_second,
                                        patch_permutation, patched_unet, train_images_per_second)
from diffnotes.nets import count_parameters
from diffnotes.precond import EDMPrecond
from diffnotes.theory.proofs.efficiency_proofs import patching_check, space_to_depth_matrix

UNET = dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0, groups=8)


@pytest.mark.parametrize("patch", [1, 2, 4])
def test_permutation_is_what_pixel_unshuffle_does(patch):
    x = torch.randn(3, 2, 8, 8)
    perm = patch_permutation(2, 8, 8, patch)
    assert sorted(perm.tolist()) == list(range(2 * 64))  # a permutation
    assert torch.equal(F.pixel_unshuffle(x, patch).flatten(1), x.flatten(1)[:, perm])


def test_the_proofs_matrix_is_the_engines_permutation():
    P = space_to_depth_matrix(2, 4, 4, 2)
    perm = patch_permutation(2, 4, 4, 2)
    for row, col in enumerate(perm.tolist()):
        assert P[row, col] == 1 and sum(P.row(row)) == 1


def test_patching_proof_holds_and_fails_when_broken():
    assert patching_check().ok
    assert not patching_check(break_entry=True).ok


def test_patched_backbone_round_trip_and_shapes():
    net = patched_unet(4, 16, in_channels=1, **UNET)
    assert net.backbone.in_channels == 16 and net.backbone.img_resolution == 4
    x = torch.randn(2, 1, 16, 16)
    assert net(x, torch.zeros(2)).shape == x.shape

    class Identity(torch.nn.Module):
        def forward(self, h, c_noise, class_labels=None):
            return h
    assert torch.equal(PatchedBackbone(Identity(), 2)(x, torch.zeros(2)), x)


def test_patched_loss_equals_the_loss_on_patched_images():
    """The squared error of the patched denoiser is the backbone's error on P x0 (the proof)."""
    torch.manual_seed(0)
    backbone = torch.nn.Conv2d(4, 4, 3, padding=1)
    x0, n = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    out = F.pixel_shuffle(backbone(F.pixel_unshuffle(x0 + n, 2)), 2)
    err = ((out - x0) ** 2).flatten(1).sum(1)
    err_patched = ((backbone(F.pixel_unshuffle(x0, 2) + F.pixel_unshuffle(n, 2))
                    - F.pixel_unshuffle(x0, 2)) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(err, err_patched)


def test_patch_sizes_shrink_activations_not_parameters():
    sizes = {}
    for p in (1, 2, 4):
        net = patched_unet(p, 16, **UNET)
        sizes[p] = (count_parameters(net), activation_elements(net, torch.randn(2, 1, 16, 16), torch.zeros(2)))
    assert sizes[1][1] > 2 * sizes[2][1] > 4 * sizes[4][1] > 0
    # only the first and last convolution see the p^2 channels
    assert abs(sizes[4][0] - sizes[1][0]) < 0.1 * sizes[1][0]


def test_throughput_helpers_leave_weights_alone():
    model = EDMPrecond(patched_unet(2, 8, **UNET), sigma_data=0.5)
    before = [p.clone() for p in model.parameters()]
    assert train_images_per_second(model, EDMLoss(), torch.randn(4, 1, 8, 8), repeats=1) > 0
    assert images_per_second(model, (4, 1, 8, 8), repeats=1) > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_patch_size_says_what_is_valid(bad):
    with pytest.raises(ValueError, match="positive integer"):
        patched_unet(bad, 16, **UNET)


def test_wrong_image_size_is_one_clear_error():
    with pytest.raises(ValueError, match="divisible by 4"):
        PatchedBackbone(torch.nn.Identity(), 4)(torch.randn(1, 1, 6, 6), torch.zeros(1))
    with pytest.raises(ValueError, match="not divisible"):
        patched_unet(4, 10, **UNET)


def test_patching_index_map_is_a_bijection_on_every_listed_shape_and_a_broken_one_is_not():
    """The strengthened proof checks the index map on several shapes (3 channels, non-square,
    p = 2, 3, 4); an overlapping channel stride must fail, and the generic orthogonality part
    must hold on another shape."""
    from diffnotes.theory.proofs.efficiency_proofs import PATCH_SHAPES, _index_map_is_bijection
    assert all(_index_map_is_bijection(*shape) for shape in PATCH_SHAPES)
    assert not _index_map_is_bijection(3, 4, 4, 2, channel_stride=2)
    assert patching_check(3, 4, 4, 2).ok
    assert not patching_check(3, 4, 4, 2, break_entry=True).ok
