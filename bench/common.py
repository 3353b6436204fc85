"""What the benchmarks share: the target, the machine's description, one training step to time, and running
a measurement in a process of its own under another oneDNN ISA cap."""

import os
import platform
import subprocess
import sys

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


def run_under_isa_cap(isa_cap, *arguments):
    """Run `python ARGUMENTS` in the repository's folder with oneDNN capped at `isa_cap` (None: not
    capped, whatever this process runs under); returns the last line it printed.

    oneDNN reads ONEDNN_MAX_CPU_ISA once per process, so a measurement under another cap needs a
    process of its own.
    """
    env = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    if isa_cap:
        env["ONEDNN_MAX_CPU_ISA"] = isa_cap
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.run([sys.executable, *arguments], env=env, cwd=repository, capture_output=True, text=True, check=True)
    return child.stdout.strip().splitlines()[-1]
