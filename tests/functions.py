"""tapegrad.Function subclasses that several test modules use."""

import tapegrad as tg


class Cube(tg.Function):
    """x**3, with a backward written in Tensor ops (so differentiable again)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3.0 * x * x * g


class Square(tg.Function):
    """x**2, with a backward written in Tensor ops."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2.0 * x * g


class Double(tg.Function):
    """2 x, with nothing saved."""

    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, g):
        return g * 2.0


class WrongCount(tg.Function):
    """A backward that returns two gradients for one argument."""

    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, g):
        return g, g
