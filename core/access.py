"""Who may see what, and who may try to log in: shared by the annotator, evaluation and live views."""
from functools import wraps

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


def staff_required(view):
    """Anonymous users go to the login page; logged-in non-staff get 403, not a login loop."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


class ThrottledLoginBackend(AxesStandaloneBackend):
    """django-axes' lock-out check, for logins over HTTP (the first of AUTHENTICATION_BACKENDS).

    ``authenticate`` called without a request (the shell, a command, a test) has no client
    to throttle: it goes straight on to the password check.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
