"""normscope for PyTorch: normscope's probes on any torch.nn.Module, written as a normscope run
log by the C run-log writer (docs/pytorch.md)."""
__version__ = "0.1.0"

from .recorder import Recorder  # noqa: E402,F401
from .flags import add_recorder_flags, recorder_options  # noqa: E402,F401
from .runlog import RunLog, RunLogError  # noqa: E402,F401
