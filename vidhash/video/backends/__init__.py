"""Decoder backends behind :class:`vidhash.video.stream.VideoStream` (PyAV, ffmpeg CLI, OpenCV)."""
