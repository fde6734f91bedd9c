"""The Recorder's cadences and smoothness plan as command-line flags, for training scripts (the
examples use them): one flag per Recorder argument, defaulting to the Recorder's own default."""
import inspect

from .recorder import Recorder

ARGUMENTS = ("probe_vectors_every", "flush_every", "lipschitz_every", "hessian_iters",
             "hessian_top", "hutchinson_samples", "density_runs", "density_steps")


def add_recorder_flags(parser):
    """--probe-vectors-every, --flush-every, --lipschitz-every, --hessian-iters, ... on parser."""
    defaults = inspect.signature(Recorder).parameters
    for name in ARGUMENTS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=None,
                            help=f"the recorder's {name} (default {defaults[name].default})")


def recorder_options(args):
    """The Recorder keyword arguments among args (an argparse namespace) that were given."""
    return {name: getattr(args, name) for name in ARGUMENTS
            if getattr(args, name, None) is not None}
