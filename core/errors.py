"""The one exception type for user mistakes, and how the web answers one.

Plain functions raise ``InputError`` with a sentence meant for the person who made the
mistake (naming the file, row or field); commands turn it into ``CommandError`` and views
into a form error or a 400 response, so a mistake never shows up as a traceback.
"""
import os

from django.conf import settings
from django.http import HttpResponse


class InputError(ValueError):
    pass


# A message lists this many problems, then says how many more there are.
MAX_LISTED_PROBLEMS = 20


def problem_listing(problems: list[str], total: int | None = None) -> str:
    """One indented line per problem, the first MAX_LISTED_PROBLEMS of them."""
    total = len(problems) if total is None else total
    listed = "".join(f"\n  {line}" for line in problems[:MAX_LISTED_PROBLEMS])
    if total > MAX_LISTED_PROBLEMS:
        listed += f"\n  ... and {total - MAX_LISTED_PROBLEMS} more"
    return listed


def shorten(value: str, limit: int = 60) -> str:
    """A user's value as a message quotes it: whole when short, its start and length when
    long (a megabyte label is not echoed back)."""
    value = str(value)
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value):,} characters)"


def form_errors_text(form) -> str:
    """A form's errors as plain text, one line per message (``errors.as_text`` escapes them
    for HTML, which a text/plain answer must not)."""
    lines = []
    for field, errors in form.errors.as_data().items():
        for error in errors:
            for message in error.messages:
                lines.append(f"{field}: {message}" if field != "__all__" else message)
    return "\n".join(lines)


def text_response(message: str, status: int = 400):
    """A plain-text answer to a mistake, its charset named (the live stream's errors, bad options)."""
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def without_server_paths(message: str) -> str:
    """``message`` for a web page: a file in one of the server's folders is named by the
    setting of its folder (``MEDIA_ROOT/testsets/…``), never by an absolute path."""
    folders = {
        "MEDIA_ROOT": settings.MEDIA_ROOT, "LIVE_VIDEO_DIR": settings.LIVE_VIDEO_DIR,
        "STATIC_ROOT": settings.STATIC_ROOT, "FERML_MODEL_DIR": os.environ.get("FERML_MODEL_DIR"),
        "": settings.BASE_DIR,  # the app's own files: relative to it (ferml/weights/…)
    }
    by_length = sorted(((str(path).rstrip("/"), name) for name, path in folders.items() if path),
                       key=lambda item: -len(item[0]))
    for path, name in by_length:
        if os.path.isabs(path):
            message = message.replace(path + "/", f"{name}/" if name else "")
    return message
