"""`alabel demo-video`: write a short generated video to try `alabel label --track` on.

Coloured shapes on a grey background: a red square moving right, a green one moving left (they
cross), and a blue one that leaves the frame at the top and comes back. Deterministic (the
same arguments give the same frames), so labelling it twice registers nothing twice. Tests
use `write_demo_video` too.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo_video", "write_demo_video"]

_CODEC = "mpeg4"  # in every FFmpeg build (PyAV's wheel included), unlike libx264 in some


def write_demo_video(
    path: Path, *, frames: int = 24, width: int = 96, height: int = 72, fps: int = 8
) -> None:
    """Write the demo video (MPEG-4 Part 2 in the container the file name's extension says)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream(_CODEC, rate=fps)
        assert isinstance(stream, av.VideoStream)  # a video codec gives a video stream
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        size = max(8, min(width, height) // 5)
        for i in range(frames):
            pixels = np.full((height, width, 3), 90, dtype=np.uint8)
            step = i / max(1, frames - 1)
            red_x = round(step * (width - size))
            green_x = round((1 - step) * (width - size))
            pixels[height // 4 : height // 4 + size, red_x : red_x + size] = (220, 40, 40)
            pixels[height // 2 : height // 2 + size, green_x : green_x + size] = (40, 200, 60)
            # Up and out of the frame in the middle third, then back down.
            blue_y = round(abs(step - 0.5) * 2 * (height + size)) - size
            top, bottom = max(0, blue_y), max(0, min(height, blue_y + size))
            if bottom > top:
                pixels[top:bottom, width // 3 : width // 3 + size] = (40, 60, 220)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@click.command(
    "demo-video",
    epilog="""\b
Examples:
  alabel demo-video clip.mp4
  alabel demo-video clip.mkv --frames 96 --size 320x240 --fps 24
  alabel demo-video clip.mp4 && alabel label clip.mp4 --classes square --track""",
)
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option(
    "--frames",
    type=click.IntRange(1, 10_000),
    default=24,
    show_default=True,
    metavar="N",
    help="Number of frames.",
)
@click.option(
    "--size",
    default="96x72",
    show_default=True,
    metavar="WxH",
    help="Frame width and height in pixels (even numbers, 16 to 4096).",
)
@click.option(
    "--fps",
    type=click.IntRange(1, 120),
    default=8,
    show_default=True,
    metavar="N",
    help="Frames per second of video time.",
)
def demo_video(path: Path, frames: int, size: str, fps: int) -> None:
    """Write a short generated video of moving coloured shapes to PATH (.mp4, .mkv, .avi...).

    The shapes cross and one leaves the frame and comes back: a quick way to try
    `alabel label PATH --track`. An existing file is replaced.
    """
    from agentic_labeling.cli.video_frames import VIDEO_EXTENSIONS

    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        known = ", ".join(sorted(e.lstrip(".") for e in VIDEO_EXTENSIONS))
        raise click.BadParameter(f"name a video file (extensions: {known})", param_hint="PATH")
    width_text, _, height_text = size.lower().partition("x")
    try:
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise click.BadParameter(f"{size!r} is not WxH, e.g. 96x72", param_hint="--size") from None
    if not all(16 <= v <= 4096 and v % 2 == 0 for v in (width, height)):
        raise click.BadParameter(
            f"{size!r}: width and height must be even numbers from 16 to 4096",
            param_hint="--size",
        )
    write_demo_video(path, frames=frames, width=width, height=height, fps=fps)
    click.echo(f"wrote {path}: {frames} frames of {width}x{height} at {fps} fps")
