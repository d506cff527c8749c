"""xsite for PyTorch: ``import xsite`` registers the ``xsite`` torch.distributed backend.

    import torch.distributed as dist, xsite
    dist.init_process_group("xsite")          # under xsite-run or torchrun, as with "gloo"
    ddp.register_comm_hook(None, xsite.hooks.compressed_allreduce(codec="int8"))

The backend is a c10d process group over ``xsite::Communicator`` for CPU tensors: the
hierarchical all-reduce across sites, the cross-site codecs, the same error messages. Its ranks
meet at the store torch hands the backend (no second port); their placement (site, domain) comes
from the environment as for the C++ library (``XSITE_SITE``, torchrun's variables, a topology
file), and so do its settings (``XSITE_*``, docs/configuration.md). ``new_group`` options and
per-call options: :func:`all_reduce`, :func:`set_group_options`.
"""

import torch
import torch.distributed as dist

from . import _C
from . import hooks  # noqa: F401  (xsite.hooks)

__version__ = _C.__version__
ProcessGroupXsite = _C.ProcessGroupXsite

# Options for the process groups created after this call (algorithm, codec, error feedback).
_group_options = {}


def set_group_options(algorithm=None, codec=None, error_feedback=None):
    """Options of the xsite process groups created from now on (``init_process_group``,
    ``new_group``): ``algorithm`` (auto, ring, hier, latency), ``codec`` (none, lz4, zstd, bf16,
    fp16, int8, fp8, int4: the all-reduce's cross-site codec) and ``error_feedback``. Unset ones
    take their ``XSITE_*`` variables. torch 1.13 hands a third-party backend no options of its
    own, hence this call."""
    _group_options.clear()
    _group_options.update(algorithm=algorithm, codec=codec, error_feedback=error_feedback)


def _create(store, rank, size, timeout):
    return _C.ProcessGroupXsite(store, rank, size, timeout, **_group_options)


if not hasattr(dist.Backend, "XSITE"):  # registering a name twice asserts in torch
    dist.Backend.register_backend("xsite", _create)


def _xsite_group(group):
    pg = group if group is not None else dist.distributed_c10d._get_default_group()
    if not isinstance(pg, ProcessGroupXsite):
        raise TypeError("xsite: the group is a %s process group, not an xsite one "
                        "(init_process_group('xsite'))" % type(pg).__name__)
    return pg


def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False, algorithm=None,
               codec=None, error_feedback=None, key=""):
    """``torch.distributed.all_reduce`` with xsite's options for this call: ``algorithm``,
    ``codec`` (lossy codecs apply to sum and avg of float32, bfloat16 and float16; every rank
    gets the same bytes), ``error_feedback`` and its ``key`` (which residual this call carries
    over, e.g. one per gradient bucket; "" is one per size and dtype)."""
    work = _xsite_group(group).all_reduce_with(tensor, op, algorithm=algorithm, codec=codec,
                                               error_feedback=error_feedback, key=key)
    if async_op:
        return work
    work.wait()
    return None


def wan_stats(group=None):
    """(raw, wire) bytes this rank's cross-site stages sent since the group was made: the
    elements, and what crossed after the codec."""
    return _xsite_group(group).wan_stats()


def abort(group=None):
    """Like ncclCommAbort, from any thread: the group's pending and later calls fail at once."""
    _xsite_group(group).abort()
