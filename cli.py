"""What the command-line front ends share: argument checks, one-line errors, whole-file writes.

Used by train.py, predict.py and `python -m backprop`. Exit codes, the same everywhere:
2 for a usage error (argparse's convention), 1 when the work itself fails (data missing, a file
that cannot be written), 130 after Ctrl-C.
"""

import argparse
import math
import os
import sys
import tempfile
import warnings

USAGE_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: the message says what to fix, no usage block."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def hide_torch_storage_warning():
    """Hide torch 2.1's "TypedStorage is deprecated" warning about its own code, for predict.py.

    torch 2.1's torch.load(weights_only=True) reads each tensor's dtype from a legacy storage
    class (torch.FloatStorage), and that access warns that TypedStorage is deprecated: a note
    about torch's internals (2.2 stopped) that tells the person running a command nothing, and
    would put a line among predict.py's one line per image. No call avoids it, since every file
    torch.save writes names those classes, and weights_only=False would run whatever the file holds.
    Only that message, only when raised from torch's own modules: the same warning caused by
    this project's code would still show. Called by the command line, never on import, so code
    that imports the project keeps its own warning filters.
    """
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning, module=r"torch\.")


def checked(check):
    """An argparse `type` from a function that raises ValueError with a readable message."""

    def parse(text):
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.__name__  # argparse names the type in some messages
    return parse


def _whole_number(text, low, high):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
    return value


def positive_int(text):
    """A whole number of at least 1."""
    return _whole_number(text, 1, sys.maxsize)


def seed(text):
    """A random seed: NumPy accepts 0 to 2**32 - 1."""
    return _whole_number(text, 0, 2**32 - 1)


def positive_float(text):
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def writable_file(text):
    """An output path whose folder exists and is writable: checked before a long run, not after."""
    path = os.path.abspath(text)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file path")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable")
    return text


def save_atomically(path, write):
    """Call write(temporary_path), then move the result onto path in one step.

    The temporary file sits in the same folder, so os.replace is a rename on one file system: a
    reader sees the old file or the new one, never half of one. If write fails (or Ctrl-C
    arrives), the temporary file is removed and path is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    suffix = os.path.splitext(name)[1]  # matplotlib and openpyxl choose the format from it
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp made it 0600
        os.replace(temporary, path)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
