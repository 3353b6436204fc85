"""Is bfloat16 autocast worth it here? Times OptimizedNet's training step in float32 and bfloat16.

    python bench/bfloat16.py --data-dir data
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python bench/bfloat16.py --data-dir data   # no bfloat16 instructions
    ONEDNN_MAX_CPU_ISA=AVX2 python bench/bfloat16.py --data-dir data

The two are timed in turns on the same 30 real batches of the default recipe (the best of 4
rounds), so background load on the machine hits both alike. Each round is one call of
utils.train, the loop that training uses.
"""

import argparse
import itertools
import time

import torch

from common import OptimizedNet, machine, utils


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding MNIST/raw/ (default: data/ beside utils.py)")
    args = parser.parse_args()

    device = utils.get_device()
    utils.set_seed(0)
    train_loader, _ = utils.get_data_loaders(args.data_dir, device, utils.RECIPE)
    batches = list(itertools.islice(iter(train_loader), 40))
    runs = {}
    for name in ("float32", "bfloat16"):
        model = OptimizedNet().to(device, memory_format=torch.channels_last)
        runs[name] = (model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))

    def train(name, batches):
        model, optimizer = runs[name]
        utils.train(model, device, batches, optimizer, bfloat16=name == "bfloat16", verbose=False)

    for name in runs:  # warm-up: first calls pick and compile kernels
        train(name, batches[:10])
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(4):
        for name in runs:
            start = time.perf_counter()
            train(name, batches[10:])
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - start) / len(batches[10:]))

    print(f"Machine: {machine()}")
    for name, seconds in best.items():
        print(f"{name:9}: {1000 * seconds:.1f} ms per step of {utils.RECIPE['batch_size']}, {seconds * len(train_loader):.2f} s per epoch")
    print(f"bfloat16 / float32 step time: {best['bfloat16'] / best['float32']:.2f}x")


if __name__ == "__main__":
    main()
