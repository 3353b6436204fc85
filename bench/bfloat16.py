"""Is bfloat16 autocast worth it here? Times OptimizedNet's training step in float32 and bfloat16.

    python bench/bfloat16.py --data-dir data
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python bench/bfloat16.py --data-dir data   # no bfloat16 instructions
    ONEDNN_MAX_CPU_ISA=AVX2 python bench/bfloat16.py --data-dir data

The two are timed in turns on the same 30 real batches of the default recipe (the best of 4
rounds), so background load on the machine hits both alike.
"""

import argparse
import itertools
import os
import time

import torch
import torch.nn.functional as F

from common import OptimizedNet, machine, utils


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    device = utils.get_device()
    utils.set_seed(0)
    train_loader, _ = utils.get_data_loaders(args.data_dir, device, utils.RECIPE)
    batches = list(itertools.islice(iter(train_loader), 40))
    runs = {}
    for name in ("float32", "bfloat16"):
        model = OptimizedNet().to(device, memory_format=torch.channels_last)
        runs[name] = (model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))

    def step(name, images, labels):
        model, optimizer = runs[name]
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bfloat16"):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()

    for name in runs:  # warm-up: first calls pick and compile kernels
        for images, labels in batches[:10]:
            step(name, images, labels)
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(4):
        for name in runs:
            start = time.perf_counter()
            for images, labels in batches[10:]:
                step(name, images, labels)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - start) / len(batches[10:]))

    print(f"Machine: {machine()}, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}")
    for name, seconds in best.items():
        print(f"{name:9}: {1000 * seconds:.1f} ms per step of {utils.RECIPE['batch_size']}, {seconds * len(train_loader):.2f} s per epoch")
    print(f"bfloat16 / float32 step time: {best['bfloat16'] / best['float32']:.2f}x")


if __name__ == "__main__":
    main()
