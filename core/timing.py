"""``Server-Timing: app;dur=…``: how long the app took over a request, in milliseconds.

Browsers show it in their developer tools, and ``scripts/benchmark_votes.py`` reads it to
tell the server's own time from the time a request waited in line or on the network.
"""
import time


class ServerTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - started):.1f}"
        return response
