"""Enumerations shared by the models, the API and the UI."""

from django.db import models


class FailoverMode(models.TextChoices):
    AUTO = "auto", "Automatic"
    MANUAL = "manual", "Manual"


class SlateMode(models.TextChoices):
    NONE = "none", "None (outputs go silent)"
    PATTERN = "pattern", "Test pattern with tone"


class InputProtocol(models.TextChoices):
    SRT = "srt", "SRT"
    RTMP = "rtmp", "RTMP"
    UDP = "udp", "UDP (MPEG-TS)"
    HTTP = "http", "HTTP (MPEG-TS)"
    HLS = "hls", "HLS"
    FILE = "file", "File"


class OutputProtocol(models.TextChoices):
    SRT = "srt", "SRT"
    RTMP = "rtmp", "RTMP"
    UDP = "udp", "UDP (MPEG-TS)"
    HLS = "hls", "HLS"
    FILE = "file", "File recording"


class SrtMode(models.TextChoices):
    LISTENER = "listener", "Listener"
    CALLER = "caller", "Caller"
    RENDEZVOUS = "rendezvous", "Rendezvous"


class PbKeyLen(models.IntegerChoices):
    AES128 = 16, "AES-128"
    AES192 = 24, "AES-192"
    AES256 = 32, "AES-256"


class VideoCodec(models.TextChoices):
    H264 = "h264", "H.264"
    HEVC = "hevc", "HEVC"
    COPY = "copy", "Copy (no transcoding)"


class Encoder(models.TextChoices):
    AUTO = "auto", "Automatic"
    SOFTWARE = "software", "Software"
    VAAPI = "vaapi", "VAAPI"
    QSV = "qsv", "Intel QSV"
    NVENC = "nvenc", "NVIDIA NVENC"


class Preset(models.TextChoices):
    ULTRAFAST = "ultrafast"
    SUPERFAST = "superfast"
    VERYFAST = "veryfast"
    FASTER = "faster"
    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"


class AudioCodec(models.TextChoices):
    COPY = "copy", "Copy"
    AAC = "aac", "AAC"


class NodeState(models.TextChoices):
    ONLINE = "online", "Online"
    DRAINING = "draining", "Draining"
    OFFLINE = "offline", "Offline"


class EventKind(models.TextChoices):
    STARTED = "started", "Started"
    STOPPED = "stopped", "Stopped"
    INPUT_UP = "input_up", "Input up"
    INPUT_DOWN = "input_down", "Input down"
    SWITCHED = "switched", "Switched"
    OUTPUT_ERROR = "output_error", "Output error"
    TRANSCODER_BEHIND = "transcoder_behind", "Transcoder behind realtime"
    TRANSCODER_OK = "transcoder_ok", "Transcoder caught up"
    ERROR = "error", "Error"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer (read only)"
    OPERATOR = "operator", "Operator (start, stop, switch)"
    ADMIN = "admin", "Admin (everything)"

    @property
    def rank(self) -> int:
        return [Role.VIEWER, Role.OPERATOR, Role.ADMIN].index(self)
