"""TokenFlow: consistent diffusion features for text-driven video editing.

The pure method: model loading, frames <-> latents, DDIM inversion, PnP injection,
keyframe extended attention, token propagation and the edit loop. No sockets, no
Qt, no media files: callers hand in decoded frames and get frames back.
"""

from tokenflow.events import EngineEvent, FrameReady, Preview, Progress
from tokenflow.params import EditParams

__all__ = ["EditParams", "EngineEvent", "FrameReady", "Preview", "Progress"]
