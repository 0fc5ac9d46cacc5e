import numpy as np
import pytest
import torch

from ferml.losses import svm_l2_loss
from ferml.preprocess import Preprocessor, augment_batch, image_normalize, pixel_statistics


def test_image_normalization_by_hand():
    img = torch.tensor([[[[0.0, 2.0], [4.0, 6.0]]]])
    # mean 3, centred [-3, -1, 1, 3], biased std sqrt((9+1+1+9)/4) = sqrt(5)
    expected = torch.tensor([-3.0, -1.0, 1.0, 3.0]) / 5 ** 0.5 * 3.125
    np.testing.assert_allclose(image_normalize(img).flatten(), expected, rtol=1e-6)
    out = image_normalize(torch.rand(3, 3, 8, 8) * 255)
    np.testing.assert_allclose(out.mean((2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.pow(2).mean((2, 3)).sqrt(), 3.125, rtol=1e-5)
    assert torch.equal(image_normalize(torch.full((1, 1, 4, 4), 7.0)), torch.zeros(1, 1, 4, 4))


def test_pixel_statistics_by_hand():
    x = torch.tensor([[[[1.0, 0.0]]], [[[3.0, 0.0]]], [[[5.0, 0.0]]]])
    mean, std = pixel_statistics(x)
    # position 0: values 1, 3, 5 -> mean 3, biased std sqrt(8/3); position 1: constant
    np.testing.assert_allclose(mean.flatten(), [3.0, 0.0])
    np.testing.assert_allclose(std.flatten(), [(8 / 3) ** 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(std.flatten()[0], np.std([1, 3, 5]), rtol=1e-6)


def test_preprocessor_fits_on_training_images_and_round_trips(fer_sample_csv):
    from ferml.data import load_dataset

    train = load_dataset(fer_sample_csv, split="train")
    pre = Preprocessor(42, 1).fit(train.images)
    x = pre(train.images)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(0, unbiased=False), 1, atol=1e-3)
    clone = Preprocessor.from_dict(pre.to_dict())
    assert torch.equal(clone(train.images[:4]), pre(train.images[:4]))
    off = Preprocessor(42, 1).fit(train.images, pixel_norm=False)
    assert not off.pixel_norm and torch.allclose(off(train.images[:2]), image_normalize(torch.as_tensor(train.images[:2]).float()))


def test_augmentation_keeps_shape_and_varies(fer_sample_csv):
    from ferml.data import load_dataset

    data = load_dataset(fer_sample_csv, split="val")
    x = Preprocessor(42, 1).fit(data.images)(data.images[:64])
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, gen)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    again = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded


def test_augmentation_geometry():
    x = torch.zeros(1, 1, 42, 42)
    x[..., :, :21] = 1.0  # left half bright
    flipped = augment_batch(x, flip_p=1.0, max_rotation=0, max_enlarge=0)
    assert flipped[..., :, 25:].mean() > 0.95 and flipped[..., :, :17].mean() < 0.05
    same = augment_batch(x, flip_p=0.0, max_rotation=0, max_enlarge=0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    dot = torch.zeros(1, 1, 41, 41)
    dot[..., 20, 30] = 1.0  # right of centre
    rotated = augment_batch(dot.repeat(64, 1, 1, 1), flip_p=0.0, max_rotation=45, max_enlarge=0)
    # a point rotated by at most 45 degrees stays on the right side
    ys, xs = torch.meshgrid(torch.arange(41.0), torch.arange(41.0), indexing="ij")
    cx = (rotated[:, 0] * xs).sum((1, 2)) / rotated[:, 0].sum((1, 2))
    assert (cx > 20 + 10 * np.cos(np.pi / 4) - 1).all()


def test_svm_loss_worked_example():
    # thesis eq. 2-5: s = [6, 14, 9], correct class 1, delta 10: margins 6-14+10 = 2 and 9-14+10 = 5
    scores = torch.tensor([[6.0, 14.0, 9.0]])
    target = torch.tensor([1])
    # eq. 33, L2 form: 1/N sqrt(2^2 + 5^2) = sqrt(29) for N = 1
    assert svm_l2_loss(scores, target, delta=10).item() == pytest.approx(29 ** 0.5)
    # every wrong class counts, not only the strongest one; eq. 33 sums over the batch
    # before the root: row 1 has no violated margin at delta 1, row 2 violates two by 1 each
    two = torch.tensor([[6.0, 14.0, 9.0], [0.0, 0.0, 0.0]])
    assert svm_l2_loss(two, torch.tensor([1, 0]), delta=1).item() == pytest.approx((0 + 1 + 1) ** 0.5 / 2)
