"""The upload size limit: a file over UPLOAD_MAX_BYTES is refused as it arrives.

The first of FILE_UPLOAD_HANDLERS: when the request says it is larger than the limit, or
a file grows past it, the upload stops, the rest of the request is read and thrown away
(nothing is kept in memory or on disk), and ``request.upload_refused`` tells the view
why, in a sentence for the person who sent it. Form fields sent before the file (the CSRF
token among them) still arrive.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


def too_large_message(size: int, limit: int) -> str:
    return (f"The upload is {size:,} bytes, over this server's limit of {limit:,} bytes "
            "(UPLOAD_MAX_BYTES); nothing was imported. Import a larger test set on the server "
            "with manage.py import_testset, or split it.")


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.UPLOAD_MAX_BYTES
        self.request_size = 0
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.request_size = content_length or 0
        return None  # parsing goes on as usual

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.received = 0
        if self.request_size > self.limit:
            self._refuse(self.request_size)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self._refuse(max(self.request_size, self.received))
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers keep the file

    def _refuse(self, size: int):
        if self.request is not None:
            self.request.upload_refused = too_large_message(size, self.limit)
        raise StopUpload(connection_reset=False)
