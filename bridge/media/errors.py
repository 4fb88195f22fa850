"""The one exception type the media layer raises."""

from __future__ import annotations


class MediaError(Exception):
    """A problem with a media file or an output destination that the user can fix.

    The message is a single sentence that names what is wrong and what to do, so the
    CLI, the server and the panel can show it as is.
    """
