"""The one exception type for user mistakes in the annotator app.

Plain functions raise ``InputError`` with a sentence meant for the person who made the
mistake (naming the file, row or field); commands turn it into ``CommandError`` and views
into a form error or a 400 response, so a mistake never shows up as a traceback.
"""


class InputError(ValueError):
    pass
