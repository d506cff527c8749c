"""DDP communication hooks that run each gradient bucket's all-reduce through xsite.

    ddp.register_comm_hook(None, xsite.hooks.compressed_allreduce(codec="int8"))

turns on the cross-site codec with error feedback, one residual per bucket, in one line."""

import torch.distributed as dist


def compressed_allreduce(codec="int8", error_feedback=True, algorithm=None):
    """A DDP comm hook: the bucket's gradients averaged over the ranks by xsite's all-reduce
    with ``codec`` on the cross-site stage and ``error_feedback`` keyed by the bucket's index
    (what a lossy codec dropped in one step is added back in the next). ``state`` given to
    ``register_comm_hook`` may be an xsite process group (None: the default group)."""
    def hook(state, bucket):
        import xsite  # the package, at call time (hooks is imported by it)
        pg = xsite._xsite_group(state)
        work = pg.all_reduce_with(bucket.buffer(), dist.ReduceOp.AVG, algorithm=algorithm,
                                  codec=codec, error_feedback=error_feedback,
                                  key="ddp-bucket-%d" % bucket.index())
        return work.get_future().then(lambda fut: fut.value()[0])
    return hook
