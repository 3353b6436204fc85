"""The two "seed" architectures of the original assignment, rewritten as plain nn.Modules, so that
bench/frontier.py can train them with this project's recipe: what the recipe alone is worth.

Both are reconstructed from the torchsummary tables and model code their authors published (sources
below); the layer list, kernel sizes, paddings, biases and parameter counts match exactly. Both
`forward`s return logits (train with F.cross_entropy, as the project does); the originals returned
log_softmax and trained with F.nll_loss, which gives the same loss and the same predictions.

SeedNetA - 18,594 parameters
    Source: github.com/piygr/s6erav1, model.py / S6/Part2/model.py (class OptimizedNet) and the
    README's torchsummary table ("Total params: 18,594"). Five padded-or-valid 3x3 convolutions
    with BatchNorm, ReLU and Dropout2d, two 2x2 max-poolings, a 1x1 convolution to 10 channels on
    the 4x4 map and a 4x4 average pool. The README's 20-epoch log ends at 99.58% test accuracy
    (epoch 20; best 99.60% at epoch 17), trained with SGD lr 0.01, StepLR (x0.1 every 7 epochs),
    batch 64. The repository's README versions differ in the order of ReLU and BatchNorm (one
    table lists Conv-BN-ReLU-Dropout, the 20-epoch one Conv-ReLU-BN-Dropout; model.py in
    S6/Part2 mixes them) and in the dropout rate (0.02 in S6/Part2/model.py); parameter count and
    shapes are the same either way. Here: Conv -> BN -> ReLU -> Dropout2d, p = 0.02.

    | layer | op                              | output    | params |
    |-------|---------------------------------|-----------|-------:|
    | 1     | conv 3x3 pad 1, 1->8 (+bias)    | 8x28x28   | 80+16  |
    | 2     | conv 3x3 pad 1, 8->8            | 8x28x28   | 584+16 |
    |       | maxpool 2                       | 8x14x14   |        |
    | 3     | conv 3x3 pad 1, 8->16           | 16x14x14  | 1,168+32 |
    | 4     | conv 3x3 pad 1, 16->16          | 16x14x14  | 2,320+32 |
    | 5     | conv 3x3, 16->32                | 32x12x12  | 4,640+64 |
    |       | maxpool 2                       | 32x6x6    |        |
    | 6     | conv 3x3, 32->32                | 32x4x4    | 9,248+64 |
    | 7     | conv 1x1, 32->10 (+bias)        | 10x4x4    | 330    |
    |       | average pool 4x4                | 10        |        |

SeedNetB - 17,882 parameters
    Source: github.com/mathi-123/EVA7, S4/Session_4_Assignment2.ipynb (class Net; its summary
    cell prints "Total params: 17,882") and S4/README.md. Conv -> ReLU -> BN -> Dropout2d blocks
    (all convolutions with bias, no padding), a max-pool + 1x1 (32->16, ReLU, no BN) transition,
    a second 1x1 transition, a final 1x1 convolution to 10 channels on the 5x5 map and a 5x5
    average pool. There is no nn.Linear: the final 1x1 convolution to 10 classes is the
    "fully connected layer" of the assignment (applied at every position, then averaged, which
    equals GAP followed by a Linear layer). Trained there with SGD lr 0.01, momentum 0.9, batch 64,
    no augmentation, 20 epochs: test accuracy peaked at 99.49% (epoch 16), ended at 99.48%.

    | layer | op                              | output    | params |
    |-------|---------------------------------|-----------|-------:|
    | 1     | conv 3x3, 1->16, drop 0.1       | 16x26x26  | 160+32 |
    | 2     | conv 3x3, 16->16, drop 0.1      | 16x24x24  | 2,320+32 |
    | 3     | conv 3x3, 16->32, drop 0.1      | 32x22x22  | 4,640+64 |
    |       | maxpool 2                       | 32x11x11  |        |
    | 4     | conv 1x1, 32->16, ReLU (no BN)  | 16x11x11  | 528    |
    | 5     | conv 3x3, 16->16, drop 0.1      | 16x9x9    | 2,320+32 |
    | 6     | conv 3x3, 16->32, drop 0.05     | 32x7x7    | 4,640+64 |
    | 7     | conv 1x1, 32->16, ReLU (no BN)  | 16x7x7    | 528    |
    | 8     | conv 3x3, 16->16, drop 0.05     | 16x5x5    | 2,320+32 |
    | 9     | conv 1x1, 16->10 (+bias)        | 10x5x5    | 170    |
    |       | average pool 5x5                | 10        |        |
"""

import torch.nn as nn


def _conv_bn_relu(cin, cout, padding, dropout):
    """3x3 convolution (with bias), BatchNorm, ReLU, Dropout2d."""
    return [nn.Conv2d(cin, cout, 3, padding=padding), nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout2d(dropout)]


class SeedNetA(nn.Module):
    """18,594 parameters (piygr/s6erav1 OptimizedNet); see the module docstring."""

    def __init__(self, dropout=0.02):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn_relu(1, 8, 1, dropout),
            *_conv_bn_relu(8, 8, 1, dropout),
            nn.MaxPool2d(2),  # 28 -> 14
            *_conv_bn_relu(8, 16, 1, dropout),
            *_conv_bn_relu(16, 16, 1, dropout),
            *_conv_bn_relu(16, 32, 0, dropout),  # 14 -> 12
            nn.MaxPool2d(2),  # 12 -> 6
            *_conv_bn_relu(32, 32, 0, dropout),  # 6 -> 4
            nn.Conv2d(32, 10, 1),  # the classifier, applied at each of the 4x4 positions
            nn.AvgPool2d(4),
        )

    def forward(self, x):
        return self.body(x).flatten(1)


def _relu_bn_conv(cin, cout, dropout):
    """3x3 convolution (with bias, no padding), ReLU, then BatchNorm, Dropout2d (the author's order)."""
    return [nn.Conv2d(cin, cout, 3), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout2d(dropout)]


class SeedNetB(nn.Module):
    """17,882 parameters (mathi-123/EVA7 S4 Net); see the module docstring."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *_relu_bn_conv(1, 16, 0.1),  # 28 -> 26
            *_relu_bn_conv(16, 16, 0.1),  # -> 24
            *_relu_bn_conv(16, 32, 0.1),  # -> 22
            nn.MaxPool2d(2),  # -> 11
            nn.Conv2d(32, 16, 1), nn.ReLU(),  # transition
            *_relu_bn_conv(16, 16, 0.1),  # -> 9
            *_relu_bn_conv(16, 32, 0.05),  # -> 7
            nn.Conv2d(32, 16, 1), nn.ReLU(),  # transition
            *_relu_bn_conv(16, 16, 0.05),  # -> 5
            nn.Conv2d(16, 10, 1),  # the classifier at each of the 5x5 positions
            nn.AvgPool2d(5),
        )

    def forward(self, x):
        return self.body(x).flatten(1)


# Trained by bench/frontier.py with the project's default recipe, beside their authors' own results.
SEED_MODELS = {"SeedNetA": SeedNetA, "SeedNetB": SeedNetB}
REPORTED = {  # test accuracy their authors published, each from a single run
    "SeedNetA": dict(accuracy=99.58, label="99.58% after 20 epochs, as reported"),
    "SeedNetB": dict(accuracy=99.49, label="99.49% at its best epoch (99.48% final) of 20, as reported"),
}
