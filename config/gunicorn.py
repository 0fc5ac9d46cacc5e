"""gunicorn's settings for ``scripts/serve-production.sh``: threaded workers behind a proxy.

A live-demo stream holds one thread of one worker while it plays. The gthread worker
answers other requests on its other threads, and the live demo plays at most
LIVE_MAX_STREAMS streams on the whole server (live/streams.py counts them across the
workers), fewer than a worker's threads, so a worker keeps threads free for the
annotators; each stream stops after LIVE_MAX_STREAM_SECONDS. ``timeout`` is only the
worker's heartbeat here: a long stream is not cut by it.

Inference (live-demo streams, report jobs) runs on TORCH_THREADS threads per worker
(default 1): with one worker per core, a worker's models then use at most one core, and a
stream never takes every core from the votes.

The environment sets each value (GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_THREADS,
TORCH_THREADS); GUNICORN_CMD_ARGS or arguments after the command override anything.
"""
import os
import sys

wsgi_app = "config.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # loopback: the TLS proxy faces the network
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))  # one per core
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
torch_threads = int(os.environ.get("TORCH_THREADS", "1"))
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Trust X-Forwarded-Proto from the proxy on this machine only.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def post_worker_init(worker):
    """Refuse to serve when streams could take every thread of a worker; then limit the
    worker's inference threads (TORCH_THREADS)."""
    from django.conf import settings
    from gunicorn.workers.gthread import ThreadWorker

    per_worker = worker.cfg.threads if isinstance(worker, ThreadWorker) else 1
    if settings.LIVE_MAX_STREAMS >= per_worker:
        worker.log.error(
            "LIVE_MAX_STREAMS=%s must be below the threads per worker (GUNICORN_THREADS=%s with "
            "the gthread worker), or live-demo streams could leave annotators without a thread; "
            "not starting.", settings.LIVE_MAX_STREAMS, per_worker,
        )
        sys.exit(3)  # gunicorn's "worker failed to boot": the whole server stops
    limit_inference_threads(torch_threads)


def limit_inference_threads(n: int) -> None:
    """PyTorch's and OpenCV's threads in this worker process: ``n`` for a model or a face
    detector, one for PyTorch's scheduling between operations."""
    import cv2
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass
    cv2.setNumThreads(n)
