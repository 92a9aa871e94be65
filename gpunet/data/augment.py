"""Data augmentation: random transforms of a batch, drawn and applied on the device.

Each transform is a callable ``transform(batch) -> new batch`` on the same device; the
random numbers come from ``gpunet.backend.random_uniform``, so nothing crosses to the
host and a seed (``gpunet.seed``) fixes the draws. Use them in a manual loop
(``x = augment(x)`` before the forward pass) or through ``fit(..., augment=...)``.

The geometric transforms take image batches ``(N, C, H, W)`` and move each sample on
its own. They are written as gathers: for every output pixel a source position is
computed and the batch, given a border of zeros, is read there with ``take`` on the
flattened array; sources outside the image are clamped onto the zero border. This stays
inside the array API (no indexed assignment), so it runs on NumPy, CuPy and
array-api-strict alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from gpunet import backend, checks
from gpunet.backend import namespace


def _check_images(x: Any, name: str) -> Any:
    """``x`` as a floating image batch ``(N, C, H, W)`` (the dtype rule of the layers)."""
    x = checks.floating(x, name)
    checks.shape(x, name, ("N", "C", "H", "W"))
    return x


def _uniform(n: int, low: float, high: float) -> Any:
    """``n`` draws from U(low, high) on the device (float32: pixel coordinates)."""
    return low + (high - low) * backend.random_uniform((n,), "float32")


def _pad(x: Any) -> Any:
    """``x`` with a one-pixel border of zeros: ``(N, C, H + 2, W + 2)``."""
    xp = namespace(x)
    n, c, h, w = x.shape
    side = xp.zeros((n, c, h, 1), dtype=x.dtype)
    x = xp.concat([side, x, side], axis=3)
    edge = xp.zeros((n, c, 1, w + 2), dtype=x.dtype)
    return xp.concat([edge, x, edge], axis=2)


def _gather(padded: Any, rows: Any, cols: Any) -> Any:
    """``image[n, c, rows[n, i, j], cols[n, i, j]]`` for every n, c, i, j, zero outside.

    ``padded`` is the batch with a zero border (``_pad``); ``rows`` and ``cols`` are
    integer arrays ``(N, H, W)`` in the coordinates of the unpadded image and may point
    anywhere: positions outside are clamped onto the zero border.
    """
    xp = namespace(padded)
    n, c, hp, wp = padded.shape
    rows = xp.clip(rows + 1, 0, hp - 1)
    cols = xp.clip(cols + 1, 0, wp - 1)
    pixel = rows * wp + cols  # (N, H, W)
    plane = xp.reshape(xp.arange(n * c, dtype=pixel.dtype) * (hp * wp), (n, c, 1, 1))
    index = xp.reshape(plane + pixel[:, None, :, :], (-1,))
    values = xp.take(xp.reshape(padded, (-1,)), index, axis=0)
    return xp.reshape(values, (n, c, hp - 2, wp - 2))


def _grid(xp: Any, h: int, w: int) -> tuple[Any, Any]:
    """Row and column indices ``(1, H, W)`` of every pixel, as int64."""
    rows = xp.reshape(xp.arange(h, dtype=xp.int64), (1, h, 1))
    cols = xp.reshape(xp.arange(w, dtype=xp.int64), (1, 1, w))
    return rows + 0 * cols, cols + 0 * rows


class GaussianNoise:
    """Add N(0, std**2) noise to every element; works on any input.

    Args:
        std: standard deviation of the noise (>= 0).

    The normal draws are made from two uniform ones (Box-Muller), on the device.
    """

    def __init__(self, std: float):
        self.std = checks.number(std, "GaussianNoise", "std", 0)

    def __call__(self, x: Any) -> Any:
        x = checks.floating(x, "GaussianNoise")
        xp = namespace(x)
        if self.std == 0:
            return x
        shape = tuple(x.shape)
        u1 = 1.0 - backend.random_uniform(shape, x.dtype)  # in (0, 1]: log is finite
        u2 = backend.random_uniform(shape, x.dtype)
        normal = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos((2.0 * math.pi) * u2)
        return x + self.std * normal

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


class RandomShift:
    """Shift each image by a random whole number of pixels, filling with zeros.

    Args:
        max_shift: the largest shift in each direction (int >= 0); each sample gets its
            own vertical and horizontal shift, uniform in ``[-max_shift, max_shift]``.

    Shapes:
        ``(N, C, H, W)`` in and out.
    """

    def __init__(self, max_shift: int):
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift = max_shift

    def __call__(self, x: Any) -> Any:
        x = _check_images(x, "RandomShift")
        xp = namespace(x)
        n, _, h, w = x.shape
        span = 2 * self.max_shift + 1
        shifts = []
        for _axis in range(2):
            draw = xp.floor(_uniform(n, 0.0, span))
            shift = xp.astype(xp.clip(draw, 0, span - 1), xp.int64) - self.max_shift
            shifts.append(xp.reshape(shift, (n, 1, 1)))
        rows, cols = _grid(xp, h, w)
        return _gather(_pad(x), rows - shifts[0], cols - shifts[1])

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift})"


class RandomFlip:
    """Mirror each image with probability 0.5, left-right and/or upside down.

    Args:
        horizontal: flip left-right (default True).
        vertical: flip upside down (default False); each enabled axis is decided
            independently per sample.

    Shapes:
        ``(N, C, H, W)`` in and out.
    """

    def __init__(self, horizontal: bool = True, vertical: bool = False):
        self.horizontal, self.vertical = bool(horizontal), bool(vertical)

    def __call__(self, x: Any) -> Any:
        x = _check_images(x, "RandomFlip")
        xp = namespace(x)
        n = x.shape[0]
        for enabled, axis in ((self.horizontal, 3), (self.vertical, 2)):
            if enabled:
                flip = xp.reshape(backend.random_uniform((n,), "float32") < 0.5, (n, 1, 1, 1))
                x = xp.where(flip, xp.flip(x, axis=axis), x)
        return x

    def __repr__(self) -> str:
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical})"


class RandomRotation:
    """Rotate each image about its centre by a random angle, with bilinear interpolation.

    Args:
        max_degrees: the largest rotation either way (>= 0, at most 180); each sample's
            angle is uniform in ``[-max_degrees, max_degrees]``.

    Shapes:
        ``(N, C, H, W)`` in and out; corners rotated in from outside are zero.

    Math:
        output pixel ``(i, j)`` reads the input at ``c + R(-angle) ((i, j) - c)`` with
        ``c`` the centre, interpolating between its four neighbours.
    """

    def __init__(self, max_degrees: float):
        if not 0 <= max_degrees <= 180:
            raise ValueError(
                f"RandomRotation: max_degrees must be in [0, 180], got {max_degrees!r}"
            )
        self.max_degrees = float(max_degrees)

    def __call__(self, x: Any) -> Any:
        x = _check_images(x, "RandomRotation")
        xp = namespace(x)
        n, _, h, w = x.shape
        limit = math.radians(self.max_degrees)
        angle = xp.reshape(_uniform(n, -limit, limit), (n, 1, 1))
        rows, cols = _grid(xp, h, w)
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        dy, dx = xp.astype(rows, xp.float32) - cy, xp.astype(cols, xp.float32) - cx
        cos, sin = xp.cos(angle), xp.sin(angle)
        src_y = cy + cos * dy - sin * dx
        src_x = cx + sin * dy + cos * dx
        y0, x0 = xp.floor(src_y), xp.floor(src_x)
        fy, fx = src_y - y0, src_x - x0
        y0, x0 = xp.astype(y0, xp.int64), xp.astype(x0, xp.int64)
        padded = _pad(x)
        out = xp.zeros_like(x)
        corners = ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                   (1, 0, fy * (1 - fx)), (1, 1, fy * fx))  # fmt: skip
        for oy, ox, weight in corners:
            values = _gather(padded, y0 + oy, x0 + ox)
            out = out + values * xp.astype(weight, x.dtype)[:, None, :, :]
        return out

    def __repr__(self) -> str:
        return f"RandomRotation(max_degrees={self.max_degrees})"


class Compose:
    """Apply transforms one after the other.

    Args:
        *transforms: callables ``batch -> batch``, the first applied first.
    """

    def __init__(self, *transforms: Callable[[Any], Any]):
        for index, transform in enumerate(transforms):
            if not callable(transform):
                raise TypeError(
                    f"Compose: transform {index} is {type(transform).__name__}, not callable"
                )
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(t) for t in self.transforms)})"
