"""What the benchmarks share: the target, the machine's description and one training step to time."""

import os
import platform

import torch

import utils
from bench.seed_models import SEED_MODELS
from model import MODELS

ARCHITECTURES = {**MODELS, **SEED_MODELS}  # what the benchmarks can train: the family and the seed models

TARGET = 99.4


def machine():
    device = utils.get_device()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device {device}, fast bfloat16: {utils.bfloat16_is_fast(device)}, "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}"
    )


def training_step(name, batch_size, channels_last=True, compile=False, bfloat16=False):
    """A function that runs one training step of ARCHITECTURES[name] on one fixed batch of random images
    (utils.train, SGD): what bench/frontier.py's CPU times and bench/tricks.py measure."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = ARCHITECTURES[name]().to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compile:
        model = torch.compile(model)
    batch = [(torch.randn(batch_size, 1, 28, 28).to(memory_format=layout), torch.randint(0, 10, (batch_size,)))]
    return lambda: utils.train(model, torch.device("cpu"), batch, optimizer, bfloat16=bfloat16, verbose=False)
