"""Write a file completely or not at all."""

import os
import tempfile


def save_atomically(path, write):
    """Call write(temporary_path), then move the result onto path in one step.

    The temporary file sits in the same directory, so os.replace is a rename
    on one file system: a reader sees the old file or the new one, never half
    of one. If write fails, the temporary file is removed and path is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    suffix = os.path.splitext(name)[1]  # matplotlib and openpyxl look at it
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
