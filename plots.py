"""What the notebook shows: the model's layer table and the figures of data, training and results.

Each plot returns its matplotlib figure (for savefig) and, in Jupyter, shows it exactly once with
alt text. matplotlib is imported by each function when it is called, so importing this module
changes no plotting backend.
"""

import copy
import io
import sys

import torch

from utils import MNIST_MEAN, MNIST_STD, TensorLoader, random_affine


def model_summary(model, device=None):
    """torchsummary's layer table, whatever device the model is on (CUDA, MPS or CPU).

    torchsummary feeds its test input on the device it is told, which must be the model's; it
    knows only "cuda" and "cpu". So it always summarises a CPU copy: the model itself stays where
    it is, and the table is the same. `device` is accepted for the classic call and not needed.
    """
    from torchsummary import summary

    summary(copy.deepcopy(model).cpu(), input_size=(1, 28, 28), device="cpu")


def _shown_once(figure, alt):
    """Return the figure, shown exactly once in Jupyter whether or not the cell ends with `;`.

    With the inline backend, pyplot shows every open figure at the end of the cell, and Jupyter
    shows the cell's value again. So the figure is displayed here, taken off pyplot's list, and
    skipped once as the cell's value. The PNG is stored once, inside an <img> with alt text:
    Jupyter, VS Code and exported HTML show that form (a bare PNG output keeps no alt text), and
    the plain-text form, for a terminal, is the alt text itself. Elsewhere the figure is returned
    as it is, ready for savefig.
    """
    import matplotlib

    figure.tight_layout()
    if "inline" in matplotlib.get_backend() and "ipykernel" in sys.modules:
        import base64
        import html

        import matplotlib.pyplot as plt
        from IPython.display import display

        plt.close(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        png = base64.b64encode(buffer.getvalue()).decode("ascii")
        image = f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}">'
        display({"text/html": image, "text/plain": alt}, raw=True)

        def skip_once():
            del figure._ipython_display_  # a later display(figure) shows it again

        figure._ipython_display_ = skip_once
    return figure


def _image_grid(images, titles, columns, title):
    import matplotlib.pyplot as plt

    rows = max(1, (len(images) + columns - 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, text in zip(axes.flat, images, titles):
        axis.imshow(image.squeeze().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        axis.set_title(text, fontsize=9)
    figure.suptitle(title)
    return figure


def _stored_images(loader, count):
    """The first `count` images of a loader's dataset as stored (0 to 1 floats), and their labels.

    Works for TensorLoader, for a DataLoader over torchvision's MNIST (or a Subset of it), and
    falls back to the loader's own first batch for any other dataset (shown un-normalised).
    """
    if isinstance(loader, TensorLoader):
        return loader.images[:count].unsqueeze(1).float().div(255), loader.labels[:count].cpu()
    dataset, indices = loader.dataset, range(count)
    if isinstance(dataset, torch.utils.data.Subset):
        dataset, indices = dataset.dataset, dataset.indices[:count]
    if hasattr(dataset, "data") and hasattr(dataset, "targets"):
        indices = list(indices)
        return torch.as_tensor(dataset.data[indices]).unsqueeze(1).float().div(255), torch.as_tensor(dataset.targets)[indices]
    images, labels = next(iter(loader))
    return images[:count].cpu() * MNIST_STD + MNIST_MEAN, labels[:count].cpu()


def _dataset_images(dataset, indices):
    """dataset[i]'s image for each index, transformed as the dataset does it, un-normalised."""
    return torch.stack([dataset[i][0] for i in indices]).cpu() * MNIST_STD + MNIST_MEAN


def plot_samples(train_loader, count=10):
    """The first training images as stored (top row) and two random augmentations of each.

    The augmentations are the ones training uses: random_affine for a TensorLoader, the dataset's
    own transform for a torchvision DataLoader.
    """
    images, labels = _stored_images(train_loader, count)
    labels = labels.tolist()
    if isinstance(train_loader, TensorLoader):
        augmented = [random_affine(images, **train_loader.augment) for _ in range(2)] if train_loader.augment else []
    else:  # the dataset's own random transform, drawn twice
        augmented = [_dataset_images(train_loader.dataset, range(len(labels))) for _ in range(2)]
    rows = [images] + augmented
    titles = [f"{label}" for label in labels] + [f"{label} aug." for label in labels] * len(augmented)
    figure = _image_grid(torch.cat(rows).clamp(0, 1), titles, len(labels), "Training images: original, then augmented")
    return _shown_once(figure, f"The first {len(labels)} training images, labelled {labels}, and {len(augmented)} random augmentations of each")


def plot_history(history):
    """Loss and accuracy per epoch, training and test; every epoch on the x axis."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [entry["epoch"] for entry in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(epochs, [entry["train_loss"] for entry in history], "o-", label="train")
    loss_axis.plot(epochs, [entry["test_loss"] for entry in history], "o-", label="test")
    loss_axis.set(title="Loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    accuracies = [entry[key] for entry in history for key in ("train_acc", "test_acc")]
    accuracy_axis.plot(epochs, [entry["train_acc"] for entry in history], "o-", label="train (augmented)")
    accuracy_axis.plot(epochs, [entry["test_acc"] for entry in history], "o-", label="test")
    accuracy_axis.axhline(99.4, color="gray", linestyle="--", linewidth=1, label="99.4%")
    # From just below the lowest point (or 97%, whichever is lower) to 100%: every point visible.
    bottom = min([97.0] + accuracies)
    accuracy_axis.set(title="Accuracy", xlabel="epoch", ylabel="percent", ylim=(max(0.0, bottom - 0.05 * (100 - bottom) - 0.1), 100))
    for axis in (loss_axis, accuracy_axis):
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    final = history[-1]
    return _shown_once(
        figure,
        f"Loss and accuracy over {len(history)} epoch{'s' if len(history) != 1 else ''}; "
        f"final test accuracy {final['test_acc']:.2f}%, test loss {final['test_loss']:.4f}",
    )


def plot_misclassified(test_loader, predictions, targets, count=20):
    """Test images the model gets wrong, each titled with its true and predicted label.

    predictions, targets: from `predict(model, device, test_loader)`, in the loader's order, so
    the images are looked up rather than run through the model again. The loader must not shuffle.
    """
    import matplotlib.pyplot as plt

    if getattr(test_loader, "shuffle", False) or isinstance(getattr(test_loader, "sampler", None), torch.utils.data.RandomSampler):
        raise ValueError("plot_misclassified needs a test loader that keeps its order (shuffle=False)")
    wrong = (predictions != targets).nonzero().flatten()[:count].tolist()
    if not wrong:
        figure = plt.figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "No misclassified test images", ha="center")
        return _shown_once(figure, "No misclassified test images")
    if isinstance(test_loader, TensorLoader):
        images = test_loader.images[wrong].unsqueeze(1).float().div(255)
    else:
        images = _dataset_images(test_loader.dataset, wrong)
    titles = [f"true {targets[i]} / pred {predictions[i]}" for i in wrong]
    figure = _image_grid(images.clamp(0, 1), titles, 5, f"The first {len(wrong)} misclassified test images")
    return _shown_once(figure, f"{len(wrong)} misclassified test images: " + ", ".join(titles))


def plot_confusion_matrix(predictions, targets):
    """Counts of true (rows) against predicted (columns) labels; the diagonal is left blank."""
    import matplotlib.pyplot as plt

    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix.index_put_((targets, predictions), torch.ones_like(targets), accumulate=True)
    errors = matrix.clone().fill_diagonal_(0)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    shown = axis.imshow(errors.numpy(), cmap="Reds", vmin=0, vmax=max(1, errors.max().item()))
    for true in range(10):
        for predicted in range(10):
            value = matrix[true, predicted].item()
            if value:
                if true == predicted:
                    color = "gray"
                else:  # white on the dark half of the colour map, black on the light half
                    color = "white" if errors[true, predicted] > 0.5 * errors.max() else "black"
                axis.text(predicted, true, value, ha="center", va="center", fontsize=8, color=color)
    axis.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
             title=f"Confusion matrix ({errors.sum().item()} errors; diagonal in gray)")
    figure.colorbar(shown, ax=axis, label="misclassified images")
    worst = divmod(int(errors.argmax()), 10)
    return _shown_once(
        figure,
        f"Confusion matrix of {len(targets)} test images: {errors.sum().item()} errors, the most common "
        f"true {worst[0]} predicted as {worst[1]} ({errors.max().item()} times)",
    )
