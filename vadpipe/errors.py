"""One exception type per failure family; the CLI prints them as one line."""
import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with control characters (and the stand-ins of bytes that are not UTF-8) escaped as Python
    writes them (a newline in a file name prints as ``\\n``), so a line that quotes a name stays one line."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


class VadpipeError(Exception):
    """Base class: an expected failure with a message fit for the user."""


class VideoDecodeError(VadpipeError):
    """A video could not be opened or decoded (missing, not a video, corrupt, empty)."""


# seconds a decoder may give no frames before its video is a VideoDecodeError (--decode-timeout of extract,
# score and calibrate); here because the CLI, which imports no torch, and the commands' options share it
DECODE_TIMEOUT_S = 600.0


class RecipeMismatchError(VadpipeError):
    """Features or a checkpoint were made with a different recipe than the one asked for."""


class WeightsError(VadpipeError):
    """Backbone weights are missing, unreadable or do not fit the network."""


class ConfigError(VadpipeError):
    """A configuration value or command-line combination is invalid."""


class TrainingDiverged(VadpipeError):
    """The head's scores or loss became NaN or infinite during training."""


class FeatureStoreError(VadpipeError):
    """A feature folder is missing, incomplete or inconsistent."""


class CheckpointError(VadpipeError):
    """A checkpoint is missing, unsafe or does not fit the model."""


class GroundTruthError(VadpipeError):
    """Ground truth could not be read or does not align with the predictions."""


class OutputWriteError(VadpipeError):
    """An output file could not be written (a full disk, no permission); nothing half-written is left."""
