"""Data augmentation: each transform's effect, per sample, on the device."""

from __future__ import annotations

import numpy as np
import pytest

import gpunet
from gpunet import backend
from gpunet.data import augment


def images(rng, n=16, c=2, h=6, w=7):
    return rng.standard_normal((n, c, h, w)) + 5.0  # no zeros inside the images


def shifted(x, dy, dx):
    """NumPy reference: x moved down by dy and right by dx, zero fill."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_random_shift_moves_each_sample_by_whole_pixels_within_range(rng):
    x = images(rng, n=40)
    y = gpunet.to_numpy(augment.RandomShift(2)(gpunet.asarray(x, dtype="float64")))
    seen = set()
    for sample, result in zip(x, y, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(shifted(sample, dy, dx), result)
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10  # shifts are drawn per sample


def test_random_flip_mirrors_about_half_the_samples(rng):
    x = images(rng, n=200, c=1, h=3, w=4)
    y = gpunet.to_numpy(augment.RandomFlip()(gpunet.asarray(x, dtype="float64")))
    flipped = np.array([np.array_equal(b, a[..., ::-1]) for a, b in zip(x, y, strict=True)])
    kept = np.array([np.array_equal(b, a) for a, b in zip(x, y, strict=True)])
    assert (flipped ^ kept).all()
    assert 70 < flipped.sum() < 130


def test_vertical_flip(rng):
    x = images(rng, n=50)
    y = gpunet.to_numpy(augment.RandomFlip(horizontal=False, vertical=True)(gpunet.asarray(x)))
    x32 = x.astype(np.float32)
    for a, b in zip(x32, y, strict=True):
        assert np.array_equal(b, a) or np.array_equal(b, a[:, ::-1, :])


def test_rotation_by_zero_degrees_is_the_identity(rng):
    x = images(rng)
    y = gpunet.to_numpy(augment.RandomRotation(0)(gpunet.asarray(x, dtype="float64")))
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_rotation_keeps_a_constant_image_constant_inside_and_changes_a_pattern(rng):
    x = np.ones((8, 1, 21, 21))
    y = gpunet.to_numpy(augment.RandomRotation(15)(gpunet.asarray(x, dtype="float64")))
    # Bilinear interpolation of a constant is that constant wherever the source is inside.
    np.testing.assert_allclose(y[:, :, 5:16, 5:16], 1.0, atol=1e-5)
    stripes = np.zeros((8, 1, 21, 21))
    stripes[:, :, 10, :] = 1.0  # a horizontal line through the centre
    turned = gpunet.to_numpy(augment.RandomRotation(15)(gpunet.asarray(stripes)))
    assert np.abs(turned - stripes).max() > 0.2
    assert turned[:, :, 10, 10] == pytest.approx(1.0, abs=1e-5)  # the centre stays


def test_rotation_of_90_degrees_at_most_turns_an_arrow(rng):
    gpunet.seed(2)
    x = np.zeros((64, 1, 5, 5))
    x[:, :, 2, 3:] = 1.0  # points right
    y = gpunet.to_numpy(augment.RandomRotation(90)(gpunet.asarray(x, dtype="float64")))
    left_half = y[:, 0, :, :2].sum(axis=(1, 2))
    assert (left_half < 0.5).all()  # never turned past 90 degrees


def test_gaussian_noise_has_the_requested_spread(rng):
    x = gpunet.asarray(np.zeros((200, 500)), dtype="float64")
    noise = gpunet.to_numpy(augment.GaussianNoise(0.3)(x))
    assert noise.std() == pytest.approx(0.3, rel=0.01)
    assert abs(noise.mean()) < 0.005
    assert abs(np.mean(noise**3)) < 0.01 and np.mean(noise**4) / 0.3**4 == pytest.approx(
        3, rel=0.05
    )


def test_compose_applies_in_order_and_keeps_device_and_dtype(rng):
    x = gpunet.asarray(images(rng))
    pipeline = augment.Compose(
        augment.RandomShift(1), augment.RandomFlip(), augment.RandomRotation(5)
    )
    y = pipeline(x)
    assert backend.library_of(y) == backend.library_of(x)
    assert y.dtype == x.dtype and tuple(y.shape) == tuple(x.shape)
    gpunet.seed(9)
    first = gpunet.to_numpy(pipeline(x))
    gpunet.seed(9)
    np.testing.assert_array_equal(first, gpunet.to_numpy(pipeline(x)))
    assert "RandomShift(max_shift=1)" in repr(pipeline)


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        (
            augment.RandomShift(1),
            r"RandomShift: expected input of shape \(N, C, H, W\), got shape \(4, 5\)",
        ),
        (
            augment.RandomFlip(),
            r"RandomFlip: expected input of shape \(N, C, H, W\), got shape \(4, 5\)",
        ),
        (augment.RandomRotation(5), r"RandomRotation: expected input of shape \(N, C, H, W\)"),
    ],
)
def test_image_transforms_reject_other_shapes(transform, message):
    with pytest.raises(ValueError, match=message):
        transform(gpunet.asarray(np.zeros((4, 5))))


def test_bad_arguments_raise():
    with pytest.raises(
        ValueError, match=r"GaussianNoise: std must be a finite number in \[0, inf\), got -1"
    ):
        augment.GaussianNoise(-1)
    with pytest.raises(ValueError, match=r"RandomShift: max_shift must be an int >= 0, got 1\.5"):
        augment.RandomShift(1.5)
    with pytest.raises(ValueError, match=r"RandomRotation: max_degrees must be in \[0, 180\]"):
        augment.RandomRotation(270)
    with pytest.raises(TypeError, match=r"Compose: transform 1 is int, not callable"):
        augment.Compose(augment.RandomFlip(), 3)
