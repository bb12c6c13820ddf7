"""Old path of the scene renderer, now :mod:`fusion_perception.synthetic` (objects, render)."""

from fusion_perception.synthetic.objects import (  # noqa: F401
    DET_CLASSES, DET_CLUTTER, LOW_VISIBILITY, SEG_CLASSES, SEG_CLUTTER, Light, Part, Scene, SceneObject,
)
from fusion_perception.synthetic.render import clip_box, render_scene  # noqa: F401

__all__ = ["LOW_VISIBILITY", "DET_CLASSES", "SEG_CLASSES", "DET_CLUTTER", "SEG_CLUTTER", "Part", "Light",
           "SceneObject", "Scene", "render_scene", "clip_box"]
