"""Multi-object tracking: one frame's detections in, stable track numbers out.

- `tracker`: `Tracker`, `TrackerConfig`, `Detection`: the per-stream state and its three
  matching passes (predicted IoU, ByteTrack's low-score pass, appearance Re-ID).
- `association`: IoU and cosine matrices and the gated assignment (scipy's Hungarian solver).

Pure numpy + scipy: no gRPC, no registry. The orchestrator maps track numbers to registry
track ids.
"""

from agentic_labeling.tracking.tracker import Detection, Tracker, TrackerConfig

__all__ = ["Detection", "Tracker", "TrackerConfig"]
