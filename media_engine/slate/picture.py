"""The slate's pictures, drawn once before encoding. PyAV's FFmpeg has no drawtext, so text is
drawn with a 5x7 font of our own."""

from __future__ import annotations

import av
import av.filter

from media_engine.slate.settings import SlateSettings

BARS_SOURCE = "smptehdbars"

_BLACK, _WHITE, _NEUTRAL = 16, 235, 128  # limited-range luma, and chroma without colour

_FONT: dict[str, tuple[int, ...]] = {
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    " ": (0, 0, 0, 0, 0, 0, 0),
    "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 0x1F),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "!": (0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "'": (0x04, 0x04, 0x08, 0, 0, 0, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "&": (0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D),
    "#": (0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A),
}
_GLYPH_W, _GLYPH_H, _ADVANCE = 5, 7, 6
_MAX_LINES = 4


class Picture:
    """A yuv420p picture as three planes without row padding, to draw on with plain slices."""

    def __init__(self, width: int, height: int, planes: list[bytearray]) -> None:
        self.width = width
        self.height = height
        self.planes = planes

    @classmethod
    def bars(cls, width: int, height: int) -> Picture:
        graph = av.filter.Graph()
        source = graph.add(BARS_SOURCE, f"size={width}x{height}")
        convert = graph.add("format", "pix_fmts=yuv420p")
        sink = graph.add("buffersink")
        source.link_to(convert)
        convert.link_to(sink)
        graph.configure()
        frame = graph.vpull()
        sizes = ((width, height), (width // 2, height // 2), (width // 2, height // 2))
        planes = []
        for plane, (plane_w, plane_h) in zip(frame.planes, sizes, strict=True):
            data, stride = bytes(plane), plane.line_size
            planes.append(bytearray(b"".join(data[row * stride : row * stride + plane_w] for row in range(plane_h))))
        return cls(width, height, planes)

    def copy(self) -> Picture:
        return Picture(self.width, self.height, [bytearray(plane) for plane in self.planes])

    def fill(self, x: int, y: int, w: int, h: int, luma: int) -> None:
        """A grey rectangle (black to white); coordinates are clipped to the picture."""
        luma_plane, cb, cr = self.planes
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.width, x + w), min(self.height, y + h)
        if x0 >= x1 or y0 >= y1:
            return
        row = bytes([luma]) * (x1 - x0)
        for line in range(y0, y1):
            luma_plane[line * self.width + x0 : line * self.width + x1] = row
        half = self.width // 2
        cx0, cx1 = x0 // 2, (x1 + 1) // 2
        neutral = bytes([_NEUTRAL]) * (cx1 - cx0)
        for line in range(y0 // 2, (y1 + 1) // 2):
            cb[line * half + cx0 : line * half + cx1] = neutral
            cr[line * half + cx0 : line * half + cx1] = neutral

    def draw_text(self, text: str) -> None:
        """White capitals in a black box, centred in the upper part of the picture."""
        lines = [line.strip().upper() for line in text.splitlines() if line.strip()][:_MAX_LINES]
        if not lines:
            return
        longest = max(len(line) for line in lines)
        # One font pixel is scale x scale picture pixels: as large as fits, up to 1/100 of the height.
        scale = max(1, min(self.height // 100, (self.width * 9 // 10) // (_ADVANCE * longest)))
        fits = (self.width * 9 // 10) // (_ADVANCE * scale)
        lines = [line[:fits] for line in lines]
        margin = 2 * scale
        text_w = max(len(line) for line in lines) * _ADVANCE * scale - scale
        line_h = (_GLYPH_H + 3) * scale
        box_w, box_h = text_w + 2 * margin, len(lines) * line_h - 3 * scale + 2 * margin
        box_x, box_y = (self.width - box_w) // 2 & ~1, max(0, self.height // 3 - box_h // 2) & ~1
        self.fill(box_x, box_y, box_w, box_h, _BLACK)
        for number, line in enumerate(lines):
            line_w = len(line) * _ADVANCE * scale - scale
            x = box_x + margin + (text_w - line_w) // 2
            y = box_y + margin + number * line_h
            self._draw_line(line, x, y, scale)

    def _draw_line(self, line: str, x: int, y: int, scale: int) -> None:
        luma = self.planes[0]
        for glyph_row in range(_GLYPH_H):
            pixels = bytearray()
            for char in line:
                bits = _FONT.get(char, _FONT["?"])[glyph_row]
                for column in range(_GLYPH_W):
                    lit = bits >> (_GLYPH_W - 1 - column) & 1
                    pixels += bytes([_WHITE if lit else _BLACK]) * scale
                pixels += bytes([_BLACK]) * scale
            del pixels[-scale:]  # no spacing after the last character
            for line_y in range(y + glyph_row * scale, y + (glyph_row + 1) * scale):
                luma[line_y * self.width + x : line_y * self.width + x + len(pixels)] = pixels

    def to_frame(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        sizes = ((self.width, self.height), (self.width // 2, self.height // 2), (self.width // 2, self.height // 2))
        for plane, data, (plane_w, plane_h) in zip(frame.planes, self.planes, sizes, strict=True):
            view, stride = memoryview(plane), plane.line_size
            if stride == plane_w:
                view[: plane_w * plane_h] = data
                continue
            for row in range(plane_h):
                view[row * stride : row * stride + plane_w] = data[row * plane_w : (row + 1) * plane_w]
        return frame


def slate_pictures(settings: SlateSettings) -> list[Picture]:
    """One loop of pictures: bars, the text, and a white block that crosses a black strip at the
    bottom once a loop, so a live slate is never mistaken for a frozen picture."""
    base = Picture.bars(settings.width, settings.height)
    base.draw_text(settings.text)
    width, height, count = settings.width, settings.height, settings.frames_per_loop
    block_h = max(2, height // 45 & ~1)
    strip_h = 2 * block_h
    base.fill(0, height - strip_h, width, strip_h, _BLACK)
    block_w = max(2, width // 10 & ~1)
    pictures = []
    for index in range(count):
        picture = base.copy()
        # Frame ``count`` would be back at x = 0, which is the next loop's first frame: no jump.
        x = index * width // count & ~1
        top = height - strip_h + (strip_h - block_h) // 2
        picture.fill(x, top, block_w, block_h, _WHITE)
        picture.fill(x - width, top, block_w, block_h, _WHITE)  # the part that wrapped round
        pictures.append(picture)
    return pictures
