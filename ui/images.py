"""Pixels from the bridge as QImages, without numpy in the panel: the buffer protocol is enough."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage

# Frames are kept at most this size in the panel; the full resolution stays on the server
# (fetched again for an export), so a long clip does not fill the memory.
DISPLAY_MAX = QSize(1280, 720)


def rgb_to_qimage(pixels, max_size: QSize | None = DISPLAY_MAX) -> QImage:
    """An HxWx3 (or x4) uint8 array-like as an owned QImage, scaled down to fit `max_size`."""
    height, width, channels = pixels.shape[0], pixels.shape[1], pixels.shape[2]
    if str(getattr(pixels, "dtype", "uint8")) != "uint8":
        raise ValueError(f"frames of type {pixels.dtype} cannot be shown; the panel shows 8-bit frames")
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    view = memoryview(pixels)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    image = QImage(view.cast("B"), width, height, width * channels, fmt)
    return fit(image, max_size).copy() if max_size is not None else image.copy()


def encoded_to_qimage(data) -> QImage:
    """A JPEG or PNG proxy as a QImage (a null image when it does not decode)."""
    image = QImage()
    image.loadFromData(bytes(data))
    return image


def fit(image: QImage, max_size: QSize | None) -> QImage:
    if max_size is None or image.isNull():
        return image
    if image.width() <= max_size.width() and image.height() <= max_size.height():
        return image
    return image.scaled(max_size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def thumbnail_png(image: QImage, width: int = 160) -> bytes:
    """A small PNG of an image, for the history."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    small = image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation) if image.width() > width else image
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # PySide6 types the format as bytes; at run time it takes only str.
    small.save(buffer, "PNG")  # pyright: ignore[reportCallIssue, reportArgumentType]
    buffer.close()
    return bytes(data.data())


def image_from_png(data: bytes | None) -> QImage:
    image = QImage()
    if data:
        image.loadFromData(data, "PNG")
    return image
