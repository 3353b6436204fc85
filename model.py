"""OptimizedNet: a small MNIST classifier (19,018 parameters) built for fast training on a CPU."""

import torch.nn as nn


def conv_block(in_channels, out_channels, dropout=0.0, **conv_args):
    """3x3 convolution, BatchNorm, ReLU, then (optionally) channel dropout."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, bias=False, **conv_args),  # BatchNorm adds the bias
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]
    if dropout:
        # Dropout2d drops whole feature maps, drawing one random number per channel rather than
        # one per pixel: with element dropout, drawing them took a quarter of a CPU training step.
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class OptimizedNet(nn.Module):
    """Convolutions with BatchNorm and Dropout, a 1x1 transition, global average pooling and a
    fully connected layer. `forward` returns logits (train with `F.cross_entropy`).

    | layer       | operation                     | output (C x H x W) | receptive field |
    |-------------|-------------------------------|--------------------|-----------------|
    | input       |                               | 1 x 28 x 28        | 1               |
    | conv1       | 3x3, stride 2, padding 1      | 16 x 14 x 14       | 3               |
    | conv2       | 3x3                           | 16 x 12 x 12       | 7               |
    | conv3       | 3x3                           | 32 x 10 x 10       | 11              |
    | transition  | 1x1 (32 -> 16 channels)       | 16 x 10 x 10       | 11              |
    | conv4       | 3x3                           | 16 x 8 x 8         | 15              |
    | conv5       | 3x3                           | 24 x 6 x 6         | 19              |
    | conv6       | 3x3                           | 24 x 4 x 4         | 23              |
    | gap         | global average pooling        | 24 x 1 x 1         | 29              |
    | fc          | Linear(24, 10)                | 10                 | 29              |

    After conv1 every step moves 2 input pixels, so each 3x3 convolution widens the receptive
    field by 4; the average over the final 4x4 map spans 29 pixels, the whole 28x28 digit.

    Why the first convolution has stride 2: on a CPU the layers at full 28x28 resolution cost the
    most (their BatchNorm and ReLU touch every pixel of every channel), and MNIST digits lose
    nothing that matters at 14x14 once 16 filters have looked at each 3x3 patch.
    """

    def __init__(self, dropout=0.05):
        super().__init__()
        self.conv1 = conv_block(1, 16, stride=2, padding=1)
        self.conv2 = conv_block(16, 16, dropout)
        self.conv3 = conv_block(16, 32, dropout)
        # The 1x1 transition halves the channels before the next 3x3 layers, mixing the 32 maps
        # into 16 at a ninth of a 3x3 layer's cost.
        self.transition = nn.Conv2d(32, 16, kernel_size=1, bias=False)
        self.conv4 = conv_block(16, 16, dropout)
        self.conv5 = conv_block(16, 24)
        self.conv6 = conv_block(24, 24)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.conv3(self.conv2(self.conv1(x)))
        x = self.conv6(self.conv5(self.conv4(self.transition(x))))
        return self.fc(self.gap(x).flatten(1))


# The models `train.py --model NAME` and the notebook's MODEL parameter can pick, and each one's
# recipe: the keys of utils.RECIPE that it changes.
MODELS = {"OptimizedNet": OptimizedNet}
RECIPES = {"OptimizedNet": {}}
